"""A rollout's state and its transitions: where a request goes, start, complete, abort.

A promotion is either *direct* (the champion pointer moves at once) or starts a rollout
(see :mod:`mlsys.rollout`). The rollout is stored inside the champion pointer
(:class:`mlsys.registry.Rollout`), so every change here is one compare-and-swap on the
pointer read before the decision: a writer that lost the race gets
:class:`~mlsys.errors.ConcurrentUpdateError` and changes nothing.

Shared by ``mlsys models``, ``mlsys train --rollout`` and the scheduled evaluator
(:mod:`mlsys.rollout.evaluation`), so the same transitions run everywhere.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mlsys.errors import ConfigError
from mlsys.eventlog import Event, now_iso
from mlsys.registry import ChampionPointer, ModelRegistry, Rollout, RolloutMode

ROLLOUT_CHOICES = ("direct", "canary", "shadow")
"""What ``--rollout`` accepts; ``direct`` means no rollout (the pointer moves at once)."""
DEFAULT_CANARY_FRACTION = 0.1


class NoRolloutError(ConfigError):
    """``rollout complete|abort`` with no rollout in progress (bad input: exit 2)."""

    code = "no_rollout"


def routes_to_candidate(request_id: str, fraction: float) -> bool:
    """Whether a canary sends ``request_id`` to the candidate.

    The first 8 bytes of the id's SHA-256 as a number in [0, 1): uniform whatever the id
    format (UUIDs, API Gateway ids), identical in every container and process.
    """
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def rollout_state(pointer: ChampionPointer | None) -> dict[str, Any]:
    """The ``mlsys models rollout`` view of the pointer (without evidence)."""
    rollout = pointer.rollout if pointer else None
    return {
        "state": rollout.mode if rollout else "none",
        "champion": pointer.version if pointer else None,
        "candidate": rollout.candidate if rollout else None,
        "fraction": rollout.fraction if rollout else None,
        "started": rollout.started if rollout else None,
        "reason": rollout.reason if rollout else None,
    }


def start_rollout(
    registry: ModelRegistry,
    version: str,
    *,
    mode: RolloutMode,
    fraction: float | None,
    reason: str,
    actor: str,
    expected: ChampionPointer,
) -> ChampionPointer:
    """Begin a canary or shadow rollout of ``version`` next to the ``expected`` champion."""
    rollout = Rollout(
        mode=mode,
        candidate=version,
        fraction=fraction if mode == "canary" else None,
        # The system log's own time format (microseconds), so "events since the rollout
        # started" compares like with like.
        started=now_iso(),
        reason=reason,
        actor=actor,
    )
    return registry.set_rollout(rollout, reason=reason, actor=actor, expected=expected)


def end_rollout(
    registry: ModelRegistry,
    *,
    complete: bool,
    reason: str,
    actor: str,
    expected: ChampionPointer | None = None,
) -> ChampionPointer:
    """Complete (the candidate becomes champion) or abort (the rollout is discarded)."""
    pointer = expected or registry.require_champion()
    if pointer.rollout is None:
        raise NoRolloutError(f"model {registry.model_name!r} has no rollout in progress")
    if complete:
        return registry.promote(
            pointer.rollout.candidate,
            reason=reason,
            actor=actor,
            expected=pointer,
            action="rollout_complete",
        )
    return registry.set_rollout(None, reason=reason, actor=actor, expected=pointer)


def rollout_event(
    registry: ModelRegistry, *, action: str, before: ChampionPointer, after: ChampionPointer
) -> Event:
    """The system-log record of a rollout change (type ``training``, like promotions)."""
    rollout = after.rollout or before.rollout
    return Event(
        type="training",
        model_version=rollout.candidate if rollout else after.version,
        data={
            "action": action,
            "version": after.version,
            "from_version": before.version,
            "candidate": rollout.candidate if rollout else None,
            "rollout": rollout.to_dict() if rollout else None,
            "reason": after.reason,
            "actor": after.actor,
            "registry": registry.uri,
            "model_name": registry.model_name,
            "sequence": after.sequence,
        },
    )
