"""``background`` log delivery: a queue drained by one writer thread into the real SQLite log.

Sinks here linger for a minute unless told otherwise, so the writer only writes
when a flush, a full batch, a clear or a close asks it to: what the store holds
at each step is deterministic, and nothing waits on a clock.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.events import StdoutSink
from lambda_inference.handler import Api
from lambda_inference.local.sink import BackgroundSink, SharedProgress
from lambda_inference.service import InferenceService
from mlsys.cli import serve
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, EventLog, EventLogError, SqliteEventLog, events_from_lines
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings, load_settings
from tests.inference_support import BuiltModel, api_event, body_of, build_regression, publish

LINGER = 60.0
WAIT = 10.0
"""Upper bound of every wait on the writer; a passing test never comes near it."""


def stored_ids(path: Path) -> list[str]:
    """Event ids in the order the store received them (SQLite rowid order)."""
    if not path.exists():
        return []  # the log is opened on first write
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM events ORDER BY rowid")]


def event(number: int, **fields: Any) -> Event:
    return Event(type="prediction", request_id=f"r{number}", data={"n": number}, **fields)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.sqlite3"


@pytest.fixture
def make_sink(log_path: Path) -> Iterator[Callable[..., BackgroundSink]]:
    sinks: list[BackgroundSink] = []
    log = SqliteEventLog(log_path)

    def make(**options: Any) -> BackgroundSink:
        sink = BackgroundSink(lambda: log, **{"linger_seconds": LINGER, **options})
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close(timeout=WAIT)
    log.close()


def test_events_reach_the_store_on_flush_in_the_order_they_were_queued(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    sink = make_sink(max_batch=1000)
    # Ids that sort opposite to emission order: the store's arrival order is what is checked.
    events = [event(n, id=f"{99 - n:020d}-00000000") for n in range(25)]
    for each in events:
        sink.emit(each)
    assert stored_ids(log_path) == []  # queued, not written in the request
    assert sink.describe()["queued"] == 25

    assert sink.flush(timeout=WAIT)
    assert stored_ids(log_path) == [e.id for e in events]
    counts = sink.describe()
    assert (counts["queued"], counts["written"], counts["write_failures"]) == (0, 25, 0)


def test_close_drains_the_queue_and_later_events_are_written_in_the_request(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    sink = make_sink()
    queued = [event(n) for n in range(5)]
    for each in queued:
        sink.emit(each)
    assert stored_ids(log_path) == []

    sink.close(timeout=WAIT)
    assert stored_ids(log_path) == [e.id for e in queued]
    late = event(99)
    sink.emit(late)  # e.g. a request still in flight while the server stops
    assert stored_ids(log_path)[-1] == late.id
    assert sink.counters.written_synchronously == 1


def test_clear_removes_events_queued_before_it_and_keeps_those_after(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    log = SqliteEventLog(log_path)
    sink = make_sink()
    written_before = event(0)
    sink.emit(written_before)
    assert sink.flush(timeout=WAIT)
    queued_before = [event(1), event(2)]
    for each in queued_before:
        sink.emit(each)
    assert stored_ids(log_path) == [written_before.id]  # the two are still queued

    sink.run_after_pending(log.clear, timeout=WAIT)
    assert stored_ids(log_path) == []
    after = event(3)
    sink.emit(after)
    assert sink.flush(timeout=WAIT)
    sink.close(timeout=WAIT)
    # Events queued before the clear were written, then cleared: never resurrected.
    assert stored_ids(log_path) == [after.id]
    log.close()


def test_a_full_queue_waits_briefly_then_writes_in_the_request(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    sink = make_sink(capacity=2, put_timeout=0.05)
    writer_busy, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        writer_busy.set()
        release.wait(WAIT)

    holder = threading.Thread(
        target=sink.run_after_pending, args=(hold_the_writer,), kwargs={"timeout": WAIT}
    )
    holder.start()
    assert writer_busy.wait(WAIT)
    queued = [event(1), event(2)]
    overflow = event(3)
    for each in [*queued, overflow]:
        sink.emit(each)
    # The queue held two; the third waited for room, then was written synchronously.
    assert stored_ids(log_path) == [overflow.id]
    assert sink.counters.written_synchronously == 1

    release.set()
    holder.join(WAIT)
    assert sink.flush(timeout=WAIT)
    assert sorted(stored_ids(log_path)) == sorted(e.id for e in [*queued, overflow])


def test_a_failed_write_is_counted_and_retried_with_the_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    path.mkdir()  # a directory where the database should be: opening it fails
    opened: list[SqliteEventLog] = []
    failures: list[int] = []
    failed = threading.Event()

    def open_log() -> EventLog:
        if not opened:
            opened.append(SqliteEventLog(path))
        return opened[0]

    def on_failure(events: int) -> None:
        failures.append(events)
        failed.set()

    printed = io.StringIO()
    sink = BackgroundSink(
        open_log,
        linger_seconds=LINGER,
        max_batch=3,
        retry_seconds=0.01,
        on_write_failure=on_failure,
        fallback=StdoutSink(printed),
    )
    first = [event(n) for n in range(3)]
    for each in first:
        sink.emit(each)  # the third fills a batch: the writer tries, and fails
    assert failed.wait(WAIT)
    assert failures[0] == 3
    assert not sink.flush(timeout=0.05)  # still failing: the flush says so

    path.rmdir()  # the store recovers
    later = event(3)
    sink.emit(later)
    assert sink.flush(timeout=WAIT)
    sink.close(timeout=WAIT)
    assert sorted(stored_ids(path)) == sorted(e.id for e in [*first, later])  # once each
    assert sink.counters.write_failures >= 1
    assert sink.counters.written == 4
    assert printed.getvalue() == ""  # nothing had to fall back
    opened[0].close()


def test_events_the_store_refuses_at_shutdown_are_printed_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    path.mkdir()
    printed = io.StringIO()
    sink = BackgroundSink(
        lambda: SqliteEventLog(path),
        linger_seconds=LINGER,
        retry_seconds=0.01,
        fallback=StdoutSink(printed),
    )
    events = [event(n) for n in range(4)]
    for each in events:
        sink.emit(each)
    sink.close(timeout=0.2)
    assert [e.id for e in events_from_lines(printed.getvalue().splitlines())] == [
        e.id for e in events
    ]
    assert sink.counters.printed_instead == 4
    assert sink.counters.write_failures >= 1


def test_a_clear_the_store_refuses_is_an_error_and_does_not_run_later(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    sink = make_sink(retry_seconds=0.01)
    attempts: list[int] = []

    def refuse() -> None:
        attempts.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(EventLogError, match="nothing was cleared"):
        sink.run_after_pending(refuse, timeout=0.2)
    tried = len(attempts)
    kept = event(1)
    sink.emit(kept)
    assert sink.flush(timeout=WAIT)
    assert len(attempts) == tried  # cancelled, not retried behind the caller's back
    assert stored_ids(log_path) == [kept.id]


# --- through the handlers and the local server ------------------------------------


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-bbbbbb")


def lingering_service(settings: Settings) -> InferenceService:
    """The service ``log_delivery=background`` builds, with a writer that waits for a flush."""
    service = InferenceService.from_settings(settings, emit_metrics=False, sink=StdoutSink())
    service.sink = BackgroundSink(service.event_log, linger_seconds=LINGER)
    return service


@pytest.fixture
def settings(tmp_path: Path, regression: BuiltModel) -> Settings:
    settings = Settings(
        registry_uri=str(tmp_path / "registry"),
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
        log_delivery="background",
    )
    publish(ModelRegistry.open(settings.registry_uri, model_name="default"), regression)
    return settings


def records_of(built: BuiltModel) -> list[dict[str, Any]]:
    return built.frame.head(8).astype(float).to_dict("records")  # type: ignore[no-any-return]


def call(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = api.handle_local(api_event(method, path, **kwargs))
    return response["statusCode"], body_of(response)


def test_a_client_reads_its_own_prediction_and_error_events(
    settings: Settings, regression: BuiltModel, tmp_path: Path
) -> None:
    service = lingering_service(settings)
    api = Api(service)
    record = records_of(regression)[0]
    status, prediction = call(api, "POST", "/stream", body={"data": record}, request_id="p-1")
    assert status == 200
    assert call(api, "POST", "/batch", body={"data": []}, request_id="e-1")[0] == 400
    assert stored_ids(tmp_path / "log.sqlite3") == []  # both events are still queued

    status, log = call(api, "GET", "/log")
    assert status == 200
    assert [(e["type"], e["request_id"]) for e in log["result"]] == [
        ("error", "e-1"),
        ("prediction", "p-1"),
    ]
    assert log["result"][1]["data"]["outputs"] == prediction["result"]
    status, health = call(api, "GET", "/health")
    assert health["log"]["delivery"] == "background"
    assert health["log"]["written"] == 2
    service.close()


@pytest.mark.parametrize(("method", "path"), [("GET", "/emptyLog"), ("DELETE", "/log")])
def test_clearing_through_the_api_orders_with_queued_events(
    settings: Settings, regression: BuiltModel, method: str, path: str
) -> None:
    api = Api(lingering_service(settings))
    record = records_of(regression)[0]
    for number in range(3):
        call(api, "POST", "/stream", body={"data": record}, request_id=f"before-{number}")
    assert call(api, method, path)[1]["result"] == "log emptied"
    call(api, "POST", "/stream", body={"data": record}, request_id="after")
    api.close()  # drains: nothing queued before the clear comes back

    reopened = Api(
        InferenceService.from_settings(replace(settings, log_delivery="sync"), emit_metrics=False)
    )
    assert [e["request_id"] for e in call(reopened, "GET", "/log")[1]["result"]] == ["after"]
    reopened.close()


def test_a_flush_waits_for_the_events_other_workers_queued_before_it(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    # Two workers' sinks (one process here, two slots of one shared progress):
    # the first lingers for a minute, so only the shared progress can make the
    # second one's flush wait for the first one's events.
    progress = SharedProgress(slots=2)
    first = make_sink(linger_seconds=60.0, shared=progress.claim(0))
    first.emit(event(1))
    second = make_sink(shared=progress.claim(1))
    second.emit(event(2))
    assert len(stored_ids(log_path)) == 0
    flushed: list[bool] = []
    waiter = threading.Thread(target=lambda: flushed.append(second.flush(timeout=WAIT)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # still waiting for the first worker's event
    assert first.flush(timeout=WAIT)
    waiter.join(WAIT)
    assert flushed == [True]
    assert len(stored_ids(log_path)) == 2


def test_a_flush_gives_up_on_a_stuck_worker_after_its_timeout(
    make_sink: Callable[..., BackgroundSink],
) -> None:
    progress = SharedProgress(slots=2)
    make_sink(linger_seconds=60.0, shared=progress.claim(0)).emit(event(1))
    assert make_sink(shared=progress.claim(1)).flush(timeout=0.2) is False


def test_background_delivery_is_a_setting_and_durable_sync_the_serve_default() -> None:
    assert load_settings({"MLSYS_LOG_DELIVERY": "background"}).log_delivery == "background"
    with pytest.raises(ConfigError, match="MLSYS_LOG_DELIVERY"):
        load_settings({"MLSYS_LOG_DELIVERY": "later"})
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert parser.parse_args([]).log_delivery == "sync"
    assert parser.parse_args(["--log-delivery", "background"]).log_delivery == "background"


def test_an_event_json_cannot_hold_is_stored_as_its_repr_and_does_not_block_the_queue(
    make_sink: Callable[..., BackgroundSink], log_path: Path
) -> None:
    sink = make_sink()
    # orjson refuses integers beyond 64 bits.
    sink.emit(Event(type="feedback", request_id="r1", data={"index": 2**70}))
    sink.emit(event(2))
    assert sink.flush(timeout=WAIT)
    assert sink.counters.write_failures == 0
    log = SqliteEventLog(log_path)
    stored = {e.request_id: dict(e.data) for e in log.query(limit=10).events}
    log.close()
    assert stored["r1"]["unserializable"].startswith("TypeError")
    assert str(2**70) in stored["r1"]["repr"]
    assert stored["r2"] == {"n": 2}
