"""``mlsys models rollout [complete|abort|evaluate]`` and ``promote --canary/--shadow``.

``rollout`` alone prints the state: ``{"state": "none"|"canary"|"shadow", "champion",
"candidate", "fraction", "started", "evidence"}`` (evidence read from the system log).
``complete``/``abort`` end the rollout by hand; ``evaluate`` applies the automatic
policy (:func:`mlsys.rollout.policy.decide_rollout`) and completes, aborts or reports
``pending``. Every change is a compare-and-swap on the champion pointer and an event
in the system log and in ``mlsys models history``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlsys.cli.common import fraction, pickup_note
from mlsys.eventlog import Event, EventLog, open_event_log_for
from mlsys.registry import ChampionPointer, ModelRegistry, RolloutMode
from mlsys.rollout.evaluation import evaluate_rollout, read_evidence
from mlsys.rollout.policy import RolloutPolicy
from mlsys.rollout.quality import feedback_live_quality
from mlsys.rollout.state import end_rollout, rollout_event, rollout_state, start_rollout
from mlsys.settings import Settings

ACTOR = "mlsys models"


def add_promote_arguments(promote: argparse.ArgumentParser) -> None:
    staged = promote.add_mutually_exclusive_group()
    staged.add_argument(
        "--canary",
        type=fraction,
        metavar="F",
        help="start a canary: VERSION answers this fraction of requests (by request id)",
    )
    staged.add_argument(
        "--shadow",
        action="store_true",
        help="start a shadow rollout: VERSION runs on every request, only its output is logged",
    )


def add_arguments(rollout: argparse.ArgumentParser) -> None:
    """``mlsys models rollout``'s own arguments (the parser comes from ``mlsys models``)."""
    rollout.add_argument(
        "step",
        nargs="?",
        choices=("show", "complete", "abort", "evaluate"),
        default="show",
        help="default show; evaluate applies the automatic policy to the system log",
    )
    rollout.add_argument("--reason", help="why (required for complete and abort)")


def wants_rollout(args: argparse.Namespace) -> bool:
    return getattr(args, "canary", None) is not None or bool(getattr(args, "shadow", False))


def start(
    registry: ModelRegistry,
    args: argparse.Namespace,
    *,
    version: str,
    reason: str,
    expected: ChampionPointer,
) -> ChampionPointer:
    mode: RolloutMode = "shadow" if args.shadow else "canary"
    return start_rollout(
        registry,
        version,
        mode=mode,
        fraction=args.canary,
        reason=reason,
        actor=ACTOR,
        expected=expected,
    )


def _record(settings: Settings, args: argparse.Namespace, event: Event) -> None:
    """Best effort, like promotions: the registry already holds the change durably."""
    try:
        _open_log(settings, args).append(event)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"mlsys models: warning: {event.data.get('action')} done, but not recorded in "
            f"the system log: {detail}",
            file=sys.stderr,
        )


def _open_log(settings: Settings, args: argparse.Namespace) -> EventLog:
    return open_event_log_for(settings, args.log_uri or settings.log_uri)


def _print(args: argparse.Namespace, payload: dict[str, Any], line: str) -> None:
    print(json.dumps(payload, default=str) if args.json else line)


def report_start(
    registry: ModelRegistry,
    args: argparse.Namespace,
    settings: Settings,
    *,
    pointer: ChampionPointer,
) -> int:
    rollout = pointer.rollout
    assert rollout is not None
    event = rollout_event(registry, action=f"rollout_{rollout.mode}", before=pointer, after=pointer)
    _record(settings, args, event)
    share = (
        f"answers {rollout.fraction:.0%} of requests"
        if rollout.fraction
        else "runs on every request (output logged only)"
    )
    _print(
        args,
        rollout_state(pointer),
        f"{rollout.mode} started: {rollout.candidate} {share} next to champion "
        f"{pointer.version} (champion change #{pointer.sequence})\n"
        f"note: {pickup_note(registry, settings)}",
    )
    return 0


def run(registry: ModelRegistry, args: argparse.Namespace, settings: Settings) -> int:
    if args.step == "show":
        return _show(registry, args, settings)
    if args.step == "evaluate":
        log = _open_log(settings, args)
        result = evaluate_rollout(
            registry,
            log,
            policy=RolloutPolicy.from_settings(settings),
            actor=f"{ACTOR} rollout evaluate",
            live_quality=feedback_live_quality(registry),
        )
        payload = result.to_dict()
        verdict = result.verdict
        line = (
            "no rollout in progress"
            if verdict is None
            else f"{verdict.action}{' (applied)' if result.applied else ''}: {verdict.reason}"
        )
        _print(args, payload, line)
        return 0
    if not args.reason:
        from mlsys.errors import ConfigError  # noqa: PLC0415

        raise ConfigError(f"rollout {args.step} needs --reason TEXT")
    before = registry.require_champion()
    complete = args.step == "complete"
    after = end_rollout(
        registry, complete=complete, reason=args.reason, actor=ACTOR, expected=before
    )
    action = f"rollout_{args.step}"
    _record(settings, args, rollout_event(registry, action=action, before=before, after=after))
    assert before.rollout is not None
    verb = "completed" if complete else "aborted"
    _print(
        args,
        {**rollout_state(after), "action": action, "ended": before.rollout.to_dict()},
        f"rollout {verb}: champion is {after.version} (champion change #{after.sequence})\n"
        f"note: {pickup_note(registry, settings)}",
    )
    return 0


def _show(registry: ModelRegistry, args: argparse.Namespace, settings: Settings) -> int:
    pointer = registry.champion()
    state = rollout_state(pointer)
    evidence: dict[str, Any] = {}
    if pointer is not None and pointer.rollout is not None:
        evidence = read_evidence(
            _open_log(settings, args),
            rollout=pointer.rollout,
            champion_version=pointer.version,
            live_quality=feedback_live_quality(registry),
        ).to_dict()
    payload = {**state, "evidence": evidence}
    if args.json:
        print(json.dumps(payload, default=str))
        return 0
    if pointer is None or pointer.rollout is None:
        print(f"no rollout in progress (champion {state['champion'] or '-'})")
        return 0
    share = f" {pointer.rollout.fraction:.0%}" if pointer.rollout.fraction else ""
    print(
        f"{pointer.rollout.mode}{share}: candidate {pointer.rollout.candidate} next to champion "
        f"{pointer.version} since {pointer.rollout.started}"
    )
    for role in ("candidate", "champion"):
        stats = evidence[role]
        p99 = stats["p99_latency_ms"]
        print(
            f"{role:<9} {stats['requests']} requests, {stats['errors']} errors, p99 "
            f"{'-' if p99 is None else f'{p99:.1f} ms'}"
        )
    if evidence.get("shadow_deviation") is not None:
        print(f"shadow deviation {evidence['shadow_deviation']:.4f}")
    print(live_quality_line(evidence.get("live_quality")))
    return 0


def live_quality_line(quality: dict[str, Any] | None) -> str:
    """Both versions' quality on requests whose true outcome came back (``POST /feedback``)."""
    if not quality:
        return "live quality: no feedback yet (POST /feedback with the true outcomes)"

    def shown(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    direction = "higher" if quality.get("higher_is_better", True) else "lower"
    return (
        f"live {quality['metric']} ({direction} is better): candidate "
        f"{shown(quality.get('candidate'))} on {quality.get('candidate_samples', 0)} "
        f"feedback samples, champion {shown(quality.get('champion'))}"
    )
