"""Guardrail decisions over measurements, the time-bounded search and the EMF output."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import get_scorer

from mlsys.contract import FeatureSpec
from mlsys.metrics import METRICS
from mlsys.settings import GuardrailBudgets
from training_job.cloudwatch import emit_training_metrics
from training_job.guardrails import (
    classification_parity_check,
    latency_check,
    onnx_check,
    regression_parity_check,
    size_check,
)
from training_job.search import projected_seconds, search

BUDGETS = GuardrailBudgets()


def test_regression_parity_tolerance_scales_with_the_predictions() -> None:
    expected = np.array([100.0, 200.0, 300.0])
    assert regression_parity_check(expected, expected + 0.01, budgets=BUDGETS).passed
    failed = regression_parity_check(expected, expected + 0.1, budgets=BUDGETS)
    assert not failed.passed
    assert "0.1 > tolerance 0.03" in failed.detail
    assert not regression_parity_check(
        expected, np.array([1.0, np.nan, 3.0]), budgets=BUDGETS
    ).passed
    assert not regression_parity_check(expected, expected[:2], budgets=BUDGETS).passed


def test_classification_parity_allows_label_flips_only_on_near_ties() -> None:
    proba = np.array([[0.9, 0.1], [0.50002, 0.49998]])
    labels = np.array([0, 0])
    flipped_tie = np.array([0, 1])
    assert classification_parity_check(labels, proba, flipped_tie, proba, budgets=BUDGETS).passed
    flipped_clear = np.array([1, 0])
    result = classification_parity_check(labels, proba, flipped_clear, proba, budgets=BUDGETS)
    assert not result.passed
    assert "1 label mismatch" in result.detail
    drifted = proba + np.array([[0.01, -0.01], [0.0, 0.0]])
    assert not classification_parity_check(labels, proba, labels, drifted, budgets=BUDGETS).passed


def test_latency_and_size_budgets() -> None:
    budgets = GuardrailBudgets(latency_p95_ms=5.0, max_model_bytes=1000)
    fast = latency_check(np.full(100, 1.0), budgets=budgets)
    assert fast.passed
    assert fast.measured["p95_ms"] == 1.0
    slow = latency_check(np.array([1.0] * 90 + [20.0] * 10), budgets=budgets)
    assert not slow.passed
    assert size_check(1000, budgets=budgets).passed
    assert not size_check(1001, budgets=budgets).passed


def test_onnx_check_rejects_a_corrupt_model() -> None:
    result = onnx_check(b"definitely not a protobuf model")
    assert not result.passed
    assert result.detail.startswith("onnx.checker")


def test_projected_final_fit_seconds_scale_with_rows() -> None:
    # 1 s for 10,000 rows: linear cost gives 100 s on 1,000,000 rows; never below the fold.
    assert projected_seconds(fold_rows=10_000, fold_seconds=1.0, rows=1_000_000, exponent=1.0) == (
        pytest.approx(100.0)
    )
    assert projected_seconds(
        fold_rows=10_000, fold_seconds=1.0, rows=1_000_000, exponent=1.2
    ) == pytest.approx(100.0**1.2)
    assert projected_seconds(fold_rows=10_000, fold_seconds=2.0, rows=5_000, exponent=1.2) == 2.0


def _search_data() -> tuple[pd.DataFrame, np.ndarray, tuple[FeatureSpec, ...]]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"f0": rng.normal(size=200), "f1": rng.normal(size=200)})
    y = x["f0"].to_numpy() * 2 + rng.normal(scale=0.1, size=200)
    features = (
        FeatureSpec(name="a", kind="numeric", input_name="f0"),
        FeatureSpec(name="b", kind="numeric", input_name="f1"),
    )
    return x, y, features


def test_search_with_an_exhausted_budget_still_returns_the_first_candidate() -> None:
    x, y, features = _search_data()
    ticks = itertools.count()  # every reading of the clock is one second later
    result = search(
        x,
        y,
        features=features,
        task="regression",
        metric=METRICS["r2"],
        seed=0,
        time_budget_seconds=0.5,
        clock=lambda: float(next(ticks)),
    )
    assert result.best.name == "linear"
    assert [c.status for c in result.candidates] == ["ok", "skipped", "skipped", "skipped"]
    assert result.pipeline.predict(x.iloc[:3]).shape == (3,)


def test_with_the_clock_stopped_the_search_judges_every_candidate_on_every_fold() -> None:
    x, y, features = _search_data()
    results = [
        search(
            x,
            y,
            features=features,
            task="regression",
            metric=METRICS["r2"],
            seed=0,
            time_budget_seconds=1e-9,  # would end the search at once on the wall clock
            candidates=("linear", "random_forest"),
            clock=lambda: 0.0,
        )
        for _ in range(2)
    ]
    for result in results:
        assert [(c.status, len(c.cv_scores)) for c in result.candidates] == [("ok", 5)] * 2
    assert [c.cv_scores for c in results[0].candidates] == [
        c.cv_scores for c in results[1].candidates
    ]


def test_training_metrics_are_emitted_as_emf() -> None:
    stream = io.StringIO()
    emit_training_metrics(
        {
            "promoted": True,
            "challenger_score": 0.5,
            "champion_score": None,
            "duration_seconds": 3.0,
            "guardrails": [{"passed": True}, {"passed": False}],
            "model_name": "default",
            "version": "v2",
            "metric": "r2",
        },
        stream=stream,
    )
    document = json.loads(stream.getvalue())
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "mlsys"
    assert directive["Dimensions"] == [["service"]]
    assert document["service"] == "training"
    names = {m["Name"] for m in directive["Metrics"]}
    assert names == {
        "TrainingRuns",
        "Promotions",
        "GuardrailFailures",
        "TrainingDuration",
        "ChallengerScore",
    }
    assert document["Promotions"] == [1.0]
    assert document["GuardrailFailures"] == [1.0]
    assert document["version"] == "v2"


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_has_a_cross_validation_scorer(name: str) -> None:
    assert get_scorer(METRICS[name].sklearn_scoring) is not None
