"""Shadow rollouts: run the candidate on a request the champion answered, and log both.

The client's response is already built from the champion's output when this runs;
whatever the candidate does (including failing) only ends up in the ``shadow``
event, which is the evidence :func:`mlsys.rollout.decide_rollout` weighs.
"""

from __future__ import annotations

import time
from typing import Any

from lambda_inference.events import bounded_data, outputs_field
from lambda_inference.predictor import ServingModel
from mlsys.contract import Prediction
from mlsys.eventlog import Event
from mlsys.rollout import prediction_deviation


def _target_scale(serving: ServingModel) -> float | None:
    """The champion's training-target standard deviation (regression), from its card."""
    target = serving.card.baseline_stats.get("target")
    std = target.get("std") if isinstance(target, dict) else None
    return float(std) if isinstance(std, int | float) else None


def shadow_event(
    *,
    champion: ServingModel,
    candidate: ServingModel,
    records: list[Any],
    champion_prediction: Prediction,
    body_has_booleans: bool,
    request_id: str,
    endpoint: str,
) -> Event:
    """The ``shadow`` event for one request: both versions, both outputs, their deviation."""
    single = endpoint == "stream"
    data: dict[str, Any] = {
        "endpoint": endpoint,
        "records": len(records),
        "champion_version": champion.version,
        "candidate_version": candidate.version,
        "champion": outputs_field(champion_prediction, single=single, classes=None),
    }
    started = time.perf_counter()
    try:
        prediction = candidate.predict(records, body_has_booleans=body_has_booleans)
    except Exception as exc:  # a failing candidate is evidence, never a failed request
        data["candidate_error"] = f"{type(exc).__name__}: {exc}"
    else:
        data["candidate_latency_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
        data["candidate"] = outputs_field(prediction, single=single, classes=None)
        data["deviation"] = prediction_deviation(
            champion_prediction.values,
            prediction.values,
            classifier=champion.card.is_classifier,
            scale=_target_scale(champion),
        )
    return Event(
        type="shadow",
        request_id=request_id,
        model_version=candidate.version,
        data=bounded_data(data),
    )
