"""``POST /feedback``: ground truth for earlier predictions, validated at the edge.

Body: ``{"data": {"request_id": ..., "actual": ...}}`` or a list of such items,
each with an optional ``index`` (the record's position in a ``/batch`` request;
default 0). Every item is checked against the serving model before anything is
logged, and the first bad one is a 400 naming its position and member: a
classifier's ``actual`` must be one of its classes, a regressor's a finite
number. The accepted items become one ``feedback`` event; matching them with
their predictions is the monitor's job (:mod:`mlsys.monitoring`), because on AWS
the prediction may reach the log after its feedback.
"""

from __future__ import annotations

import sys
from typing import Any

from lambda_inference.errors import EmptyBatchError, InvalidRequestError, TooManyRecordsError
from lambda_inference.validation import preview, preview_text
from mlsys.contract import ModelCard, categorical_value
from mlsys.errors import ValidationError

MAX_REQUEST_ID_CHARS = 200
DOUBLE_MAX = sys.float_info.max
MAX_INDEX = 2**53 - 1
"""The largest index JSON carries exactly (and the log can store)."""
FEEDBACK_ITEMS_PER_EVENT = 200
"""Items per ``feedback`` event: 200 items of at most a few hundred bytes keep an event
well under the log's per-event size bound (``events.MAX_EVENT_DATA_BYTES``)."""
ITEM_MEMBERS = frozenset({"request_id", "index", "actual"})


class InvalidFeedbackError(ValidationError):
    code = "invalid_feedback"


def feedback_items(data: Any, *, card: ModelCard, max_items: int) -> list[dict[str, Any]]:
    """The validated items of a feedback body's ``data`` (one item or a list)."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise EmptyBatchError("the feedback list is empty; send at least one item")
    if len(items) > max_items:
        raise TooManyRecordsError(
            f"the feedback has {len(items)} items; the limit is {max_items}",
            details={"items": len(items), "limit": max_items},
        )
    return [_item(position, item, card) for position, item in enumerate(items)]


def _item(position: int, item: Any, card: ModelCard) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidRequestError(
            f"feedback item {position}: must be an object "
            '{"request_id": ..., "index": ..., "actual": ...}',
            details={"item": position},
        )
    unknown = sorted(set(item) - ITEM_MEMBERS)
    if unknown:
        raise _invalid(position, unknown[0], f"unknown member {preview(unknown[0])}")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise _invalid(
            position,
            "request_id",
            f"request_id must be the non-empty request_id of a prediction response "
            f"(at most {MAX_REQUEST_ID_CHARS} characters), got {preview(request_id)}",
        )
    index = item.get("index", 0)
    if type(index) is float and index.is_integer() and abs(index) <= MAX_INDEX:
        index = int(index)  # 3.0 is an integer to JSON Schema (and to the OpenAPI document)
    if type(index) is not int or not 0 <= index <= MAX_INDEX:
        raise _invalid(
            position,
            "index",
            f"index must be an integer from 0 to {MAX_INDEX}, got {preview(index)}",
        )
    if "actual" not in item:
        raise _invalid(position, "actual", "actual (the true value) is missing")
    return {"request_id": request_id, "index": index, "actual": _actual(position, item, card)}


def _actual(position: int, item: dict[str, Any], card: ModelCard) -> Any:
    actual = item["actual"]
    if card.is_classifier:
        labels = {categorical_value(c): c for c in card.classes or ()}
        if (
            actual is None
            or type(actual) in (list, dict)
            or categorical_value(actual) not in labels
        ):
            shown = ", ".join(map(repr, list(labels.values())[:20]))
            raise _invalid(
                position,
                "actual",
                f"actual {preview(actual)} is not a class of model {card.version} ({shown})",
            )
        return labels[categorical_value(actual)]
    # Compared exactly (an integer just above the largest double rounds down to it).
    if type(actual) not in (int, float) or not -DOUBLE_MAX <= actual <= DOUBLE_MAX:
        raise _invalid(
            position,
            "actual",
            f"actual must be a finite number for a regression model, got {preview(actual)}",
        )
    return actual


def _invalid(position: int, member: str, message: str) -> InvalidFeedbackError:
    return InvalidFeedbackError(
        f"feedback item {position}: {message}",
        details={"item": position, "member": preview_text(member)},
    )
