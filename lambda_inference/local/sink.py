"""``background`` delivery of system-log events (local server only; not in the Lambda bundle).

See :mod:`lambda_inference.events` for the three deliveries. With several
server processes each has its own :class:`BackgroundSink` (its own writer
thread and SQLite connection; SQLite's WAL mode serialises the writers). Event
ids are nanosecond timestamps taken when the request emits the event, so the
log reads in time order whichever process wrote a row first.

Read-your-writes across processes: a :class:`SharedProgress` in shared memory
(created by the server before it forks its workers) counts, per worker slot,
the events queued and the events written. A flush waits until every slot has
written what it had queued when the flush started, so ``GET /log`` answered by
one worker sees the events another worker acknowledged before it.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lambda_inference.events import StdoutSink, StoreSink, bounded_event, metrics_line
from lambda_inference.observability import logger
from mlsys.eventlog import Event, EventLog, EventLogError


class SharedProgress:
    """Events queued and finished per worker slot, in memory shared across a fork.

    Each slot belongs to one worker process at a time (:meth:`claim`) and is only
    written by that worker's sink, under the sink's lock; other processes only
    read it, and an aligned 64-bit read is atomic on the platforms this runs on.
    """

    POLL_SECONDS = 0.001

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be positive")
        self.slots = slots
        self._counts = multiprocessing.RawArray("q", 2 * slots)

    def claim(self, slot: int) -> SlotProgress:
        """The counters of ``slot`` for a new owner (a replaced worker's are forgotten)."""
        if not 0 <= slot < self.slots:
            raise ValueError(f"slot {slot} outside 0..{self.slots - 1}")
        self._counts[2 * slot] = self._counts[2 * slot + 1] = 0
        return SlotProgress(self, slot)

    def set(self, slot: int, *, queued: int | None = None, done: int | None = None) -> None:
        if queued is not None:
            self._counts[2 * slot] = queued
        if done is not None:
            self._counts[2 * slot + 1] = done

    def snapshot(self) -> list[int]:
        return [self._counts[2 * slot] for slot in range(self.slots)]

    def wait_done(self, targets: list[int], *, deadline: float) -> bool:
        """Wait until every slot finished what it had queued at ``snapshot`` time."""
        while any(self._counts[2 * slot + 1] < targets[slot] for slot in range(self.slots)):
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.POLL_SECONDS)
        return True


@dataclass(frozen=True)
class SlotProgress:
    """One worker's slot of a :class:`SharedProgress`."""

    shared: SharedProgress
    slot: int

    def set_queued(self, total: int) -> None:
        self.shared.set(self.slot, queued=total)

    def set_done(self, total: int) -> None:
        self.shared.set(self.slot, done=total)


OperationState = Literal["queued", "running", "done", "cancelled"]


@dataclass(eq=False)
class _Operation:
    """A store operation (a clear) that waits its turn in the queue."""

    run: Callable[[], None]
    state: OperationState = "queued"
    error: Exception | None = None


@dataclass
class DeliveryCounters:
    """What a :class:`BackgroundSink` has done since it started."""

    written: int = 0
    """Events appended to the store by the writer thread."""
    batches: int = 0
    """Successful ``append_many`` calls."""
    write_failures: int = 0
    """Failed store calls; their events stayed queued and were retried."""
    written_synchronously: int = 0
    """Events written in the request because the queue was full or the sink closed."""
    printed_instead: int = 0
    """Events printed as JSON lines because the store still failed at shutdown."""


class BackgroundSink:
    """Queue events in memory; one writer thread appends them to the store in batches.

    The request thread only appends to a bounded deque under a lock. The
    writer wakes when the queue stops being empty, waits ``linger_seconds``
    (or until ``max_batch`` events, a flush or a close) so events are written
    many per transaction, and writes them with ``EventLog.append_many``.

    Nothing is dropped:

    * queue full: :meth:`emit` blocks up to ``put_timeout`` seconds for room
      (back-pressure), then writes the event synchronously instead;
    * store failure: the batch is logged (Powertools logger), counted
      (``write_failures``, and ``on_write_failure`` for a metric), put back at
      the head of the queue and retried with the next batch after a growing
      delay; appends are idempotent (the event id is the key), so a retried
      batch cannot duplicate events;
    * shutdown: :meth:`close` writes everything queued, retrying until its
      timeout, then prints what the store still refuses as JSON lines.

    Order: events reach the store in the order they were queued, and an
    operation queued with :meth:`run_after_pending` (a clear) runs after the
    events queued before it and before those queued after it.
    """

    def __init__(
        self,
        open_log: Callable[[], EventLog],
        *,
        capacity: int = 10_000,
        max_batch: int = 500,
        linger_seconds: float = 0.05,
        put_timeout: float = 1.0,
        retry_seconds: float = 0.1,
        max_retry_seconds: float = 5.0,
        on_write_failure: Callable[[int], None] | None = None,
        fallback: StdoutSink | None = None,
        shared: SlotProgress | None = None,
    ) -> None:
        if capacity < 1 or max_batch < 1:
            raise ValueError("capacity and max_batch must be positive")
        self._open_log = open_log
        self._capacity = capacity
        self._max_batch = max_batch
        self._write_at = min(max_batch, capacity)
        """Queue length at which the writer stops lingering."""
        self._linger = linger_seconds
        self._put_timeout = put_timeout
        self._retry_seconds = retry_seconds
        self._max_retry_seconds = max_retry_seconds
        self._on_write_failure = on_write_failure
        self._printer = fallback if fallback is not None else StdoutSink()
        self._synchronous = StoreSink(open_log, fallback=self._printer)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        """Wakes the writer: the queue stopped being empty, filled a batch, a flush or a close."""
        self._progress = threading.Condition(self._lock)
        """Wakes flushers, blocked emitters and operation waiters: the writer finished something."""
        self._queue: deque[Event | _Operation] = deque()
        self._shared = shared
        self._queued = 0
        self._done = 0
        """Items (events and operations) finished, in queue order; a flush waits on it."""
        self._urgent = 0
        """Flushes and operations waiting: the writer skips its linger."""
        self._thread: threading.Thread | None = None
        self._closing = False
        self._close_deadline = 0.0
        self._failing = False
        """The last store call failed: a full queue then falls back without waiting."""
        self.counters = DeliveryCounters()

    @property
    def _queued_total(self) -> int:
        return self._queued

    @_queued_total.setter
    def _queued_total(self, total: int) -> None:
        self._queued = total
        if self._shared is not None:
            self._shared.set_queued(total)

    @property
    def _done_total(self) -> int:
        return self._done

    @_done_total.setter
    def _done_total(self, total: int) -> None:
        self._done = total
        if self._shared is not None:
            self._shared.set_done(total)

    # --- the request side -----------------------------------------------------
    def emit(self, event: Event, metrics: Mapping[str, Any] | None = None) -> None:
        if metrics:
            self._printer.write_line(metrics_line(metrics))
        with self._lock:
            if self._closing:
                self.counters.written_synchronously += 1
                full = False
            else:
                if len(self._queue) >= self._capacity and not self._failing:
                    self._progress.wait_for(
                        lambda: self._closing or len(self._queue) < self._capacity,
                        timeout=self._put_timeout,
                    )
                full = len(self._queue) >= self._capacity
                if not full and not self._closing:
                    self._queue.append(event)
                    self._queued_total += 1
                    if len(self._queue) == 1 or len(self._queue) >= self._write_at:
                        self._wake_writer()
                    return
                self.counters.written_synchronously += 1
        if full:
            logger.warning(
                "system-log queue full; writing the event in the request",
                extra={"capacity": self._capacity, "event_id": event.id},
            )
        self._synchronous.emit(event)

    def flush(self, *, timeout: float) -> bool:
        """Every event emitted before the call, by this process and (with a
        :class:`SharedProgress`) by the server's other workers, is in the store."""
        if self._shared is None:
            return self._flush_own(timeout=timeout)
        deadline = time.monotonic() + timeout
        everyone = self._shared.shared
        others = everyone.snapshot()
        own = self._flush_own(timeout=timeout)
        return everyone.wait_done(others, deadline=deadline) and own

    def _flush_own(self, *, timeout: float) -> bool:
        with self._lock:
            target = self._queued_total
            if self._done_total >= target:
                return True
            self._urgent += 1
            self._work.notify()
            try:
                return self._progress.wait_for(lambda: self._done_total >= target, timeout)
            finally:
                self._urgent -= 1

    def run_after_pending(self, operation: Callable[[], None], *, timeout: float) -> None:
        if self._shared is not None:
            # The other workers' earlier events first (they are cleared too).
            everyone = self._shared.shared
            everyone.wait_done(everyone.snapshot(), deadline=time.monotonic() + timeout)
        queued = _Operation(operation)
        with self._lock:
            closed = self._closing
            if not closed:
                self._queue.append(queued)
                self._queued_total += 1
                self._urgent += 1
                self._wake_writer()
        if closed:
            operation()  # nothing is queued any more: later events go synchronously too
            return
        with self._lock:
            try:
                self._progress.wait_for(lambda: queued.state == "done", timeout)
                # A store call in progress is bounded by the store's own timeout;
                # let it finish rather than report a clear that then happens.
                self._progress.wait_for(lambda: queued.state != "running")
                if queued.state == "done":
                    return
                queued.state = "cancelled"  # the writer skips it
                pending = sum(isinstance(item, Event) for item in self._queue)
            finally:
                self._urgent -= 1
        raise EventLogError(
            f"the system log did not accept writes within {timeout:g} s "
            f"({pending} event(s) still queued); nothing was cleared",
            details={"queued_events": pending, "error": str(queued.error or "timeout")},
        )

    def close(self, *, timeout: float) -> None:
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
                self._work.notify()
                self._progress.notify_all()
            thread = self._thread
            deadline = self._close_deadline
        # A second close (e.g. at exit after an interrupted first one) waits for
        # the same drain instead of returning while the writer still works.
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if thread.is_alive():
                self._strand()
        atexit.unregister(self._close_at_exit)

    def _strand(self) -> None:
        """The store hangs (e.g. another process holds the SQLite lock): print what
        is still queued so it is not lost with the process."""
        with self._lock:
            stranded = [item for item in self._queue if isinstance(item, Event)]
            for item in self._queue:
                if isinstance(item, _Operation):
                    item.state = "cancelled"
            self._done_total += len(self._queue)
            self._queue.clear()
            self._progress.notify_all()
        self._print_instead(stranded, reason="the writer did not finish in time")

    def describe(self) -> dict[str, Any]:
        with self._lock:
            queued = sum(isinstance(item, Event) for item in self._queue)
            counters = asdict(self.counters)
        return {"delivery": "background", "queued": queued, **counters}

    def _wake_writer(self) -> None:
        """Start the writer on first use (no thread until there is work); else notify it."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlsys-log-writer", daemon=True)
            self._thread.start()
            # A daemon thread does not hold the interpreter open; this drains the
            # queue when the process exits normally without an explicit close().
            atexit.register(self._close_at_exit)
        else:
            self._work.notify()

    def _close_at_exit(self) -> None:
        self.close(timeout=10.0)

    # --- the writer thread ------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                self._wait_before_retry(failures)
                work = self._next_work(retrying=failures > 0)
            if work is None:
                return
            written = (
                self._run_operation(work) if isinstance(work, _Operation) else self._write(work)
            )
            failures = 0 if written else failures + 1

    def _wait_before_retry(self, failures: int) -> None:
        if failures == 0:
            return
        delay = min(self._max_retry_seconds, self._retry_seconds * 2.0 ** (failures - 1))
        started = time.monotonic()
        while True:
            wake_at = started + delay
            if self._closing:
                wake_at = min(wake_at, self._close_deadline)
            remaining = wake_at - time.monotonic()
            if remaining <= 0:
                return
            self._work.wait(remaining)

    def _next_work(self, *, retrying: bool) -> list[Event] | _Operation | None:
        """Under the lock: wait for the next batch or operation; None once closed and empty."""
        linger_until: float | None = None
        while True:
            operation = self._next_operation()
            if operation is not None:
                return operation
            if self._queue:
                due = (
                    retrying
                    or self._closing
                    or self._urgent > 0
                    or len(self._queue) >= self._write_at
                )
                now = time.monotonic()
                linger_until = linger_until or now + self._linger
                if due or now >= linger_until:
                    return self._take_batch()
                self._work.wait(linger_until - now)
                continue
            if self._closing:
                return None
            linger_until = None
            self._work.wait()

    def _next_operation(self) -> _Operation | None:
        while self._queue and isinstance(head := self._queue[0], _Operation):
            self._queue.popleft()
            if head.state == "cancelled":
                self._done_total += 1
                self._progress.notify_all()
                continue
            head.state = "running"
            return head
        return None

    def _take_batch(self) -> list[Event]:
        batch: list[Event] = []
        while self._queue and len(batch) < self._max_batch:
            head = self._queue[0]
            if not isinstance(head, Event):
                break
            batch.append(head)
            self._queue.popleft()
        return batch

    def _write(self, batch: list[Event]) -> bool:
        try:
            self._open_log().append_many([bounded_event(event) for event in batch])
        except Exception as exc:
            self._failed(batch, exc)
            return False
        with self._lock:
            self._failing = False
            self._done_total += len(batch)
            self.counters.written += len(batch)
            self.counters.batches += 1
            self._progress.notify_all()
        return True

    def _run_operation(self, operation: _Operation) -> bool:
        try:
            operation.run()
        except Exception as exc:
            self._failed([], exc, operation=operation)
            return False
        with self._lock:
            self._failing = False
            operation.state = "done"
            self._done_total += 1
            self._progress.notify_all()
        return True

    def _failed(
        self, batch: list[Event], error: Exception, *, operation: _Operation | None = None
    ) -> None:
        """Count and log a failed store call; requeue its work unless shutdown ran out of time."""
        with self._lock:
            self._failing = True
            self.counters.write_failures += 1
            failures = self.counters.write_failures
            give_up = self._closing and time.monotonic() >= self._close_deadline
            if give_up:
                self._done_total += len(batch) if operation is None else 1
            elif operation is None:
                self._queue.extendleft(reversed(batch))
            else:
                operation.error = error
                operation.state = "queued"
                self._queue.appendleft(operation)
            if operation is not None and give_up:
                operation.error = error
                operation.state = "cancelled"
            self._progress.notify_all()
        logger.error(
            "could not write to the system log; retrying with the next batch",
            extra={
                "events": len(batch),
                "operation": operation is not None,
                "write_failures": failures,
                "error": f"{type(error).__name__}: {error}",
            },
        )
        if self._on_write_failure is not None:
            try:
                self._on_write_failure(len(batch))
            except Exception:
                logger.exception("could not report the system-log write failure")
        if give_up:
            self._print_instead(batch, reason="the store still failed at shutdown")

    def _print_instead(self, events: list[Event], *, reason: str) -> None:
        if not events:
            return
        logger.error(
            "printing system-log events as JSON lines instead of storing them",
            extra={"events": len(events), "reason": reason},
        )
        for event in events:
            self._printer.emit(event)
        with self._lock:
            self.counters.printed_instead += len(events)
