"""Checks an exported model must pass before it may be promoted.

* ``onnx_check``: ``onnx.checker.check_model(full_check=True)`` accepts the graph.
* ``parity``: onnxruntime reproduces scikit-learn on the holdout. Both see the same
  inputs (numeric values rounded to float32, as served), so differences come from
  the conversion alone. Regression: ``max |onnx - sklearn| <= 1e-4 * max(1, max
  |sklearn|)`` (float32 arithmetic inside the graph; observed differences are
  ~1e-7 relative). Classification: probabilities within ``1e-4`` absolute, and
  labels identical on every row whose top two scikit-learn probabilities are
  further apart than that (a near-tie may legitimately break either way).
* ``latency``: 95th percentile of single-record onnxruntime calls (one thread, as
  in Lambda) at most :attr:`GuardrailBudgets.latency_p95_ms`.
* ``size``: ``model.onnx`` at most :attr:`GuardrailBudgets.max_model_bytes`
  (it is loaded into every serving container's memory).

The ``*_check`` functions are pure decisions over measurements, unit-tested on
their own; :func:`measure_latency` and :func:`onnx_check` do the measuring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mlsys.contract import Feeds, LoadedModel
from mlsys.settings import GuardrailBudgets


@dataclass(frozen=True, kw_only=True)
class GuardrailResult:
    name: str
    passed: bool
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, **self.measured}


def onnx_check(model_bytes: bytes) -> GuardrailResult:
    import onnx  # noqa: PLC0415

    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    except Exception as exc:  # protobuf DecodeError, ValidationError, InferenceError, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return GuardrailResult(name="onnx_check", passed=False, detail=f"onnx.checker: {first}")
    return GuardrailResult(name="onnx_check", passed=True, detail="onnx.checker full check passed")


def regression_parity_check(
    sklearn_values: npt.NDArray[Any], onnx_values: npt.NDArray[Any], *, budgets: GuardrailBudgets
) -> GuardrailResult:
    expected = np.asarray(sklearn_values, dtype=np.float64).reshape(-1)
    actual = np.asarray(onnx_values, dtype=np.float64).reshape(-1)
    if expected.shape != actual.shape:
        return GuardrailResult(
            name="parity",
            passed=False,
            detail=f"onnx returned {actual.shape[0]} predictions for {expected.shape[0]} rows",
        )
    if not np.all(np.isfinite(actual)):
        return GuardrailResult(name="parity", passed=False, detail="onnx returned NaN or inf")
    diff = float(np.max(np.abs(expected - actual))) if len(expected) else 0.0
    tolerance = budgets.regression_rtol * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    passed = diff <= tolerance
    return GuardrailResult(
        name="parity",
        passed=passed,
        detail=(
            f"max |onnx - sklearn| = {diff:.3g} "
            + ("<=" if passed else ">")
            + f" tolerance {tolerance:.3g}"
        ),
        measured={"max_abs_diff": diff, "tolerance": tolerance},
    )


def classification_parity_check(
    sklearn_labels: npt.NDArray[Any],
    sklearn_probabilities: npt.NDArray[Any],
    onnx_labels: npt.NDArray[Any],
    onnx_probabilities: npt.NDArray[Any],
    *,
    budgets: GuardrailBudgets,
) -> GuardrailResult:
    expected_p = np.asarray(sklearn_probabilities, dtype=np.float64)
    actual_p = np.asarray(onnx_probabilities, dtype=np.float64)
    if expected_p.shape != actual_p.shape:
        return GuardrailResult(
            name="parity",
            passed=False,
            detail=f"onnx probabilities have shape {actual_p.shape}, sklearn {expected_p.shape}",
        )
    if not np.all(np.isfinite(actual_p)):
        return GuardrailResult(name="parity", passed=False, detail="onnx returned NaN or inf")
    diff = float(np.max(np.abs(expected_p - actual_p))) if actual_p.size else 0.0
    ordered = np.sort(expected_p, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if expected_p.shape[1] > 1 else np.ones(len(ordered))
    decided = margin > budgets.probability_atol
    mismatched = int(np.sum((np.asarray(sklearn_labels) != np.asarray(onnx_labels)) & decided))
    passed = diff <= budgets.probability_atol and mismatched == 0
    detail = (
        f"max |probability diff| = {diff:.3g} (tolerance {budgets.probability_atol:g}), "
        f"{mismatched} label mismatch(es) outside near-ties"
    )
    return GuardrailResult(
        name="parity",
        passed=passed,
        detail=detail,
        measured={
            "max_abs_diff": diff,
            "tolerance": budgets.probability_atol,
            "label_mismatches": mismatched,
        },
    )


def latency_check(samples_ms: npt.NDArray[Any], *, budgets: GuardrailBudgets) -> GuardrailResult:
    p50 = float(np.percentile(samples_ms, 50))
    p95 = float(np.percentile(samples_ms, 95))
    passed = p95 <= budgets.latency_p95_ms
    return GuardrailResult(
        name="latency",
        passed=passed,
        detail=(
            f"single-record p95 {p95:.3f} ms "
            + ("<=" if passed else ">")
            + f" budget {budgets.latency_p95_ms:g} ms"
        ),
        measured={"p50_ms": p50, "p95_ms": p95, "budget_ms": budgets.latency_p95_ms},
    )


def size_check(size_bytes: int, *, budgets: GuardrailBudgets) -> GuardrailResult:
    passed = size_bytes <= budgets.max_model_bytes
    return GuardrailResult(
        name="size",
        passed=passed,
        detail=(
            f"model.onnx {size_bytes / 1024:.1f} KiB "
            + ("<=" if passed else ">")
            + f" budget {budgets.max_model_bytes / 1024:.0f} KiB"
        ),
        measured={"size_bytes": size_bytes, "budget_bytes": budgets.max_model_bytes},
    )


def measure_latency(
    model: LoadedModel,
    feeds: Feeds,
    *,
    samples: int,
    clock: Callable[[], float] = time.perf_counter,
) -> npt.NDArray[np.float64]:
    """Milliseconds per single-record ``predict`` call, after a short warm-up."""
    for _ in range(5):
        model.predict(feeds)
    timings = np.empty(samples)
    for i in range(samples):
        started = clock()
        model.predict(feeds)
        timings[i] = (clock() - started) * 1000.0
    return timings
