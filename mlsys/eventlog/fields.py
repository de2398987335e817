"""The data fields of serving events (``prediction``, ``shadow``, ``error``), defined once.

Writers (the serving layer, shadow rollouts) build them with these functions; readers
(monitoring, rollout evidence) rely on their shape. :func:`bounded_data` keeps any
event within what CloudWatch Logs and DynamoDB accept.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import orjson

from mlsys.contract import Prediction

MAX_LOGGED_OUTPUTS = 1000
"""Larger batches log a summary of their outputs instead of every value."""
MAX_EVENT_DATA_BYTES = 100_000
"""The most an event's ``data`` may take as compact JSON (UTF-8); larger members
are replaced by a note with their size and sha256 (:func:`bounded_data`).
CloudWatch Logs drops an event over 256 KB and DynamoDB refuses an item over
400 KB; the DynamoDB log stores ASCII-escaped JSON, which can triple non-ASCII
text, so 100 KB keeps both limits with room for the envelope."""
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def outputs_field(
    prediction: Prediction, *, single: bool, classes: list[Any] | None
) -> dict[str, Any]:
    values = prediction.values
    if single:
        fields: dict[str, Any] = {"outputs": values[0]}
        if prediction.probabilities is not None and classes is not None:
            fields["probabilities"] = dict(
                zip(classes, prediction.probabilities[0].tolist(), strict=True)
            )
        return fields
    if len(values) <= MAX_LOGGED_OUTPUTS:
        return {"outputs": values}
    return {"outputs_summary": summarize(prediction, classes=classes)}


def summarize(prediction: Prediction, *, classes: list[Any] | None) -> dict[str, Any]:
    raw = prediction.raw
    assert raw is not None
    if classes is None:
        return {
            "count": int(raw.size),
            "mean": float(raw.mean()),
            "min": float(raw.min()),
            "max": float(raw.max()),
        }
    counts = np.bincount(raw, minlength=len(classes))
    return {
        "count": int(raw.size),
        "classes": dict(zip(map(str, classes), counts.tolist(), strict=True)),
    }


def bounded_data(data: dict[str, Any], *, limit: int = MAX_EVENT_DATA_BYTES) -> dict[str, Any]:
    """``data``, or a copy whose largest members are replaced by
    ``{"omitted_bytes": n, "sha256": ...}`` until it fits in ``limit`` bytes."""
    size = len(orjson.dumps(data, default=str, option=ORJSON_OPTIONS))
    if size <= limit:
        return data
    encoded = {
        key: orjson.dumps(value, default=str, option=ORJSON_OPTIONS) for key, value in data.items()
    }
    bounded = dict(data)
    for key in sorted(encoded, key=lambda k: len(encoded[k]), reverse=True):
        raw = encoded[key]
        note = {"omitted_bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        bounded[key] = note
        size -= len(raw) - len(orjson.dumps(note))
        if size <= limit:
            break
    return bounded
