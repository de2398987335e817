"""Where serving sends its system-log events, and what a prediction event holds.

Two deliveries (``MLSYS_LOG_DELIVERY``):

``sync``
    Append to the :class:`~mlsys.eventlog.EventLog` in the request (local
    SQLite, admin function).
``stdout``
    Print ``{"mlsys_event": {...}}`` as one line; on Lambda that line lands in
    CloudWatch Logs, whose subscription filter ships it to the ingest function
    and DynamoDB, so a prediction never waits on a DynamoDB round trip.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import numpy as np
import orjson

from mlsys.contract import Prediction
from mlsys.eventlog import Event, EventLog

LOG = logging.getLogger(__name__)

MAX_LOGGED_INPUT_BYTES = 64 * 1024
"""Larger inputs are logged as a sha256 digest: a DynamoDB item holds at most
400 KB and a CloudWatch Logs event 256 KB."""
MAX_LOGGED_OUTPUTS = 1000
"""Larger batches log a summary of their outputs instead of every value."""


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


def event_line(event: Event) -> str:
    return orjson.dumps({"mlsys_event": event.to_dict()}, option=_ORJSON_OPTIONS).decode()


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class StdoutSink:
    """Asynchronous delivery: one JSON line per event, ingested from CloudWatch Logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        line = event_line(event) + "\n"
        with self._lock:
            stream.write(line)
            stream.flush()


class StoreSink:
    """Synchronous delivery into an event log, opened on first use."""

    def __init__(self, open_log: Callable[[], EventLog]) -> None:
        self._open_log = open_log
        self._fallback = StdoutSink()

    def emit(self, event: Event) -> None:
        try:
            self._open_log().append(event)
        except Exception:
            # The response must not fail because the log did; the printed line
            # keeps the event (CloudWatch Logs on AWS, the console locally).
            LOG.exception("could not write %s event %s to the system log", event.type, event.id)
            self._fallback.emit(event)


def inputs_field(data: Any, body: bytes, *, mode: str) -> dict[str, Any]:
    """The ``inputs`` of a prediction event: the records, or the body's sha256."""
    if mode == "full" and len(body) <= MAX_LOGGED_INPUT_BYTES:
        return {"inputs": data}
    digest: dict[str, Any] = {"inputs_sha256": hashlib.sha256(body).hexdigest()}
    if mode == "full":
        digest["inputs_truncated"] = True
    return digest


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
