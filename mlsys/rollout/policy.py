"""The rollout decision: evidence from the system log in, complete / abort / pending out.

Everything here is pure: :func:`collect_evidence` turns system-log events into
:class:`Evidence` and :func:`decide_rollout` turns evidence into a :class:`Verdict`.
The side effects (registry writes, log events) live in :mod:`mlsys.rollout.state`
and :mod:`mlsys.rollout.evaluation`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from mlsys.knobs import default_of
from mlsys.registry import Rollout, RolloutMode
from mlsys.settings import Settings

Action = Literal["pending", "complete", "abort"]


def _margin(field_name: str) -> Any:
    """The declared default (``MLSYS_ROLLOUT_*``, :data:`mlsys.knobs.KNOBS`)."""
    return default_of("rollout", field_name)


@dataclass(frozen=True, kw_only=True)
class RolloutPolicy:
    """Margins of the automatic rollout decision (see :func:`decide_rollout`)."""

    min_requests: int = _margin("min_requests")
    """Candidate requests (canary) or shadow comparisons needed before completing."""
    min_bake_seconds: float = _margin("min_bake_seconds")
    """Time since the rollout started needed before completing."""
    min_breach_samples: int = 30
    """Requests each side needs before a breach can abort (fewer: too noisy to judge)."""
    max_error_rate_increase: float = _margin("max_error_rate_increase")
    """Abort when candidate error rate - champion error rate exceeds this."""
    max_p99_latency_ratio: float = _margin("max_p99_latency_ratio")
    """Abort when candidate p99 > champion p99 * ratio + ``p99_latency_slack_ms``."""
    p99_latency_slack_ms: float = 5.0
    """Absolute slack, so sub-millisecond jitter cannot abort a rollout on its own."""
    max_shadow_deviation: float = _margin("max_shadow_deviation")
    """Shadow: abort when the mean deviation (:func:`prediction_deviation`) exceeds this."""
    max_quality_drop: float = _margin("max_quality_drop")
    """Abort when live quality (from feedback) is worse than the champion's by more."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RolloutPolicy:
        """The policy the operator configured (``MLSYS_ROLLOUT_*``)."""
        return cls(**settings.rollout_margins())

    def __post_init__(self) -> None:
        if self.min_requests < 1 or self.min_breach_samples < 1:
            raise ValueError("min_requests and min_breach_samples must be >= 1")
        for name in ("min_bake_seconds", "max_error_rate_increase", "p99_latency_slack_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_p99_latency_ratio < 1.0:
            raise ValueError("max_p99_latency_ratio must be >= 1")


@dataclass(frozen=True, kw_only=True)
class TrafficStats:
    """Traffic one model version answered during the rollout."""

    requests: int = 0
    errors: int = 0
    p99_latency_ms: float | None = None

    @property
    def error_rate(self) -> float:
        total = self.requests + self.errors
        return self.errors / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "p99_latency_ms": self.p99_latency_ms,
        }


@dataclass(frozen=True, kw_only=True)
class LiveQuality:
    """Quality of each model on requests whose true outcome came back as feedback."""

    metric: str
    higher_is_better: bool
    champion: float | None
    candidate: float | None
    candidate_samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "champion": self.champion,
            "candidate": self.candidate,
            "candidate_samples": self.candidate_samples,
        }


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What the system log says about a rollout so far."""

    elapsed_seconds: float
    champion: TrafficStats
    candidate: TrafficStats
    """Canary: requests the candidate answered. Shadow: the candidate's shadow runs."""
    shadow_deviation: float | None = None
    live_quality: LiveQuality | None = None
    events_read: int = 0
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "champion": self.champion.to_dict(),
            "candidate": self.candidate.to_dict(),
            "shadow_deviation": self.shadow_deviation,
            "live_quality": self.live_quality.to_dict() if self.live_quality else None,
            "events_read": self.events_read,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, kw_only=True)
class Verdict:
    action: Action
    reason: str
    breaches: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "reason": self.reason, "breaches": list(self.breaches)}


def _breaches(mode: RolloutMode, evidence: Evidence, policy: RolloutPolicy) -> list[str]:
    champion, candidate = evidence.champion, evidence.candidate
    found: list[str] = []
    enough = (
        champion.requests + champion.errors >= policy.min_breach_samples
        and candidate.requests + candidate.errors >= policy.min_breach_samples
    )
    if enough:
        increase = candidate.error_rate - champion.error_rate
        if increase > policy.max_error_rate_increase:
            found.append(
                f"error rate {candidate.error_rate:.2%} vs champion {champion.error_rate:.2%} "
                f"(+{increase:.2%} > {policy.max_error_rate_increase:.2%})"
            )
        if champion.p99_latency_ms is not None and candidate.p99_latency_ms is not None:
            limit = champion.p99_latency_ms * policy.max_p99_latency_ratio
            limit += policy.p99_latency_slack_ms
            if candidate.p99_latency_ms > limit:
                found.append(
                    f"p99 latency {candidate.p99_latency_ms:.1f} ms vs champion "
                    f"{champion.p99_latency_ms:.1f} ms (limit {limit:.1f} ms)"
                )
    deviation = evidence.shadow_deviation
    if (
        mode == "shadow"
        and deviation is not None
        and candidate.requests >= policy.min_breach_samples
        and deviation > policy.max_shadow_deviation
    ):
        found.append(
            f"shadow predictions deviate {deviation:.3f} from the champion's "
            f"(> {policy.max_shadow_deviation})"
        )
    quality = evidence.live_quality
    if (
        quality is not None
        and quality.champion is not None
        and quality.candidate is not None
        and quality.candidate_samples >= policy.min_breach_samples
    ):
        drop = quality.champion - quality.candidate
        drop = drop if quality.higher_is_better else -drop
        if drop > policy.max_quality_drop:
            found.append(
                f"live {quality.metric} {quality.candidate:.4f} vs champion "
                f"{quality.champion:.4f} (worse by {drop:.4f} > {policy.max_quality_drop})"
            )
    return found


def decide_rollout(mode: RolloutMode, evidence: Evidence, policy: RolloutPolicy) -> Verdict:
    """Abort on any breach; complete after enough requests and bake time; else pending."""
    breaches = _breaches(mode, evidence, policy)
    if breaches:
        return Verdict(action="abort", reason="; ".join(breaches), breaches=tuple(breaches))
    seen = evidence.candidate.requests
    unit = "shadow comparisons" if mode == "shadow" else "candidate requests"
    waiting: list[str] = []
    if seen < policy.min_requests:
        waiting.append(f"{seen}/{policy.min_requests} {unit}")
    if evidence.elapsed_seconds < policy.min_bake_seconds:
        waiting.append(
            f"baked {evidence.elapsed_seconds:.0f}/{policy.min_bake_seconds:.0f} seconds"
        )
    if waiting:
        return Verdict(action="pending", reason="no breach yet; waiting for " + ", ".join(waiting))
    return Verdict(
        action="complete",
        reason=(
            f"no breach after {seen} {unit} and {evidence.elapsed_seconds:.0f} seconds: "
            f"error rate {evidence.candidate.error_rate:.2%} vs champion "
            f"{evidence.champion.error_rate:.2%}"
        ),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in [0, 100]); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _seconds_between(start: str, end: str) -> float:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return max(0.0, (parse(end) - parse(start)).total_seconds())


def collect_evidence(
    events: Iterable[Mapping[str, Any]],
    *,
    rollout: Rollout,
    champion_version: str,
    now: str,
    live_quality: LiveQuality | None = None,
    truncated: bool = False,
) -> Evidence:
    """Tally ``prediction``, ``error`` and ``shadow`` events (as dicts, any order).

    Only events at or after ``rollout.started`` about the two versions count, so a
    previous rollout of the same versions or other traffic cannot leak in.
    """
    latencies: dict[str, list[float]] = {champion_version: [], rollout.candidate: []}
    errors = dict.fromkeys(latencies, 0)
    deviations: list[tuple[float, int]] = []
    read = 0
    for event in events:
        if str(event.get("time", "")) < rollout.started:
            continue
        read += 1
        version = event.get("model_version")
        data: Mapping[str, Any] = event.get("data") or {}
        kind = event.get("type")
        if kind == "prediction" and version in latencies:
            latencies[version].append(float(data.get("latency_ms", 0.0)))
        elif kind == "error" and version in errors:
            errors[version] += 1
        elif kind == "shadow" and data.get("candidate_version") == rollout.candidate:
            if data.get("candidate_error"):
                errors[rollout.candidate] += 1
                continue
            latencies[rollout.candidate].append(float(data.get("candidate_latency_ms", 0.0)))
            if isinstance(data.get("deviation"), int | float):
                deviations.append((float(data["deviation"]), int(data.get("records", 1) or 1)))

    def stats(version: str) -> TrafficStats:
        return TrafficStats(
            requests=len(latencies[version]),
            errors=errors[version],
            p99_latency_ms=percentile(latencies[version], 99.0),
        )

    weight = sum(n for _, n in deviations)
    return Evidence(
        elapsed_seconds=_seconds_between(rollout.started, now),
        champion=stats(champion_version),
        candidate=stats(rollout.candidate),
        shadow_deviation=(sum(d * n for d, n in deviations) / weight) if weight else None,
        live_quality=live_quality,
        events_read=read,
        truncated=truncated,
    )
