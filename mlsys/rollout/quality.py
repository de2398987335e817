"""Live quality of a rollout's two models, from ``feedback`` events (the monitoring join).

Feedback names a request id (and record index) and its true outcome; the monitoring
package's :class:`~mlsys.monitoring.collect.FeedbackJoin` matches it to the prediction that
request got. During a canary each request was answered by one model; during a shadow
rollout the champion answered and the candidate's output is in the ``shadow`` event, so
both models are scored on the same requests. The result feeds the quality rule of
:func:`mlsys.rollout.policy.decide_rollout`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlsys.errors import MlsysError
from mlsys.eventlog import EventLog, EventType
from mlsys.metrics import METRICS
from mlsys.monitoring.collect import FeedbackJoin
from mlsys.monitoring.monitor import live_quality
from mlsys.monitoring.source import iter_events
from mlsys.registry import ModelRegistry, Rollout, iso, utc_now
from mlsys.rollout.policy import LiveQuality


def _shadow_as_prediction(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``shadow`` event in the shape of the candidate's own ``prediction`` event."""
    data = event.get("data") or {}
    candidate = data.get("candidate")
    if not isinstance(candidate, Mapping):
        return None  # the candidate failed on this request
    return {**event, "data": {"endpoint": data.get("endpoint"), **candidate}}


def _join(
    log: EventLog, rollout: Rollout, champion_version: str, *, until: str
) -> FeedbackJoin | None:
    def events(kind: EventType) -> Iterator[dict[str, Any]]:
        return iter_events(log, types=(kind,), since=rollout.started, until=until)

    join = FeedbackJoin()
    for event in events("feedback"):
        join.add_feedback(event)
    if not join.request_ids:
        return None
    versions = {champion_version, rollout.candidate}
    for event in events("prediction"):
        if event.get("model_version") in versions:
            join.add_prediction(event, str(event["model_version"]))
    if rollout.mode == "shadow":
        for event in events("shadow"):
            as_prediction = _shadow_as_prediction(event)
            if as_prediction is not None:
                join.add_prediction(as_prediction, rollout.candidate)
    return join


def feedback_live_quality(
    registry: ModelRegistry,
) -> Callable[[EventLog, Rollout, str], LiveQuality | None]:
    """The live-quality provider for :func:`mlsys.rollout.evaluation.evaluate_rollout`."""

    def provide(log: EventLog, rollout: Rollout, champion_version: str) -> LiveQuality | None:
        join = _join(log, rollout, champion_version, until=iso(utc_now()))
        if join is None:
            return None
        try:
            champion_card = registry.card(champion_version)
            candidate_card = registry.card(rollout.candidate)
        except MlsysError:
            return None
        if champion_card.metric != candidate_card.metric:
            return None  # two metrics cannot be compared
        champion = live_quality(champion_card, join.joined.get(champion_version, []))
        candidate = live_quality(candidate_card, join.joined.get(rollout.candidate, []))
        metric = METRICS.get(champion_card.metric)
        return LiveQuality(
            metric=champion_card.metric,
            higher_is_better=metric.higher_is_better if metric else True,
            champion=champion.value,
            candidate=candidate.value,
            candidate_samples=candidate.n,
        )

    return provide
