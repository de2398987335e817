"""Trained models and served traffic for the monitoring tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lambda_inference.handler import Api
from lambda_inference.service import InferenceService
from mlsys.eventlog import EventLog, open_event_log_for
from mlsys.monitoring.monitor import MonitorReport, run_monitor
from mlsys.monitoring.window import iso_z
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import api_event, body_of
from tests.training_support import run_main, write_csv


@dataclass(frozen=True)
class Trained:
    registry: Path
    model_name: str
    frame: pd.DataFrame
    target: str

    def features(self) -> pd.DataFrame:
        return self.frame.drop(columns=[self.target])


def train_model(root: Path, frame: pd.DataFrame, *, target: str, model_name: str) -> Trained:
    data = write_csv(frame, root / f"{model_name}.csv")
    registry = root / "registry"
    code = run_main(
        [
            "train",
            "--registry",
            str(registry),
            "--model-name",
            model_name,
            "--log",
            f"sqlite:///{root}/train-log.sqlite3",
            "--data",
            str(data),
            "--target",
            target,
            "--models",
            "linear",
            "--time-budget",
            "30",
        ]
    )
    assert code == 0
    return Trained(registry, model_name, frame, target)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON records (missing values as null)."""
    return json.loads(frame.to_json(orient="records"))


def make_api(trained: Trained, log_uri: str, **kwargs: Any) -> Api:
    settings = Settings(
        registry_uri=str(trained.registry), model_name=trained.model_name, log_uri=log_uri
    )
    return Api(InferenceService.from_settings(settings, emit_metrics=False, **kwargs))


def post(api: Api, path: str, body: Any, request_id: str) -> dict[str, Any]:
    response = api.handle_local(api_event("POST", path, body=body, request_id=request_id))
    assert response["statusCode"] == 200, response["body"]
    result: dict[str, Any] = body_of(response)
    return result


def send_batches(api: Api, rows: list[dict[str, Any]], *, prefix: str, size: int = 100) -> None:
    for start in range(0, len(rows), size):
        post(api, "/batch", {"data": rows[start : start + size]}, f"{prefix}-{start}")


def monitor(trained: Trained, log: EventLog) -> MonitorReport:
    return run_monitor(
        log=log,
        registry=ModelRegistry.open(str(trained.registry), model_name=trained.model_name),
        since="2000-01-01T00:00:00.000000Z",
        until=iso_z(pd.Timestamp.now(tz="UTC").to_pydatetime()),
    )


def open_log(uri: str, **kwargs: Any) -> EventLog:
    return open_event_log_for(Settings(log_uri=uri), **kwargs)


def shifted(frame: pd.DataFrame, column: str, sds: float) -> pd.DataFrame:
    moved = frame.copy()
    moved[column] = moved[column] + sds * float(np.nanstd(moved[column]))
    return moved


def repeated_decimals(rows: int, seed: int = 0) -> pd.DataFrame:
    """Doses and grades with a few repeated decimal values each (as a lab or a survey
    records them), and a target that depends on both."""
    rng = np.random.default_rng(seed)
    dose = rng.choice([0.1, 0.2, 0.3, 0.7, 1.1, 2.3, 3.3, 4.7, 9.9], size=rows)
    grade = rng.choice([1.5, 2.7, 3.3, 4.6, 5.8], size=rows, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    y = 2.0 * dose - grade + 0.1 * rng.normal(size=rows)
    return pd.DataFrame({"dose": dose, "grade": grade, "y": y})
