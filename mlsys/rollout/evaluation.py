"""The evaluate step of a rollout: read its evidence, decide, complete or abort it.

Runs the same way from ``mlsys models rollout evaluate`` and from the scheduled evaluator
on AWS (:mod:`mlsys.rollout.scheduled`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mlsys.eventlog import EventLog
from mlsys.registry import ChampionPointer, ModelRegistry, Rollout, utc_now
from mlsys.rollout.policy import Evidence, LiveQuality, RolloutPolicy, Verdict, decide_rollout
from mlsys.rollout.state import end_rollout, rollout_event, rollout_state
from mlsys.rollout.traffic import EventLogTraffic, TrafficSource

LiveQualityProvider = Callable[[EventLog, Rollout, str], LiveQuality | None]
"""Optional: live quality of champion and candidate from ``feedback`` events
(:func:`mlsys.rollout.quality.feedback_live_quality`); ``None`` while there is no feedback."""


def read_evidence(
    log: EventLog,
    *,
    rollout: Rollout,
    champion_version: str,
    live_quality: LiveQualityProvider | None = None,
    traffic: TrafficSource | None = None,
) -> Evidence:
    """The rollout's evidence since it started: traffic from ``traffic`` (default: the
    log's events, :class:`~mlsys.rollout.traffic.EventLogTraffic`), live quality from
    ``live_quality``."""
    source = traffic if traffic is not None else EventLogTraffic(log)
    evidence = source.evidence(rollout=rollout, champion_version=champion_version, now=utc_now())
    if live_quality is None:
        return evidence
    return replace(evidence, live_quality=live_quality(log, rollout, champion_version))


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One run of the evaluate step: the verdict, its evidence and what was applied."""

    before: ChampionPointer | None
    after: ChampionPointer | None
    verdict: Verdict | None
    evidence: Evidence | None
    applied: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        state = rollout_state(self.before)
        return {
            **state,
            "evidence": self.evidence.to_dict() if self.evidence else {},
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "action": self.verdict.action if self.verdict else "none",
            "applied": self.applied,
            "note": self.note,
            "now": rollout_state(self.after),
        }


def evaluate_rollout(
    registry: ModelRegistry,
    log: EventLog,
    *,
    policy: RolloutPolicy,
    actor: str,
    live_quality: LiveQualityProvider | None = None,
    traffic: TrafficSource | None = None,
    apply: bool = True,
) -> Evaluation:
    """Apply :func:`~mlsys.rollout.policy.decide_rollout` to the log's evidence; complete or
    abort the rollout if it says so (and ``apply``), recording the change in the log."""
    pointer = registry.champion()
    if pointer is None or pointer.rollout is None:
        return Evaluation(before=pointer, after=pointer, verdict=None, evidence=None, applied=False)
    rollout = pointer.rollout
    evidence = read_evidence(
        log,
        rollout=rollout,
        champion_version=pointer.version,
        live_quality=live_quality,
        traffic=traffic,
    )
    verdict = decide_rollout(rollout.mode, evidence, policy)
    if verdict.action == "pending" or not apply:
        return Evaluation(
            before=pointer, after=pointer, verdict=verdict, evidence=evidence, applied=False
        )
    complete = verdict.action == "complete"
    after = end_rollout(
        registry,
        complete=complete,
        reason=f"automatic rollout {verdict.action}: {verdict.reason}",
        actor=actor,
        expected=pointer,
    )
    event = rollout_event(
        registry,
        action="rollout_complete" if complete else "rollout_abort",
        before=pointer,
        after=after,
    )
    note = None
    try:
        log.append(event)
    except Exception as exc:  # best effort: the registry already holds the change durably
        note = f"rollout {verdict.action} applied, but not recorded in the system log: {exc}"
    return Evaluation(
        before=pointer, after=after, verdict=verdict, evidence=evidence, applied=True, note=note
    )
