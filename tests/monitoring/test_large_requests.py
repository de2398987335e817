"""Issue 19's "drift sees large requests", through the served handlers: requests too large
to log whole keep a sample of their records, weighted as the whole request, and every
report says how many records its drift figures rest on."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_inference.events import (
    MAX_LOGGED_INPUT_BYTES,
    MAX_SAMPLED_RECORDS,
    sampled_input_mode,
)
from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.cli.monitor import summary
from mlsys.eventlog import Event, events_from_lines
from mlsys.monitoring.report import render_html
from mlsys.settings import Settings
from tests.monitoring.support import (
    Trained,
    make_api,
    monitor,
    open_log,
    post,
    records,
    send_batches,
    shifted,
)

AGE = "age in years"


def _age_shifted(trained: Trained, rows: int) -> list[dict[str, Any]]:
    features = trained.features()
    drawn = features.sample(n=rows, replace=True, random_state=7).reset_index(drop=True)
    return records(shifted(drawn, AGE, 2.0))


def test_3000_age_shifted_rows_in_1000_record_batches_flag_age(
    classifier: Trained, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    api = make_api(classifier, uri)
    traffic = _age_shifted(classifier, 3000)
    assert len(json.dumps({"data": traffic[:1000]})) > MAX_LOGGED_INPUT_BYTES
    send_batches(api, traffic, prefix="big", size=1000)
    # And 200 in-distribution records in small requests, logged whole (the 202).
    send_batches(api, records(classifier.features().iloc[:200]), prefix="small")

    report = monitor(classifier, open_log(uri))
    (version,) = report.versions
    assert version.records == 3200
    assert version.drifted == [AGE]
    coverage = version.coverage
    assert (coverage.records, coverage.of, coverage.unlogged) == (
        3 * MAX_SAMPLED_RECORDS + 200,
        3200,
        0,
    )
    assert not coverage.low
    assert version.features[AGE].count == 500

    document = report.to_json()["versions"][0]
    assert document["coverage"]["records"] == 500
    assert document["coverage"]["share"] == pytest.approx(500 / 3200, abs=1e-4)
    assert document["features"][AGE] == {
        "psi": version.features[AGE].psi,
        "drift": True,
        "coverage": {"records": 500, "share": pytest.approx(500 / 3200, abs=1e-4)},
        "importance": version.importance[AGE],
    }
    text = summary(report)
    assert "3200 records; feature drift rests on 500 (15.6%)" in text
    assert f"PSI {version.features[AGE].psi:.4f}" in text
    html = render_html(report)
    assert "feature drift rests on 500 of them (15.6%)" in html


def test_a_window_blind_to_large_requests_says_so_in_every_format(
    classifier: Trained, tmp_path: Path
) -> None:
    """Events logged before requests were sampled (a digest only) are not silently
    left out: the report warns that the figures do not see them."""
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    log = open_log(uri)
    api = make_api(classifier, uri)
    send_batches(api, records(classifier.features().iloc[:200]), prefix="small")
    page = log.query(event_type="prediction", limit=1).events[0]
    log.append(
        Event(
            type="prediction",
            model=classifier.model_name,
            model_version=page.model_version,
            data={"endpoint": "batch", "records": 3000, "inputs_sha256": "0" * 64,
                  "inputs_truncated": True},
        )
    )  # fmt: skip
    report = monitor(classifier, log)
    (version,) = report.versions
    assert version.coverage.unlogged == 3000
    warning = "3000 of 3200 records were logged as a digest only"
    assert any(warning in w for w in version.coverage.warnings)
    assert version.coverage.to_json()["low"] is True
    assert warning in summary(report)
    assert warning in render_html(report)


def test_sampled_logging_through_cloudwatch_lines_flags_age_too(
    classifier: Trained, tmp_path: Path
) -> None:
    """The AWS path: ``sampled`` input logging, events printed as log lines (what the
    CloudWatch Logs subscription ships to the ingest function), then monitored."""
    stdout = io.StringIO()
    settings = Settings(
        registry_uri=str(classifier.registry),
        model_name=classifier.model_name,
        log_uri=f"sqlite:///{tmp_path}/log.sqlite3",
        log_delivery="stdout",
        log_inputs="sampled",
        log_inputs_sample_rate=0.5,
    )
    api = Api(InferenceService.from_settings(settings, emit_metrics=False, stdout=stdout))
    traffic = _age_shifted(classifier, 12_000)
    ids = [f"aws-{i}" for i in range(12)]
    for i, request_id in enumerate(ids):
        post(api, "/batch", {"data": traffic[i * 1000 : (i + 1) * 1000]}, request_id)
    lines = stdout.getvalue().splitlines()
    assert all(len(line.encode()) < 256 * 1024 for line in lines)  # a CloudWatch Logs event
    log = open_log(settings.log_uri)
    log.append_many(events_from_lines(lines))

    chosen = [
        i for i in ids if sampled_input_mode("sampled", sample_rate=0.5, request_id=i) == "full"
    ]
    assert 0 < len(chosen) < len(ids)
    (version,) = monitor(classifier, log).versions
    assert version.records == 12_000
    assert version.coverage.records == MAX_SAMPLED_RECORDS * len(chosen)
    assert version.coverage.unlogged == 0  # sampled-out requests are not "too large"
    assert version.drifted == [AGE]
