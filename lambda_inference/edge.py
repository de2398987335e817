"""HTTP-level parsing of the service's inputs, done at the handler edge.

The service (:mod:`lambda_inference.service`) takes typed values; turning a raw
body or a query string into them -- size limit, JSON, the ``{"data": ...}``
envelope, ``/log`` query parameters -- happens here, before the service is called.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambda_inference.errors import InvalidQueryError, PayloadTooLargeError
from lambda_inference.routes import LOG_QUERY_PARAMETERS
from lambda_inference.validation import decode_json, preview, preview_text, request_data
from mlsys.eventlog import EVENT_TYPES, Event, EventType, token_after

DEFAULT_LOG_PAGE = 100

# --- Lambda's payload limits -------------------------------------------------------------

LAMBDA_PAYLOAD_BYTES = 6_291_456
"""Lambda's synchronous invocation limit, for the request event and for the response
(6 MiB), as the runtime serialises them: JSON, with ``ensure_ascii``."""
EVENT_ENVELOPE_BYTES = 100_000
"""What an API Gateway event holds besides its body: headers (at most 10 KB, twice,
as ``headers`` and ``multiValueHeaders``), query string, request context."""
MAX_EVENT_BODY_BYTES = LAMBDA_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES
"""The most a request body may take *inside the event*: base64 for a binary media
type (a gzip body: 4/3 of its size), a JSON string otherwise (each ``"`` and ``\\``
escaped, non-ASCII as ``\\uXXXX``). A larger body cannot reach the function at all,
so the handler refuses, with 413, every body that would come close."""
MAX_LOG_RESPONSE_BYTES = 5_000_000
"""A ``GET /log`` page stops early, with a ``next`` token, before its response would
take more than this as the Lambda runtime serialises it (the body is a JSON string
inside the proxy response, so its quotes are escaped again)."""


def event_body_bytes(raw_body: str, *, base64_encoded: bool) -> int:
    """The bytes a body takes in the serialised event (see :data:`MAX_EVENT_BODY_BYTES`).

    Exact for base64; for text, exact when it matters: a body whose every character
    could expand to the worst case and still fit is not scanned (an ASCII JSON body
    at most doubles: only ``"``, ``\\`` and whitespace controls are escaped).
    """
    if base64_encoded:
        return len(raw_body)
    worst = 2 if raw_body.isascii() else 12  # astral characters: two \\uXXXX escapes
    if len(raw_body) * worst <= MAX_EVENT_BODY_BYTES:
        return len(raw_body)  # small enough that escaping cannot matter
    return json_string_bytes(raw_body)


def json_string_bytes(text: str) -> int:
    """Bytes of ``text`` as a JSON string with ``ensure_ascii``, without the quotes."""
    return len(json.dumps(text)) - 2


def check_event_body(raw_body: str, *, base64_encoded: bool) -> None:
    """413 for a body too large for Lambda's invocation payload (see above)."""
    size = event_body_bytes(raw_body, base64_encoded=base64_encoded)
    if size > MAX_EVENT_BODY_BYTES:
        encoding = "base64-encoded" if base64_encoded else "as an escaped JSON string"
        raise PayloadTooLargeError(
            f"request body takes {size} bytes in the Lambda event ({encoding}); the limit "
            f"is {MAX_EVENT_BODY_BYTES}: split the batch or send fewer, smaller records",
            details={"event_bytes": size, "limit": MAX_EVENT_BODY_BYTES},
        )


def fit_log_page(
    events: Sequence[Event], next_token: str | None, *, budget: int = MAX_LOG_RESPONSE_BYTES
) -> tuple[list[Event], str | None]:
    """The first events of a page whose response fits ``budget`` bytes, and the token
    to continue from (the store's own when nothing had to be cut).

    Each event is counted as it ends up in the Lambda response: its JSON, as a
    JSON string again (escaped). The first event always stays (events are bounded
    far below the budget), so a reader following ``next`` always advances.
    """
    kept: list[Event] = []
    size = 200  # the page's own members, the proxy response's status and headers
    for event in events:
        size += json_string_bytes(event.to_json()) + 1
        if size > budget and kept:
            return kept, token_after(kept[-1])
        kept.append(event)
    return kept, next_token


@dataclass(kw_only=True, slots=True)
class PredictBody:
    """A parsed predict request body (not frozen: a frozen dataclass pays a slow
    ``object.__setattr__`` per field, and this is built once per request)."""

    data: Any
    """The ``data`` member: one record (``/stream``) or the records (``/batch``)."""
    raw: bytes
    """The body as received (logged as is, or as its digest)."""
    received_at: float
    """``time.perf_counter()`` when parsing began (the logged latency includes parsing)."""
    booleans: bool | None = None
    """:attr:`has_booleans`, once asked."""

    @property
    def has_booleans(self) -> bool:
        """Whether ``true``/``false`` occur in the raw body: without them an all-numeric
        batch may take the encoder's vectorised path (booleans are not numbers).
        Scanned on first use: a few records take a path that checks types anyway."""
        if self.booleans is None:
            self.booleans = _has_booleans(self.raw)
        return self.booleans


def parse_predict_body(body: bytes, *, max_body_bytes: int) -> PredictBody:
    received_at = time.perf_counter()
    if len(body) > max_body_bytes:
        raise PayloadTooLargeError(
            f"request body is {len(body)} bytes; the limit is {max_body_bytes}",
            details={"bytes": len(body), "limit": max_body_bytes},
        )
    data = request_data(decode_json(body))
    return PredictBody(data=data, raw=body, received_at=received_at)


def _has_booleans(body: bytes) -> bool:
    """Whether ``true`` or ``false`` occur in ``body``.

    Numbers never contain ``u`` or ``l``, so a numeric batch settles this with two
    single-byte (memchr) searches instead of two substring scans of the whole body:
    measured, that is ~1.8 ms of a 10,000-record array ``/batch`` (2 MB).
    """
    if b"u" not in body and b"l" not in body:
        return False
    return b"true" in body or b"false" in body


@dataclass(frozen=True, kw_only=True)
class LogQuery:
    """``GET /log`` parameters, validated."""

    limit: int
    event_type: EventType | None = None
    since: str | None = None
    next_token: str | None = None


def parse_log_query(params: Mapping[str, str], *, max_log_page: int) -> LogQuery:
    """Strict, as the OpenAPI document says: known parameters only, and a parameter
    that is present needs a value (``since=`` is a mistake, not "no lower bound")."""
    unknown = sorted(set(params) - set(LOG_QUERY_PARAMETERS))
    if unknown:
        raise InvalidQueryError(
            f"unknown query parameter(s) {', '.join(map(preview_text, unknown[:10]))}; "
            f"use {', '.join(LOG_QUERY_PARAMETERS)}",
            details={"parameters": [preview_text(name) for name in unknown[:10]]},
        )
    empty = sorted(name for name, value in params.items() if value == "")
    if empty:
        raise InvalidQueryError(
            f"query parameter {empty[0]} has no value; give one or leave it out",
            details={"parameter": empty[0]},
        )
    return LogQuery(
        limit=_limit(params.get("limit"), max_log_page=max_log_page),
        event_type=_event_type(params.get("type")),
        since=_since(params.get("since")),
        next_token=params.get("next"),
    )


def _limit(raw: str | None, *, max_log_page: int) -> int:
    if raw is None:
        return min(DEFAULT_LOG_PAGE, max_log_page)
    # ASCII decimal digits only: int() would also take "5_0", "+5", " 5" and fullwidth digits.
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    if not 1 <= limit <= max_log_page:
        raise InvalidQueryError(
            f"limit must be an integer from 1 to {max_log_page}, got {preview(raw)}",
            details={"parameter": "limit"},
        )
    return limit


def _event_type(raw: str | None) -> EventType | None:
    if raw is None:
        return None
    for event_type in EVENT_TYPES:
        if raw == event_type:
            return event_type
    raise InvalidQueryError(
        f"type must be one of {', '.join(EVENT_TYPES)}, got {preview(raw)}",
        details={"parameter": "type"},
    )


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_RFC3339_PLUS = re.compile(r".*[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})? \d{2}:\d{2}", re.ASCII)
"""A positive offset whose "+" became a space (an unencoded query string)."""


def _since(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        # RFC 3339 date-time, as documented: a date, "T" (or a space), a time with
        # seconds and an offset. A "+" sent unencoded arrives as a space.
        text = raw
        if _RFC3339_PLUS.fullmatch(raw):
            cut = raw.rfind(" ")
            text = f"{raw[:cut]}+{raw[cut + 1 :]}"
        if not _RFC3339.fullmatch(text):
            raise ValueError(raw)
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        # Years 1 and 9999 with an offset fall outside datetime's range in UTC.
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidQueryError(
            "since must be an ISO-8601 time (RFC 3339: with seconds and an offset) between "
            f"years 1 and 9999 in UTC, such as 2026-01-31T12:00:00Z, got {preview(raw)}",
            details={"parameter": "since"},
        ) from None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
