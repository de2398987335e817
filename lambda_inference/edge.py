"""HTTP-level parsing of the service's inputs, done at the handler edge.

The service (:mod:`lambda_inference.service`) takes typed values; turning a raw
body or a query string into them -- size limit, JSON, the ``{"data": ...}``
envelope, ``/log`` query parameters -- happens here, before the service is called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambda_inference.errors import InvalidQueryError, PayloadTooLargeError
from lambda_inference.routes import LOG_QUERY_PARAMETERS
from lambda_inference.validation import decode_json, preview, preview_text, request_data
from mlsys.eventlog import EVENT_TYPES, EventType

DEFAULT_LOG_PAGE = 100


@dataclass(frozen=True, kw_only=True)
class PredictBody:
    """A parsed predict request body."""

    data: Any
    """The ``data`` member: one record (``/stream``) or the records (``/batch``)."""
    raw: bytes
    """The body as received (logged as is, or as its digest)."""
    has_booleans: bool
    """Whether ``true``/``false`` occur in the raw body: without them an all-numeric
    batch may take the encoder's vectorised path (booleans are not numbers)."""
    received_at: float
    """``time.perf_counter()`` when parsing began (the logged latency includes parsing)."""


def parse_predict_body(body: bytes, *, max_body_bytes: int) -> PredictBody:
    received_at = time.perf_counter()
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(
            f"request body is {len(body)} bytes; the limit is {max_body_bytes}",
            details={"bytes": len(body), "limit": max_body_bytes},
        )
    data = request_data(decode_json(body))
    return PredictBody(
        data=data,
        raw=body,
        has_booleans=b"true" in body or b"false" in body,
        received_at=received_at,
    )


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    """``GET /log`` parameters, validated."""

    limit: int
    event_type: EventType | None = None
    since: str | None = None
    next_token: str | None = None


def parse_log_query(params: Mapping[str, str], *, max_log_page: int) -> LogQuery:
    unknown = sorted(set(params) - set(LOG_QUERY_PARAMETERS))
    if unknown:
        raise InvalidQueryError(
            f"unknown query parameter(s) {', '.join(map(preview_text, unknown[:10]))}; "
            f"use {', '.join(LOG_QUERY_PARAMETERS)}",
            details={"parameters": [preview_text(name) for name in unknown[:10]]},
        )
    return LogQuery(
        limit=_limit(params.get("limit"), max_log_page=max_log_page),
        event_type=_event_type(params.get("type")),
        since=_since(params.get("since")),
        next_token=params.get("next") or None,
    )


def _limit(raw: str | None, *, max_log_page: int) -> int:
    if raw is None or raw == "":
        return min(DEFAULT_LOG_PAGE, max_log_page)
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= max_log_page:
        raise InvalidQueryError(
            f"limit must be an integer from 1 to {max_log_page}, got {preview(raw)}",
            details={"parameter": "limit"},
        )
    return limit


def _event_type(raw: str | None) -> EventType | None:
    if raw is None or raw == "":
        return None
    for event_type in EVENT_TYPES:
        if raw == event_type:
            return event_type
    raise InvalidQueryError(
        f"type must be one of {', '.join(EVENT_TYPES)}, got {preview(raw)}",
        details={"parameter": "type"},
    )


def _since(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # Years 1 and 9999 with an offset fall outside datetime's range in UTC.
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidQueryError(
            "since must be an ISO-8601 time between years 1 and 9999 in UTC, such as "
            f"2026-01-31T12:00:00Z, got {preview(raw)}",
            details={"parameter": "since"},
        ) from None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
