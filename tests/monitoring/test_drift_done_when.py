"""The issue's acceptance criteria, on real trained models served through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

from mlsys.eventlog import Event
from mlsys.monitoring.drift import DRIFT_THRESHOLD
from mlsys.monitoring.monitor import run_monitor
from mlsys.monitoring.window import iso_z
from mlsys.registry import ModelRegistry
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


def drifted(trained: Trained, traffic: list[dict[str, object]], log_path: Path) -> list[str]:
    uri = f"sqlite:///{log_path}"
    api = make_api(trained, uri)
    send_batches(api, traffic, prefix="r")
    report = monitor(trained, open_log(uri))
    (version,) = report.versions
    assert version.records == len(traffic)
    return sorted(version.drifted)


def test_in_distribution_traffic_shows_no_drift(regressor: Trained, tmp_path: Path) -> None:
    traffic = records(regressor.features())
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    send_batches(make_api(regressor, uri), traffic, prefix="r")
    (version,) = monitor(regressor, open_log(uri)).versions
    assert version.records == 1500
    assert version.drifted == []
    assert all(d.psi is not None and d.psi < 0.05 for d in version.features.values())
    assert version.prediction is not None
    assert not version.prediction.drift


def test_one_numeric_feature_shifted_two_sds_flags_it_alone(
    regressor: Trained, tmp_path: Path
) -> None:
    traffic = records(shifted(regressor.features(), "b", 2.0))
    assert drifted(regressor, traffic, tmp_path / "log.sqlite3") == ["b"]


def test_classifier_traffic_from_one_category_flags_that_feature_alone(
    classifier: Trained, tmp_path: Path
) -> None:
    features = classifier.features()
    traffic = records(features[features["home city"] == "Paris"])
    assert len(traffic) > 300
    assert drifted(classifier, traffic, tmp_path / "log.sqlite3") == ["home city"]


def test_unseen_categories_and_more_missing_values_are_drift(
    classifier: Trained, tmp_path: Path
) -> None:
    features = classifier.features().copy()
    features["home city"] = np.where(np.arange(len(features)) % 2 == 0, "Brest", None)
    traffic = records(features)
    assert drifted(classifier, traffic, tmp_path / "log.sqlite3") == ["home city"]


def test_live_quality_on_200_predictions_equals_the_metric_computed_directly(
    regressor: Trained, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    api = make_api(regressor, uri)
    rows = records(regressor.features().iloc[:200])
    actual = regressor.frame["y"].iloc[:200].to_numpy()
    predicted: list[float] = []
    feedback: list[dict[str, object]] = []
    for i, row in enumerate(rows[:100]):  # one /stream request per record
        predicted.append(post(api, "/stream", {"data": row}, f"s-{i}")["result"])
        feedback.append({"request_id": f"s-{i}", "actual": float(actual[i])})
    batch = post(api, "/batch", {"data": rows[100:]}, "b-0")["result"]
    predicted.extend(batch)
    feedback.extend(
        {"request_id": "b-0", "index": j, "actual": float(actual[100 + j])}
        for j in range(len(batch))
    )
    accepted = post(api, "/feedback", {"data": feedback}, "f-0")
    assert accepted["result"] == {"accepted": 200}

    (version,) = monitor(regressor, open_log(uri)).versions
    expected = r2_score(actual, predicted)
    assert version.quality is not None
    assert version.quality.metric == "r2"
    assert version.quality.n == 200
    assert version.quality.value == pytest.approx(expected, abs=1e-6)
    assert version.quality.offline is not None
    assert version.unmatched_feedback == 0


def test_classifier_live_quality_matches_training_f1(classifier: Trained, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    api = make_api(classifier, uri)
    frame = classifier.frame.iloc[:200]
    result = post(api, "/batch", {"data": records(frame.drop(columns=["label"]))}, "b-0")
    items = [
        {"request_id": "b-0", "index": i, "actual": label} for i, label in enumerate(frame["label"])
    ]
    post(api, "/feedback", {"data": items}, "f-0")
    (version,) = monitor(classifier, open_log(uri)).versions
    classes = sorted(set(frame["label"]) | set(result["result"]))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in frame["label"]])
    labels = np.array([index[c] for c in result["result"]])
    expected = f1_score(y, labels, average="macro")
    assert version.quality is not None
    assert version.quality.metric == "f1_macro"
    assert version.quality.value == pytest.approx(expected, abs=1e-6)


def test_feedback_before_its_prediction_is_unmatched_then_joined(
    regressor: Trained, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path}/log.sqlite3"
    api = make_api(regressor, uri)
    row = records(regressor.features().iloc[:1])[0]
    post(api, "/feedback", {"data": {"request_id": "late", "actual": 1.5}}, "f-0")
    (early,) = monitor(regressor, open_log(uri)).versions
    assert early.unmatched_feedback == 1
    assert early.quality is None
    assert early.records == 0

    post(api, "/stream", {"data": row}, "late")
    (later,) = monitor(regressor, open_log(uri)).versions
    assert later.unmatched_feedback == 0
    assert later.quality is not None
    assert later.quality.n == 1


def test_threshold_is_the_documented_convention() -> None:
    assert DRIFT_THRESHOLD == 0.2


def test_late_ground_truth_joins_with_a_lookback(regressor: Trained, tmp_path: Path) -> None:
    registry = ModelRegistry.open(str(regressor.registry), model_name=regressor.model_name)
    version = registry.require_champion().version
    now = datetime.now(UTC)
    log = open_log(f"sqlite:///{tmp_path}/log.sqlite3")
    made = now - timedelta(hours=2)
    log.append(
        Event(
            type="prediction",
            request_id="old",
            model_version=version,
            time=iso_z(made),
            data={"endpoint": "batch", "records": 2, "outputs": [1.0, 2.0]},
        )
    )
    log.append(
        Event(
            type="feedback",
            model_version=version,
            time=iso_z(now - timedelta(minutes=10)),
            data={"items": [{"request_id": "old", "index": 1, "actual": 2.5}]},
        )
    )
    window = {"since": iso_z(now - timedelta(hours=1)), "until": iso_z(now)}
    (alone,) = run_monitor(log=log, registry=registry, **window).versions
    assert (alone.records, alone.unmatched_feedback, alone.quality) == (0, 1, None)
    (joined,) = run_monitor(
        log=log, registry=registry, predictions_since=iso_z(made), **window
    ).versions
    assert joined.records == 0  # the old prediction is not part of the window's drift
    assert joined.unmatched_feedback == 0
    assert joined.quality is not None
    assert joined.quality.n == 1
