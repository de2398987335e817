"""LightGBM's categorical columns: the one-hot step vs LightGBM's own categorical splits.

``python -m benchmarks.training encoding``. On :data:`ROWS` mixed rows (15 numeric + 5
categorical columns, 2 % missing) for regression, binary and multiclass targets, both
encodings are fitted on the same 80 % and measured on the same 20 %: fit time, holdout
score (r2 / f1_macro), ONNX parity (max |onnxruntime - LightGBM| of the values or
probabilities, the guardrail's measure) and ONNX size. The one-hot variant is exactly the
pipeline the search builds; the native one feeds ordinal codes (unknown = -1, which
LightGBM treats as missing) with ``categorical_feature`` set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.training import mixed_frame

ROWS = 200_000
TOLERANCE = 1e-4


def _native(pipeline: Any, numeric: list[str], categorical: list[str]) -> Any:
    from sklearn.compose import ColumnTransformer  # noqa: PLC0415
    from sklearn.pipeline import Pipeline  # noqa: PLC0415
    from sklearn.preprocessing import OrdinalEncoder  # noqa: PLC0415

    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
    preprocess = ColumnTransformer(
        [("numeric", "passthrough", numeric), ("categorical", encoder, categorical)],
        sparse_threshold=0.0,
    )
    model = pipeline.named_steps["model"]
    model.set_params(categorical_feature=list(range(len(numeric), len(numeric) + len(categorical))))
    return Pipeline([("preprocess", preprocess), ("model", model)])


def _measure(pipeline: Any, x: pd.DataFrame, y: Any, test: Any, task: str) -> dict[str, Any]:
    import onnx  # noqa: PLC0415
    import onnxruntime as ort  # noqa: PLC0415
    from skl2onnx import convert_sklearn  # noqa: PLC0415
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType  # noqa: PLC0415
    from sklearn.metrics import f1_score, r2_score  # noqa: PLC0415

    from training_job.lgbm_onnx import register_lightgbm_converters  # noqa: PLC0415

    train = np.setdiff1d(np.arange(len(y)), test)
    started = time.perf_counter()
    pipeline.fit(x.iloc[train], y[train])
    fit_seconds = time.perf_counter() - started
    x_test = x.iloc[test]
    predicted = pipeline.predict(x_test)
    regression = task == "regression"
    score = (
        r2_score(y[test], predicted)
        if regression
        else f1_score(y[test], predicted, average="macro")
    )
    register_lightgbm_converters()
    types = [
        (c, FloatTensorType([None, 1]) if x[c].dtype == np.float32 else StringTensorType([None, 1]))
        for c in x.columns
    ]
    options = {} if regression else {id(pipeline): {"zipmap": False}}
    model = convert_sklearn(
        pipeline, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {c: x_test[c].to_numpy().reshape(-1, 1) for c in x.columns}
    outputs = session.run(None, feeds)
    expected = predicted if regression else pipeline.predict_proba(x_test)
    got = outputs[0].ravel() if regression else outputs[1]
    return {
        "fit_s": fit_seconds,
        "score": score,
        "parity": float(np.max(np.abs(got - expected))),
        "onnx_mib": len(model.SerializeToString()) / 1024**2,
    }


def _task(task: str) -> list[tuple[str, dict[str, Any]]]:
    from training_job import schema  # noqa: PLC0415
    from training_job.search import CANDIDATES, build_pipeline  # noqa: PLC0415

    frame = mixed_frame(ROWS, task)
    target = schema.prepare_target(
        frame["y"], task="regression" if task == "regression" else "classification"
    )
    inferred = schema.infer_schema(frame, target="y")
    x = schema.model_frame(frame, inferred.features)
    numeric = [f.input_name for f in inferred.features if f.kind == "numeric"]
    categorical = [f.input_name for f in inferred.features if f.kind == "categorical"]
    test = np.random.default_rng(0).choice(ROWS, size=ROWS // 5, replace=False)
    kind = target.task
    rows = []
    for name in ("one-hot", "native"):
        pipeline = build_pipeline(CANDIDATES["lightgbm"], inferred.features, kind, 0)
        if name == "native":
            pipeline = _native(pipeline, numeric, categorical)
        rows.append((name, _measure(pipeline, x, target.y, test, task)))
    return rows


def bench_encoding(workdir: Path) -> bool:
    del workdir  # in-process, nothing written
    print(f"\nencoding: LightGBM categorical handling on {ROWS:,} mixed rows (80/20 split)")
    print(f"  {'task':<11}{'encoding':<9}{'fit s':>8}{'score':>9}{'parity':>11}{'ONNX MiB':>10}")
    ok = True
    for task in ("regression", "binary", "multiclass"):
        for name, m in _task(task):
            flag = "" if m["parity"] <= TOLERANCE else "  > tolerance"
            ok &= name != "one-hot" or m["parity"] <= TOLERANCE
            print(
                f"  {task:<11}{name:<9}{m['fit_s']:8.1f}{m['score']:9.4f}"
                f"{m['parity']:11.2e}{m['onnx_mib']:10.1f}{flag}"
            )
    result = "PASS" if ok else "FAIL"
    print(f"  target: the one-hot graphs (what the search exports) pass parity -> {result}")
    return ok
