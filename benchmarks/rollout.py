"""Rollout evaluator benchmark: reads and memory of one evaluation, before vs after.

Setup (not measured; an SQLite log, so the peak is the evaluator's own and not a store
emulator's): a canary with ``EVENTS`` ``/batch`` prediction events of ``RECORDS`` records
(full outputs, inputs as a digest) and 1% error events, then as many again.

Measured (tracemalloc peak of Python allocations; log pages read, and CloudWatch
``GetMetricData`` calls counted on the client):

* baseline ("before", main at 48c4d8d): the evaluator's old read, ``log.query`` pages of
  1,000 per type (on DynamoDB each page asks all 8 shards for 1,001 items), every event
  kept as a dict until the tally;
* ``log`` ("after", local runs): :class:`mlsys.rollout.traffic.EventLogTraffic`, bounded by
  count and bytes, each event reduced to the tally's fields as it is read;
* the live-quality join (``feedback`` to predictions, still from the log) over
  ``QUALITY_EVENTS`` predictions with feedback, with its default bounds and without;
* ``metrics`` ("after", the deployed evaluator):
  :class:`mlsys.rollout.traffic.MetricsTraffic` over an hour of 100M requests/day
  published per minute into moto CloudWatch.

Two log sizes are measured; the growth of the peak per event read extrapolates to the old
bound (50,000 events per type). Targets
(exit status 1 when missed): the metrics evidence takes 1 API call and under 16 MiB.
"""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlsys.eventlog import Event, open_event_log
from mlsys.registry import ModelRegistry, Rollout, iso, utc_now
from mlsys.rollout.policy import collect_evidence
from mlsys.rollout.quality import feedback_live_quality
from mlsys.rollout.traffic import EventLogTraffic, MetricsTraffic

EVENTS = 2_000
"""Prediction events written per step (two steps: the growth per event is the difference)."""
RECORDS = 100
OLD_BOUND = 50_000
QUALITY_EVENTS = 60_000
"""Predictions (half each version, all with feedback) for the live-quality join."""
METRICS_MEMORY_TARGET = 16 * 1024 * 1024


def _measure(work: Callable[[], Any]) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _old_read(log: Any, rollout: Rollout) -> Any:
    """The read path of main at 48c4d8d (mlsys/rollout/evaluation.py ``read_evidence``)."""
    events: list[dict[str, Any]] = []
    for event_type in ("prediction", "error", "shadow"):
        token: str | None = None
        read = 0
        while True:
            page = log.query(
                limit=1000, event_type=event_type, since=rollout.started, next_token=token
            )
            events.extend(e.to_dict() for e in page.events)
            read += len(page.events)
            token = page.next_token
            if token is None or read >= OLD_BOUND:
                break
    return collect_evidence(events, rollout=rollout, champion_version="v1", now=iso(utc_now()))


def _both_log_reads(log: Any, rollout: Rollout) -> dict[str, tuple[int, int, int]]:
    figures = {}
    old, old_peak = _measure(lambda: _old_read(log, rollout))
    figures["before (main)"] = (old.events_read, -(-old.events_read // 1000), old_peak)
    new, new_peak = _measure(
        lambda: EventLogTraffic(log).evidence(rollout=rollout, champion_version="v1", now=utc_now())
    )
    figures["log (after)"] = (new.events_read, new.api_calls, new_peak)
    return figures


def _log_setup(path: Path, *, first: int) -> Any:
    log = open_event_log(f"sqlite:///{path}")
    outputs = [round(0.5 + i / 1000, 3) for i in range(RECORDS)]
    for start in range(0, EVENTS, 500):
        log.append_many(
            [
                Event(
                    type="prediction",
                    model_version="v2" if i % 10 == 0 else "v1",
                    request_id=f"r{first + start + i}",
                    data={
                        "endpoint": "batch",
                        "records": RECORDS,
                        "inputs": {"sha256": "0" * 64},
                        "outputs": outputs,
                        "latency_ms": 4.0,
                    },
                )
                for i in range(min(500, EVENTS - start))
            ]
        )
    log.append_many([Event(type="error", model_version="v1") for _ in range(EVENTS // 100)])
    return log


def _live_quality(tmp: Path) -> dict[str, tuple[int, int, bool, int]]:
    """The live-quality join over a busy log, with the default bounds and without any."""
    from tests.unit.test_registry_store import make_card  # noqa: PLC0415

    registry = ModelRegistry.open(str(tmp / "registry"), model_name="m")
    for version in ("v1", "v2"):
        registry.register(make_card(version), b"onnx")
    first = registry.promote("v1", reason="bench", actor="bench", expected=None)
    rollout = Rollout(
        mode="canary", candidate="v2", started=iso(utc_now() - timedelta(hours=1)), fraction=0.5
    )
    registry.set_rollout(rollout, reason="bench", actor="bench", expected=first)
    log = open_event_log(f"sqlite:///{tmp / 'quality.sqlite3'}")
    ids = [f"q{i}" for i in range(QUALITY_EVENTS)]
    log.append_many(
        [
            Event(
                type="prediction",
                model_version="v2" if i % 2 else "v1",
                request_id=r,
                data={"endpoint": "stream", "outputs": 1.0 + i % 7, "latency_ms": 3.0},
            )
            for i, r in enumerate(ids)
        ]
    )
    for start in range(0, QUALITY_EVENTS, 100):
        items = [{"request_id": r, "index": 0, "actual": 1.0} for r in ids[start : start + 100]]
        log.append(Event(type="feedback", model_version="v1", data={"items": items}))
    figures = {}
    for name, bounds in (("bounded (defaults)", {}), ("unbounded", {"max_events": 10**9})):
        provide = feedback_live_quality(registry, **bounds)
        live, peak = _measure(lambda: provide(log, rollout, "v1"))  # noqa: B023 - run here
        assert live is not None
        figures[name] = (live.events_read, live.bytes_read, live.truncated, peak)
    return figures


def _metrics(cloudwatch: Any, calls: Counter[str]) -> tuple[Any, int]:
    from tests.cloudwatch_support import VersionTraffic, publish_traffic  # noqa: PLC0415

    started = utc_now() - timedelta(minutes=60)
    rollout = Rollout(mode="canary", candidate="v2", started=iso(started), fraction=0.1)
    per_minute = 100_000_000 // 1440
    publish_traffic(
        cloudwatch,
        start=started.replace(second=0, microsecond=0) + timedelta(minutes=1),
        minutes=59,
        versions=[
            VersionTraffic(version=v, requests_per_minute=n, error_rate=0.001, p50_ms=4, p99_ms=9)
            for v, n in (("v1", per_minute * 9 // 10), ("v2", per_minute // 10))
        ],
    )
    calls.clear()
    source = MetricsTraffic(cloudwatch)
    return _measure(lambda: source.evidence(rollout=rollout, champion_version="v1", now=utc_now()))


def main() -> int:
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from tests.cloudwatch_support import percentiles_in_moto  # noqa: PLC0415

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    with mock_aws(), percentiles_in_moto():
        calls: Counter[str] = Counter()
        cloudwatch = boto3.client("cloudwatch")
        cloudwatch.meta.events.register(
            "before-call", lambda model, **_: calls.update([model.name])
        )
        rollout = Rollout(
            mode="canary", candidate="v2", started=iso(utc_now() - timedelta(hours=1)), fraction=0.1
        )
        with tempfile.TemporaryDirectory() as tmp:
            log = _log_setup(Path(tmp) / "log.sqlite3", first=0)
            small = _both_log_reads(log, rollout)
            _log_setup(Path(tmp) / "log.sqlite3", first=EVENTS)
            large = _both_log_reads(log, rollout)
            quality = _live_quality(Path(tmp))
        metrics, metrics_peak = _metrics(cloudwatch, calls)
    print(f"/batch events of {RECORDS} records (+1% errors) in SQLite; metrics: 1 hour of "
          "a 10% canary at 100M requests/day (~4.2M requests) in moto CloudWatch")  # fmt: skip
    print(f"{'read path':<16}{'events':>8}{'log pages':>13}{'peak MiB':>10}")
    for figures in (small, large):
        for name, (events, api, peak) in figures.items():
            print(f"{name:<16}{events:>8,}{api:>13}{peak / 2**20:>10.1f}")
    print(f"{'metrics (after)':<16}{'-':>8}{1:>13}{metrics_peak / 2**20:>10.1f}  (GetMetricData)")
    for name in small:
        events = large[name][0] - small[name][0]
        grow = (large[name][2] - small[name][2]) / events
        print(
            f"{name}: +{grow / 1024:.2f} KiB peak per event read; at the old bound "
            f"({OLD_BOUND:,}/type, 3 types) ~{grow * OLD_BOUND / 2**20:,.0f} MiB per type "
            f"(DynamoDB: 8 Query calls of 1,001 items per page of 1,000, so up to "
            f"{OLD_BOUND // 1000 * 8 * 3:,} calls reading {OLD_BOUND * 8 * 3:,} items)"
        )
    print(f"live quality over {QUALITY_EVENTS:,} /stream predictions, all with feedback:")
    for name, (events, size, truncated, peak) in quality.items():
        print(
            f"  {name:<22}{events:>8,} events {size / 2**20:>6.1f} MiB read, "
            f"truncated {truncated!s:<5}, peak {peak / 2**20:.1f} MiB"
        )
    assert metrics.candidate.requests > 0
    ok = calls["GetMetricData"] == 1 and metrics_peak < METRICS_MEMORY_TARGET
    print("targets met" if ok else "TARGET MISSED: metrics evidence must be 1 call, < 16 MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
