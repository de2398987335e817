"""Where rollout evidence comes from: CloudWatch metrics (deployed) or the system log (local).

The two sources must agree on the same traffic: the serving path's EMF lines, put into
(moto) CloudWatch the way CloudWatch Logs extracts them, give the metrics source the same
requests, errors, p99 and shadow deviation the log source counts from the events.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, SqliteEventLog
from mlsys.eventlog.model import new_event_id
from mlsys.registry import ModelRegistry, Rollout, RolloutMode, iso, utc_now
from mlsys.rollout.policy import Evidence, RolloutPolicy, decide_rollout
from mlsys.rollout.traffic import (
    EventLogTraffic,
    MetricsTraffic,
    metric_queries,
    metrics_window,
    traffic_from_metrics,
    traffic_source_for,
)
from mlsys.settings import Settings, load_settings
from tests.cloudwatch_support import percentiles_in_moto, put_emf_documents
from tests.inference_support import (
    BuiltModel,
    api_event,
    build_regression,
    fake_aws_credentials,
    publish,
)

CHAMPION, CANDIDATE = "20260101T000000Z-000001", "20260102T000000Z-000002"


# --- the pure parts ---------------------------------------------------------------------


def test_a_canary_asks_for_six_numbers_and_a_shadow_rollout_for_eight() -> None:
    canary = metric_queries("canary", champion_version="a", candidate_version="b")
    assert [(q.id, q.metric, q.stat, q.version) for q in canary] == [
        ("champion_requests", "Requests", "Sum", "a"),
        ("champion_errors", "Errors", "Sum", "a"),
        ("champion_p99", "Latency", "p99", "a"),
        ("candidate_requests", "Requests", "Sum", "b"),
        ("candidate_errors", "Errors", "Sum", "b"),
        ("candidate_p99", "Latency", "p99", "b"),
    ]
    shadow = metric_queries("shadow", champion_version="a", candidate_version="b")
    assert [(q.metric, q.stat) for q in shadow if q.version == "b"] == [
        ("ShadowLatency", "SampleCount"),
        ("ShadowErrors", "Sum"),
        ("ShadowLatency", "p99"),
        ("ShadowRecords", "Sum"),
        ("ShadowDeviation", "Sum"),
    ]


def test_metric_values_become_traffic_and_a_slow_candidate_is_aborted() -> None:
    champion, candidate, deviation = traffic_from_metrics(
        {
            "champion_requests": [90_000.0],
            "champion_errors": [90.0],
            "champion_p99": [9.0],
            "candidate_requests": [10_000.0],
            "candidate_errors": [10.0],
            "candidate_p99": [40.0],
        }
    )
    assert (champion.requests, champion.errors, champion.p99_latency_ms) == (90_000, 90, 9.0)
    assert (candidate.requests, candidate.errors) == (10_000, 10)
    assert deviation is None
    verdict = decide_rollout(
        "canary",
        Evidence(elapsed_seconds=3600, champion=champion, candidate=candidate),
        RolloutPolicy(),
    )
    assert verdict.action == "abort"
    assert verdict.breaches == ("p99 latency 40.0 ms vs champion 9.0 ms (limit 18.5 ms)",)


def test_no_data_points_is_no_traffic_and_shadow_deviation_is_record_weighted() -> None:
    champion, candidate, deviation = traffic_from_metrics(
        {"shadow_records": [100.0, 300.0], "shadow_deviation": [10.0, 30.0]}
    )
    assert (champion.requests, champion.errors, champion.p99_latency_ms) == (0, 0, None)
    assert candidate.p99_latency_ms is None
    assert deviation == pytest.approx(0.1)


def test_the_metrics_window_is_whole_minutes_from_the_first_after_the_start() -> None:
    now = datetime(2026, 12, 3, 5, 0, 10, tzinfo=UTC)
    assert metrics_window("2026-12-03T04:30:20.500000Z", now) == (
        datetime(2026, 12, 3, 4, 31, tzinfo=UTC),
        datetime(2026, 12, 3, 5, 1, tzinfo=UTC),
    )
    # Started on a minute boundary: that minute counts.
    assert metrics_window("2026-12-03T04:30:00.000000Z", now)[0] == datetime(  # type: ignore[index]
        2026, 12, 3, 4, 30, tzinfo=UTC
    )
    # Within the first minute there is no whole minute to read yet.
    assert metrics_window("2026-12-03T05:00:05.000000Z", now) is None
    # A bake older than 15 days is read in 5-minute units (what CloudWatch keeps by then).
    assert metrics_window("2026-11-10T04:31:20.000000Z", now) == (
        datetime(2026, 11, 10, 4, 35, tzinfo=UTC),
        datetime(2026, 12, 3, 5, 5, tzinfo=UTC),
    )


def test_the_setting_chooses_the_source_and_a_typo_is_a_clear_error(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite3")
    assert isinstance(traffic_source_for(load_settings({}), log), EventLogTraffic)
    metrics = load_settings({"MLSYS_ROLLOUT_EVIDENCE": "metrics"})
    client = boto3.client("cloudwatch", region_name="us-east-1")
    assert isinstance(traffic_source_for(metrics, log, cloudwatch_client=client), MetricsTraffic)
    with pytest.raises(ConfigError, match="MLSYS_ROLLOUT_EVIDENCE"):
        load_settings({"MLSYS_ROLLOUT_EVIDENCE": "cloudwatch"})


# --- the log source: bounded, one window for every type ---------------------------------


def at(moment: datetime, **fields: Any) -> Event:
    ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    return Event(id=new_event_id(ns), **fields)


def test_a_truncated_log_read_counts_every_type_over_the_same_window(tmp_path: Path) -> None:
    """The fault this fixes: at high traffic the prediction bound covered the last seconds
    while errors were counted over the whole bake, inflating the error rate."""
    log = SqliteEventLog(tmp_path / "log.sqlite3")
    started = utc_now() - timedelta(hours=1)
    events = []
    for second in range(3600):  # one champion and one candidate request a second
        moment = started + timedelta(seconds=second, milliseconds=500)
        events.append(at(moment, type="prediction", model_version="v1", data={"latency_ms": 2.0}))
        events.append(at(moment, type="prediction", model_version="v2", data={"latency_ms": 2.0}))
        if second % 100 == 0:  # 1% errors each, spread over the hour
            events.append(at(moment, type="error", model_version="v1"))
            events.append(at(moment, type="error", model_version="v2"))
    log.append_many(events)
    rollout = Rollout(mode="canary", candidate="v2", started=iso(started), fraction=0.5)

    bounded = EventLogTraffic(log, max_events=1_000).evidence(
        rollout=rollout, champion_version="v1", now=utc_now()
    )
    assert bounded.truncated
    assert bounded.candidate.requests == 500  # the newest 1,000 predictions, half each
    # ~1% of those 500 seconds, not 36 errors against 500 requests (6.7%).
    assert bounded.candidate.errors <= 6
    assert bounded.candidate.error_rate < 0.015
    assert bounded.elapsed_seconds >= 3600

    whole = EventLogTraffic(log).evidence(rollout=rollout, champion_version="v1", now=utc_now())
    assert not whole.truncated
    assert (whole.candidate.requests, whole.candidate.errors) == (3600, 36)
    assert whole.source == "log"


def test_the_log_read_is_bounded_by_bytes_too(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log.sqlite3")
    started = utc_now() - timedelta(minutes=10)
    outputs = [0.5] * 2_000  # a /batch event of 2,000 records, ~10 KB
    log.append_many(
        [
            at(
                started + timedelta(seconds=i),
                type="prediction",
                model_version="v1",
                data={"endpoint": "batch", "outputs": outputs, "latency_ms": 3.0},
            )
            for i in range(300)
        ]
    )
    rollout = Rollout(mode="canary", candidate="v2", started=iso(started), fraction=0.5)
    evidence = EventLogTraffic(log, max_bytes=100_000).evidence(
        rollout=rollout, champion_version="v1", now=utc_now()
    )
    assert evidence.truncated
    size = len(log.query(limit=1, event_type="prediction").events[0].to_json())
    # Reading stops at the event that reaches 100 KB: 300 events would have been 2.4 MB.
    assert evidence.champion.requests == -(-100_000 // size)


# --- both sources on the same served traffic --------------------------------------------


@pytest.fixture(scope="module")
def models() -> tuple[BuiltModel, BuiltModel]:
    return (
        build_regression(version=CHAMPION, alpha=1.0),
        build_regression(version=CANDIDATE, alpha=0.01),
    )


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_credentials(monkeypatch)
    with mock_aws(), percentiles_in_moto():
        yield boto3.client("cloudwatch")


def serve_rollout(
    tmp_path: Path, models: tuple[BuiltModel, BuiltModel], mode: RolloutMode
) -> tuple[Api, ModelRegistry, Rollout]:
    champion, candidate = models
    settings = Settings(
        registry_uri=str(tmp_path / "registry"), log_uri=f"sqlite:///{tmp_path}/log.sqlite3"
    )
    registry = ModelRegistry.open(settings.registry_uri, model_name="default")
    publish(registry, champion)
    registry.register(candidate.card, candidate.model_bytes)
    # Begun two minutes ago, so this minute's traffic is inside the metrics' whole minutes.
    rollout = Rollout(
        mode=mode,
        candidate=CANDIDATE,
        started=iso(utc_now() - timedelta(minutes=2)),
        fraction=0.3 if mode == "canary" else None,
    )
    registry.set_rollout(rollout, reason="t", actor="t", expected=registry.require_champion())
    return Api(InferenceService.from_settings(settings, emit_metrics=True)), registry, rollout


@pytest.mark.parametrize("mode", ["canary", "shadow"])
def test_metrics_and_log_give_the_same_evidence_for_the_same_traffic(
    tmp_path: Path,
    models: tuple[BuiltModel, BuiltModel],
    mode: RolloutMode,
    cloudwatch: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, _, rollout = serve_rollout(tmp_path, models, mode)
    record = models[0].frame.iloc[0].tolist()
    for i in range(120):
        event = api_event("POST", "/stream", body={"data": record}, request_id=f"ok-{i}")
        assert api.handle_predict(event)["statusCode"] == 200
    for i in range(15):  # empty batches: 400s, counted against the version the id routes to
        event = api_event("POST", "/batch", raw_body='{"data": []}', request_id=f"bad-{i}")
        assert api.handle_predict(event)["statusCode"] == 400
    put_emf_documents(cloudwatch, capsys.readouterr().out.splitlines())

    now = utc_now()
    from_metrics = MetricsTraffic(cloudwatch).evidence(
        rollout=rollout, champion_version=CHAMPION, now=now
    )
    log = SqliteEventLog(tmp_path / "log.sqlite3")
    from_log = EventLogTraffic(log).evidence(rollout=rollout, champion_version=CHAMPION, now=now)

    assert (from_metrics.source, from_metrics.api_calls) == ("metrics", 1)
    for role in ("champion", "candidate"):
        metric, logged = getattr(from_metrics, role), getattr(from_log, role)
        assert (metric.requests, metric.errors) == (logged.requests, logged.errors), role
        assert metric.p99_latency_ms == pytest.approx(logged.p99_latency_ms, abs=1e-3), role
    assert from_log.champion.requests > 0
    assert from_log.candidate.requests > 0
    if mode == "shadow":
        assert from_log.candidate.requests == 120  # every request ran in the shadow
        assert from_metrics.shadow_deviation == pytest.approx(from_log.shadow_deviation)
        assert from_log.shadow_deviation is not None
    else:
        assert from_log.candidate.errors + from_log.champion.errors == 15
        assert from_metrics.shadow_deviation is None
