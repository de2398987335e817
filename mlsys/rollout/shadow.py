"""Shadow rollouts: run the candidate on a request the champion answered, and log both.

The client's response is already built from the champion's output when this runs;
whatever the candidate does (including failing) only ends up in the ``shadow``
event, which is the evidence :func:`mlsys.rollout.policy.decide_rollout` weighs
(through :func:`prediction_deviation`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

from mlsys.contract import ModelCard, Prediction
from mlsys.eventlog import Event
from mlsys.eventlog.fields import bounded_data, outputs_field


class ShadowModel(Protocol):
    """What a shadow comparison needs of a served model (the serving layer's model)."""

    @property
    def version(self) -> str: ...

    @property
    def card(self) -> ModelCard: ...

    def predict(self, records: list[Any], *, body_has_booleans: bool) -> Prediction: ...


def prediction_deviation(
    champion: Sequence[Any], candidate: Sequence[Any], *, classifier: bool, scale: float | None
) -> float:
    """How far the candidate's outputs are from the champion's on the same records.

    Classifiers: the share of records whose label differs. Regressors: the mean absolute
    difference divided by ``scale`` (the champion's training-target standard deviation),
    so 0.25 means "a quarter of the target's spread on average", whatever its units.
    """
    pairs = list(zip(champion, candidate, strict=True))
    if not pairs:
        return 0.0
    if classifier:
        return sum(1 for a, b in pairs if a != b) / len(pairs)
    mean_abs = sum(abs(float(a) - float(b)) for a, b in pairs) / len(pairs)
    if scale is None or not math.isfinite(scale) or scale <= 0.0:
        scale = max(sum(abs(float(a)) for a, _ in pairs) / len(pairs), 1e-12)
    return mean_abs / scale


def _target_scale(serving: ShadowModel) -> float | None:
    """The champion's training-target standard deviation (regression), from its card."""
    target = serving.card.baseline_stats.get("target")
    std = target.get("std") if isinstance(target, dict) else None
    return float(std) if isinstance(std, int | float) else None


def shadow_event(
    *,
    champion: ShadowModel,
    candidate: ShadowModel,
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
