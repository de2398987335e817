"""Where serving sends its system-log events, and what a prediction event holds.

Three deliveries (``MLSYS_LOG_DELIVERY``), all behind :class:`EventSink`:

``sync`` (:class:`StoreSink`, the default of ``mlsys serve``)
    Commit to the :class:`~mlsys.eventlog.EventLog` before the request is
    answered, concurrent requests sharing a commit (group commit): an
    acknowledged event survives the process being killed. The admin function
    uses it for request errors; a failed write falls back to a printed line so
    the event is not lost.
``background`` (:class:`BackgroundSink`, ``mlsys serve --log-delivery background``)
    Hand the event to a bounded in-memory queue; one writer thread appends the
    queue to the store in batches (``EventLog.append_many``), so a request pays
    for the hand-off (well under a microsecond), not for the write. Reads that
    must see earlier requests call :meth:`EventSink.flush` first, and a clear
    runs through :meth:`EventSink.run_after_pending` so it is ordered with the
    queue. Closing the sink drains it.
``stdout`` (:class:`StdoutSink`, the predict function on AWS)
    Print ``{"mlsys_event": {...}}`` as one line; on Lambda that line lands in
    CloudWatch Logs, whose subscription filter ships it to the ingest function
    and DynamoDB, so a prediction never waits on a DynamoDB round trip.

``background`` is for long-lived processes (the local server). On Lambda the
execution environment is frozen between invocations, so a writer thread could
not run between requests; there ``stdout`` gives the same "no write in the
request" property with CloudWatch Logs holding the queue.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, TextIO

import orjson

from lambda_inference.observability import logger
from mlsys.eventlog import Event, EventLog
from mlsys.eventlog.fields import MAX_EVENT_DATA_BYTES, ORJSON_OPTIONS, bounded_data

MAX_LOGGED_INPUT_BYTES = 64 * 1024
"""Larger inputs are logged as a sha256 digest: a DynamoDB item holds at most
400 KB and a CloudWatch Logs event 256 KB."""


class EventSink(Protocol):
    """Takes a request's events off its hands; see the module docstring."""

    def emit(self, event: Event, metrics: Mapping[str, Any] | None = None) -> None:
        """Deliver ``event``; ``metrics`` (EMF members from
        :meth:`~lambda_inference.observability.Telemetry.request`) are printed
        with it, in the same JSON line where the event itself is printed."""
        ...

    def flush(self, *, timeout: float) -> bool:
        """Wait until every event emitted before the call is in the store.

        False if that did not happen within ``timeout`` seconds (the events stay
        queued and are retried).
        """
        ...

    def run_after_pending(self, operation: Callable[[], None], *, timeout: float) -> None:
        """Run ``operation`` (a clear) after every event emitted before the call
        is written and before any event emitted after it returns is written.

        Raises :class:`~mlsys.eventlog.EventLogError` if that cannot happen
        within ``timeout`` seconds; the operation then does not run at all.
        """
        ...

    def close(self, *, timeout: float) -> None:
        """Write everything still queued; later events are written synchronously."""
        ...

    def describe(self) -> dict[str, Any]:
        """The delivery mode and its counters, for ``GET /health``."""
        ...


def event_line(event: Event, metrics: Mapping[str, Any] | None = None) -> str:
    """One JSON line (with its newline): the event under ``mlsys_event`` (its data bounded to
    :data:`MAX_EVENT_DATA_BYTES`), beside any EMF metric members.

    Serialised once; only a line too long for the bound is re-serialised
    with its largest data members replaced (:func:`bounded_data`).
    """
    document = dict(metrics) if metrics else {}
    document["mlsys_event"] = event.to_dict()
    try:
        line = orjson.dumps(document, default=str, option=_LINE_OPTIONS)
    except (TypeError, ValueError) as exc:  # e.g. an integer beyond 64 bits
        document["mlsys_event"] = unserializable(event, exc).to_dict()
        line = orjson.dumps(document, default=str, option=_LINE_OPTIONS)
    if len(line) > MAX_EVENT_DATA_BYTES:
        document["mlsys_event"] = bounded_event(event).to_dict()
        line = orjson.dumps(document, default=str, option=_LINE_OPTIONS)
    return line.decode()


def bounded_event(event: Event) -> Event:
    """``event`` with its data within :data:`MAX_EVENT_DATA_BYTES` (see :func:`bounded_data`)."""
    try:
        size = len(event.to_json())
    except (TypeError, ValueError) as exc:  # e.g. an integer beyond 64 bits
        return unserializable(event, exc)
    if size <= MAX_EVENT_DATA_BYTES:
        return event  # the whole event fits, so its data does (and the store reuses the JSON)
    copy = dict(event.data)
    data = bounded_data(copy)
    return event if data is copy else replace(event, data=data)


def unserializable(event: Event, error: Exception) -> Event:
    """``event`` with data JSON can hold: a value orjson refuses must not block the
    log (a background writer would retry the batch forever)."""
    logger.warning(
        "an event's data is not serializable as JSON; storing its repr",
        extra={"event_id": event.id, "error": str(error)},
    )
    shown = repr(dict(event.data))
    return replace(
        event,
        data={"unserializable": f"{type(error).__name__}: {error}", "repr": shown[:2000]},
    )


def metrics_line(metrics: Mapping[str, Any]) -> str:
    return orjson.dumps(metrics, option=ORJSON_OPTIONS).decode()


_LINE_OPTIONS = ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE


class _NothingQueued:
    """The flush/order/close half of :class:`EventSink` for deliveries without a queue."""

    def flush(self, *, timeout: float) -> bool:
        return True

    def run_after_pending(self, operation: Callable[[], None], *, timeout: float) -> None:
        operation()

    def close(self, *, timeout: float) -> None:
        return None


class StdoutSink(_NothingQueued):
    """Asynchronous delivery: one JSON line per event, ingested from CloudWatch Logs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Event, metrics: Mapping[str, Any] | None = None) -> None:
        self._write(event_line(event, metrics))

    def write_line(self, line: str) -> None:
        self._write(line + "\n")

    def _write(self, text: str) -> None:
        """``text`` (ending in a newline), flushed: on Lambda the process may be
        frozen right after the response, and the line is the event's only record."""
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            stream.write(text)
            stream.flush()

    def describe(self) -> dict[str, Any]:
        return {"delivery": "stdout"}


class StoreSink(_NothingQueued):
    """Synchronous delivery into an event log, opened on first use: :meth:`emit`
    returns once the event is committed, so an acknowledged request's event
    survives the process being killed.

    **Group commit**: threads that emit while another thread's write is in
    progress queue their events; when that write ends, one of them writes
    everything queued in one transaction (``append_many``) and wakes the rest.
    A lone request writes its own event at once; under concurrency the number
    of transactions (and of SQLite write-lock hand-offs between server
    processes) drops to about one per write time instead of one per event.
    """

    def __init__(
        self, open_log: Callable[[], EventLog], *, fallback: StdoutSink | None = None
    ) -> None:
        self._open_log = open_log
        self._fallback = fallback if fallback is not None else StdoutSink()
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._pending: list[Event] = []
        self._queued = 0
        """Events ever queued; each emit waits until ``_finished`` reaches its number."""
        self._finished = 0
        self._writing = False
        self.counters = CommitCounters()

    def emit(self, event: Event, metrics: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._pending.append(event)
            self._queued += 1
            ticket = self._queued
            while self._finished < ticket:
                if self._writing:
                    self._written.wait()
                    continue
                batch, self._pending = self._pending, []
                self._writing = True
                self._lock.release()
                try:
                    self._write(batch)
                finally:
                    self._lock.acquire()
                    self._writing = False
                    self._finished += len(batch)
                    self._written.notify_all()
        if metrics:
            self._fallback.write_line(metrics_line(metrics))

    def _write(self, batch: list[Event]) -> None:
        bounded = [bounded_event(event) for event in batch]
        try:
            self._open_log().append_many(bounded)
        except Exception:
            # The response must not fail because the log did; the printed lines
            # keep the events (CloudWatch Logs on AWS, the console locally).
            logger.exception(
                "could not write events to the system log; printing them instead",
                extra={"events": len(batch), "event_ids": [event.id for event in batch[:10]]},
            )
            for event in bounded:
                self._fallback.emit(event)
            with self._lock:
                self.counters.write_failures += 1
                self.counters.printed_instead += len(batch)
            return
        with self._lock:
            self.counters.written += len(batch)
            self.counters.commits += 1

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"delivery": "sync", **asdict(self.counters)}


@dataclass
class CommitCounters:
    """What a :class:`StoreSink` has done since it started."""

    written: int = 0
    """Events committed to the store (each before its request was answered)."""
    commits: int = 0
    """Transactions: fewer than ``written`` when concurrent requests shared one."""
    write_failures: int = 0
    """Failed store calls; their events were printed instead."""
    printed_instead: int = 0
    """Events printed as JSON lines because the store refused them."""


def sampled_input_mode(mode: str, *, sample_rate: float, request_id: str) -> str:
    """``full`` or ``digest`` for one request under ``MLSYS_LOG_INPUTS`` ``mode``.

    ``sampled`` keeps the full inputs of about ``sample_rate`` of the requests (for drift
    monitoring) and a digest of the rest, which is what makes input logging affordable on a
    busy API. The choice hashes the request id, so it is deterministic per request.
    """
    if mode != "sampled":
        return mode
    draw = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2.0**64
    return "full" if draw < sample_rate else "digest"


def inputs_field(data: Any, body: bytes, *, mode: str) -> dict[str, Any]:
    """The ``inputs`` of a prediction event: the records, or the body's sha256."""
    if mode == "full" and len(body) <= MAX_LOGGED_INPUT_BYTES:
        return {"inputs": data}
    digest: dict[str, Any] = {"inputs_sha256": hashlib.sha256(body).hexdigest()}
    if mode == "full":
        digest["inputs_truncated"] = True
    return digest
