"""Training against S3 (moto), ONNX parity per candidate, and the container entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from mlsys.contract import LoadedModel, ModelCard
from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from tests.training_support import (
    mixed_classification,
    mocked_bucket,
    nonlinear_regression,
    train,
)
from training_job import schema
from training_job.data import load_dataset
from training_job.export import export_onnx
from training_job.search import CANDIDATES, build_pipeline

pytestmark = pytest.mark.slow
BUCKET = "mlsys-training-test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with mocked_bucket(monkeypatch, BUCKET):
        yield


def test_train_from_s3_data_into_an_s3_registry(
    s3: object, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    client = boto3.client("s3")
    frame = nonlinear_regression()
    # Equal timestamps (S3 has 1 s resolution) fall back to the key: date-stamped names work.
    client.put_object(Bucket=BUCKET, Key="data/2026-01.csv", Body=b"not,the\nnewest,file\n")
    client.put_object(Bucket=BUCKET, Key="data/2026-02.parquet", Body=frame.to_parquet())
    registry_uri = f"s3://{BUCKET}"
    code, result, err = train(
        capsys,
        registry_uri,
        tmp_path / "log.sqlite3",
        "--data",
        f"s3://{BUCKET}/data/",
        "--target",
        "y",
        "--models",
        "linear",
    )
    assert code == 0, err
    assert result is not None
    assert result["promoted"] is True
    assert result["data"]["source"] == f"s3://{BUCKET}/data/2026-02.parquet"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    version = result["version"]
    assert f"models/default/versions/{version}/model.onnx" in keys
    assert f"models/default/versions/{version}/card.json" in keys
    assert "models/default/champion.json" in keys
    registry = ModelRegistry.open(registry_uri, model_name="default")
    assert registry.load_champion().version == version

    code, second, _ = train(
        capsys,
        registry_uri,
        tmp_path / "log.sqlite3",
        "--data",
        f"s3://{BUCKET}/data/2026-02.parquet",
        "--target",
        "y",
        "--models",
        "linear",
    )
    assert second is not None
    assert second["promoted"] is False
    assert registry.require_champion().version == version


def test_s3_data_errors_are_bad_input(
    s3: object, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for uri, message in (
        (f"s3://{BUCKET}/data/", "no CSV or Parquet object"),
        (f"s3://{BUCKET}/data/missing.csv", "data not found"),
    ):
        code, _, err = train(capsys, tmp_path / "r", tmp_path / "log.sqlite3", "--data", uri)
        assert code == 2
        assert message in err


def test_newest_object_wins_by_modification_time(s3: object) -> None:
    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="d/b.csv", Body=b"x,y\n1,2\n")
    client.put_object(Bucket=BUCKET, Key="d/a.csv", Body=b"x,y\n3,4\n")
    listed = {
        o["Key"]: o["LastModified"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix="d/")["Contents"]
    }
    expected = max(listed, key=lambda k: (listed[k], k))
    assert load_dataset(f"s3://{BUCKET}/d/").source == f"s3://{BUCKET}/{expected}"


@pytest.mark.parametrize("candidate", list(CANDIDATES))
@pytest.mark.parametrize("task", ["regression", "classification"])
def test_onnx_matches_scikit_learn(candidate: str, task: str) -> None:
    frame = nonlinear_regression(rows=200) if task == "regression" else mixed_classification()
    target = "y" if task == "regression" else "label"
    prepared = schema.prepare_target(frame[target], task="auto")
    inferred = schema.infer_schema(frame, target=target)
    x = schema.model_frame(frame, inferred.features)
    pipeline = build_pipeline(CANDIDATES[candidate], inferred.features, prepared.task, 0)
    pipeline.fit(x, prepared.y)
    classes = prepared.classes
    exported = export_onnx(
        pipeline, inferred.features, task=prepared.task, n_classes=len(classes) if classes else None
    )
    card = ModelCard(
        model_name="m",
        version="v",
        task=prepared.task,
        target=target,
        features=inferred.features,
        metric="r2",
        classes=classes,
        input_layout=exported.input_layout,
    )
    served = LoadedModel(card, exported.model_bytes).predict_frame(frame)
    if task == "regression":
        assert np.max(np.abs(np.asarray(served.raw) - pipeline.predict(x))) < 1e-3
    else:
        assert np.array_equal(np.asarray(served.raw), pipeline.predict(x))
        assert served.probabilities is not None
        assert np.allclose(served.probabilities, pipeline.predict_proba(x), atol=1e-4)


def test_container_entry_point_reads_environment_and_prints_emf(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLSYS_REGISTRY_URI": str(tmp_path / "registry"),
        "MLSYS_LOG_URI": f"sqlite:///{tmp_path / 'log.sqlite3'}",
        "MLSYS_MODEL_NAME": "container",
        "MLSYS_TIME_BUDGET_SECONDS": "20",
        "MLSYS_SEED": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlsys", "train", "--emf", "--models", "linear"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    emf = json.loads(done.stdout.splitlines()[0])
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mlsys"
    assert emf["Promotions"] == [1.0]
    assert "PROMOTED" in done.stdout
    # Not a terminal (CloudWatch Logs in Batch): progress as plain lines, no bar.
    assert "] candidate linear: CV r2 = " in done.stderr
    assert "\r" not in done.stderr
    card = ModelRegistry.open(str(tmp_path / "registry"), model_name="container")
    assert card.card(card.require_champion().version).training["seed"] == 3
    events = open_event_log(f"sqlite:///{tmp_path / 'log.sqlite3'}").query().events
    assert events[0].type == "training"

    env["MLSYS_DATA"] = str(tmp_path / "missing.csv")
    failed = subprocess.run(
        [sys.executable, "-m", "mlsys", "train", "--emf"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 2
    *progress, error = failed.stderr.strip().splitlines()
    assert error == f"mlsys train: error: data file not found: {env['MLSYS_DATA']}"
    assert all(re.match(r"\[ *\d+\.\ds\] ", line) for line in progress)
