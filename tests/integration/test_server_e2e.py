"""End to end: ``mlsys train`` -> ``mlsys serve`` in a subprocess -> real HTTP requests."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from mlsys.registry import ModelRegistry
from tests.serve_support import ServeProcess
from training_job.schema import split_rows

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def mlsys(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "mlsys", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def regression_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServeProcess, Path]]:
    workdir = tmp_path_factory.mktemp("serve-regression")
    registry = workdir / "registry"
    mlsys(
        "train",
        "--registry",
        str(registry),
        "--log",
        f"sqlite:///{workdir}/log.sqlite3",
        "--models",
        "linear",
    )
    server = ServeProcess(
        str(registry), f"sqlite:///{workdir / 'log.sqlite3'}", "--model-name", "default"
    )
    yield server, registry
    server.stop()


def holdout_frame() -> pd.DataFrame:
    data = load_diabetes(as_frame=True)
    split = split_rows(data.target.to_numpy(), task="regression", seed=0)
    return data.data.iloc[split.holdout].reset_index(drop=True)


def test_served_predictions_equal_the_models_on_the_holdout(
    regression_server: tuple[ServeProcess, Path],
) -> None:
    server, registry = regression_server
    champion = ModelRegistry.open(str(registry), model_name="default").load_champion()
    holdout = holdout_frame()
    expected = champion.predict_frame(holdout).values

    status, batch = server.call("POST", "/batch", {"data": holdout.to_dict("records")})
    assert status == 200
    assert batch["result"] == expected
    assert batch["model_version"] == champion.version
    status, arrays = server.call("POST", "/batch", {"data": holdout.to_numpy().tolist()})
    assert arrays["result"] == expected
    status, one = server.call("POST", "/stream", {"data": holdout.iloc[3].to_dict()})
    assert (status, one["result"]) == (200, expected[3])

    status, log = server.call("GET", "/log?limit=2&type=prediction")
    assert status == 200
    assert log["result"][0]["request_id"] == one["request_id"]
    assert log["next"] is not None
    status, health = server.call("GET", "/health")
    assert (status, health["model_version"]) == (200, champion.version)
    assert server.call("POST", "/stream", {"data": {}}, content_type="text/plain")[0] == 415
    assert server.call("GET", "/nowhere")[0] == 404

    status, emptied = server.call("GET", "/emptyLog")
    assert (status, emptied["result"]) == (200, "log emptied")
    assert server.call("GET", "/log")[1] == {"result": [], "next": None}


def test_concurrent_requests_lose_and_duplicate_no_log_events(
    regression_server: tuple[ServeProcess, Path],
) -> None:
    server, _ = regression_server
    server.call("DELETE", "/log")
    record = holdout_frame().iloc[0].to_dict()

    def one(_: int) -> str:
        status, body = server.call("POST", "/stream", {"data": record})
        assert status == 200
        return str(body["request_id"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = list(pool.map(one, range(160)))
    logged: list[str] = []
    times: list[str] = []
    token = ""
    while True:
        status, page = server.call("GET", f"/log?type=prediction&limit=50{token}")
        assert status == 200
        logged += [e["request_id"] for e in page["result"]]
        times += [e["time"] for e in page["result"]]
        if page["next"] is None:
            break
        token = f"&next={page['next']}"
    assert len(logged) == len(sent) == 160
    assert sorted(logged) == sorted(sent)
    # Written by several worker processes, read newest first across all of them.
    assert times == sorted(times, reverse=True)


def test_sigterm_writes_every_queued_log_event_before_exiting(
    regression_server: tuple[ServeProcess, Path], tmp_path: Path
) -> None:
    _, registry = regression_server
    log = tmp_path / "sigterm.sqlite3"
    # Background log delivery, the default.
    server = ServeProcess(str(registry), f"sqlite:///{log}", "--model-name", "default")
    record = holdout_frame().iloc[0].to_dict()
    sent = [
        str(server.call("POST", "/stream", {"data": record})[1]["request_id"]) for _ in range(30)
    ]
    server.stop()  # SIGTERM right after the last response, with events still queued
    assert server.process.returncode == 0  # a clean shutdown, not death by signal
    with closing(sqlite3.connect(log)) as connection:
        stored = [
            json.loads(body)["request_id"]
            for (body,) in connection.execute("SELECT body FROM events WHERE type='prediction'")
        ]
    assert sorted(stored) == sorted(sent)


def test_classifier_with_categories_and_missing_values_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rows = 400
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, rows).astype(float),
            "plan": rng.choice(["basic", "plus", "pro"], rows),
            "spend": rng.normal(40, 10, rows).round(2),
        }
    )
    frame["churn"] = np.where((frame.tenure < 20) | (frame.plan == "basic"), "leave", "stay")
    frame.loc[rng.random(rows) < 0.1, "tenure"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "plan"] = None
    csv = tmp_path / "churn.csv"
    frame.to_csv(csv, index=False)
    registry = tmp_path / "registry"
    mlsys(
        "train",
        "--data",
        str(csv),
        "--target",
        "churn",
        "--registry",
        str(registry),
        "--model-name",
        "churn",
        "--log",
        f"sqlite:///{tmp_path}/log.sqlite3",
        "--models",
        "linear",
    )
    server = ServeProcess(
        str(registry), f"sqlite:///{tmp_path / 'log.sqlite3'}", "--model-name", "churn"
    )
    try:
        features = frame.drop(columns="churn").head(40)
        records = features.astype(object).where(features.notna(), None).to_dict("records")
        records.append({"tenure": None, "plan": "enterprise", "spend": 10.0})  # unknown category
        assert any(r["plan"] is None for r in records)
        assert any(r["tenure"] is None for r in records)
        status, body = server.call("POST", "/batch", {"data": records})
        assert status == 200, body
        champion = ModelRegistry.open(str(registry), model_name="churn").load_champion()
        expected = champion.predict_frame(pd.DataFrame(records)).values
        assert body["result"] == expected
        assert set(body["result"]) <= {"leave", "stay"}
        assert all(set(p) == {"leave", "stay"} for p in body["probabilities"])
        status, one = server.call("POST", "/stream", {"data": records[-1]})
        assert (status, one["result"]) == (200, expected[-1])
        status, bad = server.call("POST", "/stream", {"data": {**records[0], "plan": [1]}})
        assert status == 400
        assert bad["error"]["details"] == {"record": 0, "feature": "plan", "expected": "string"}
    finally:
        server.stop()
