"""``mlsys models``: list, show, promote and roll back model versions.

``mlsys models show champion`` exits 1 when there is no champion yet (the
Makefile relies on that to decide whether to train); an unknown VERSION is bad
input (exit 2). Manual promotion and rollback rewrite the champion pointer with
compare-and-swap, like training, and append a ``training`` event (action
``promote``/``rollback``) to the system log, best effort. ``promote`` refuses a
version whose card records a failed guardrail, or whose inputs, task or target
differ from the current champion's, unless ``--force`` is given (then the
history entry's reason says what was forced past).

``promote VERSION --canary F`` / ``--shadow`` starts a staged rollout instead of
switching outright; ``mlsys models rollout [complete|abort|evaluate]`` shows and ends
it (see :mod:`mlsys.cli.rollout`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from mlsys.cli import rollout as rollout_cli
from mlsys.cli.common import add_location_arguments, pickup_note
from mlsys.contract import ModelCard, schema_changes
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, open_event_log_for
from mlsys.registry import ChampionPointer, ModelRegistry
from mlsys.settings import Settings

CHAMPION = "champion"
ACTOR = "mlsys models"
EXAMPLES = """examples:
  mlsys models list                          versions, scores and what each is now
  mlsys models show champion
  mlsys models promote VERSION --reason "better on last week's data"
  mlsys models promote VERSION --canary 0.1 --reason "try it on 10% of requests"
  mlsys models rollout                       the rollout and both versions' live quality
  mlsys models rollback --reason 'latency regression'"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Options live on every action so they can follow it: `mlsys models list --json`.
    common = argparse.ArgumentParser(add_help=False)
    add_location_arguments(common, log_help="system log promotions and rollbacks go to")
    common.add_argument("--json", action="store_true", help="print JSON")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=ACTION_EXAMPLES[name],
        )

    action("list", "all versions, oldest first: created, holdout score, and what each is now")
    show = action("show", "a version's model card ('champion' for the champion)")
    show.add_argument("version", metavar="VERSION")
    promote = action("promote", "make VERSION the champion (manual override)")
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--reason", required=True, help="why (kept in the promotion history)")
    promote.add_argument(
        "--force",
        action="store_true",
        help="promote even if training refused the version (below the trivial baseline, "
        "not significant, a guardrail failed) or its inputs differ from the champion's; the "
        "history records what was forced past",
    )
    rollout_cli.add_promote_arguments(promote)
    rollback = action("rollback", "restore the previous champion")
    rollback.add_argument(
        "--reason", default="manual rollback", help="why (kept in the promotion history)"
    )
    action("history", "champion changes, oldest first, one sentence each")
    rollout_cli.add_arguments(
        action(
            "rollout",
            "show the rollout and both versions' live quality; complete, abort or evaluate it",
        )
    )


ACTION_EXAMPLES = {
    "list": "example:\n  mlsys models list --json | jq '.[] | select(.champion)'",
    "show": "examples:\n  mlsys models show champion\n  mlsys models show VERSION --json",
    "promote": "examples:\n  mlsys models promote VERSION --reason 'wins on fresh data'\n"
    "  mlsys models promote VERSION --shadow --reason 'compare on live traffic first'",
    "rollback": "example:\n  mlsys models rollback --reason 'error rate doubled'",
    "history": "example:\n  mlsys models history",
    "rollout": "examples:\n  mlsys models rollout\n"
    "  mlsys models rollout complete --reason 'live quality holds'\n"
    "  mlsys models rollout evaluate",
}
"""Each ``mlsys models`` action's help epilog."""


def _score(card: ModelCard) -> float | None:
    challenger = card.metrics.get("challenger") or {}
    value = challenger.get(card.metric) if isinstance(challenger, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


REFUSALS_NEEDING_FORCE = frozenset({"below_baseline", "not_significant", "guardrail_failed"})
"""Decision codes of a training run that judged its challenger not good enough (below the
trivial baseline, not significantly better than the champion it was compared with, a
failed guardrail): promoting such a version by hand needs ``--force``, and the history
records what was forced past. (``not_improved`` is not among them: an older version may
well be promoted back.)"""
CHAMPION_ACTIONS = frozenset({"promote", "rollback", "rollout_complete"})
"""History actions after which the entry's ``version`` is the champion."""


def version_status(
    card: ModelCard, pointer: ChampionPointer | None, *, past: Mapping[str, str]
) -> str:
    """What a version is now, in a few words: ``champion``, ``canary 10%``, ``shadow``,
    ``former champion``, ``rollout aborted``, ``refused: below baseline``, or
    ``not promoted``. ``past`` is :func:`past_roles` of the history."""
    if pointer is not None and pointer.version == card.version:
        return "champion"
    rollout = pointer.rollout if pointer else None
    if rollout is not None and rollout.candidate == card.version:
        return f"canary {rollout.fraction:.0%}" if rollout.fraction else "shadow"
    if card.version in past:
        return past[card.version]
    code = card.decision.get("code")
    if card.decision.get("promote") is False and isinstance(code, str):
        return f"refused: {code.replace('_', ' ')}"
    return "not promoted"


def past_roles(history: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Version -> its last role in the history: ``former champion`` or ``rollout aborted``."""
    roles: dict[str, str] = {}
    for entry in history:
        if entry.get("action") in CHAMPION_ACTIONS:
            roles[str(entry["version"])] = "former champion"
        elif entry.get("action") == "rollout_abort" and entry.get("candidate"):
            roles[str(entry["candidate"])] = "rollout aborted"
    return roles


def _row(
    card: ModelCard, champion: ChampionPointer | None, past: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "version": card.version,
        "champion": champion is not None and champion.version == card.version,
        "status": version_status(card, champion, past=past),
        "created_at": card.created_at,
        "task": card.task,
        "estimator": card.training.get("estimator"),
        "metric": card.metric,
        "score": _score(card),
        "decision": card.decision.get("code"),
    }


LIST_COLUMNS = ("VERSION", "CREATED", "ESTIMATOR", "METRIC", "SCORE", "STATUS")


def table_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``mlsys models list``: a header, then one aligned line per version."""
    if not rows:
        return ["no versions yet (train one: mlsys train)"]
    cells = [
        (
            str(row["version"]),
            str(row["created_at"] or "-").replace("T", " ")[:19],
            str(row["estimator"] or "-"),
            str(row["metric"]),
            "-" if row["score"] is None else f"{row['score']:.4f}",
            str(row["status"]),
        )
        for row in rows
    ]
    widths = [max(len(c[i]) for c in [LIST_COLUMNS, *cells]) for i in range(len(LIST_COLUMNS))]
    right = {LIST_COLUMNS.index("SCORE")}
    return [
        "  ".join(
            value.rjust(width) if i in right else value.ljust(width)
            for i, (value, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in [LIST_COLUMNS, *cells]
    ]


class PromotionRefusedError(ConfigError):
    """A manual promotion the guardrails forbid (exit 2; ``--force`` overrides)."""

    code = "promotion_refused"


def promotion_blockers(card: ModelCard, champion: ModelCard | None) -> list[str]:
    """Why ``card`` should not be promoted over ``champion`` (empty: nothing against it).

    The same checks that block an automatic promotion: a guardrail recorded as failed in
    the card, a refusal by its training run (:data:`REFUSALS_NEEDING_FORCE`), and a
    schema change (task, target, or input names/kinds) against the current champion,
    which clients of the API would notice.
    """
    blockers = [
        f"guardrail {check.get('name')} failed ({check.get('detail', 'no detail')})"
        for check in card.guardrails.get("checks", [])
        if isinstance(check, Mapping) and check.get("passed") is False
    ]
    if card.guardrails.get("passed") is False and not blockers:
        blockers.append("its guardrails failed")
    code = card.decision.get("code")
    if code in REFUSALS_NEEDING_FORCE and code != "guardrail_failed":
        blockers.append(f"training refused it ({code}: {card.decision.get('reason', '')})")
    if champion is None or champion.version == card.version:
        return blockers
    changes = schema_changes(champion, task=card.task, target=card.target, features=card.features)
    if changes:
        blockers.append(f"schema differs from champion {champion.version}: {'; '.join(changes)}")
    return blockers


def record_champion_change(
    settings: Settings,
    log_uri: str | None,
    *,
    registry: ModelRegistry,
    action: str,
    pointer: ChampionPointer,
    from_version: str | None,
    forced: bool = False,
) -> None:
    """Append the change to the system log; a log failure is a warning, never a rollback
    (the registry's history already holds the change durably)."""
    data = {
        "action": action,
        "version": pointer.version,
        "from_version": from_version,
        "reason": pointer.reason,
        "actor": pointer.actor,
        "registry": registry.uri,
        "model_name": registry.model_name,
        "sequence": pointer.sequence,
        "forced": forced,
    }
    try:
        open_event_log_for(settings, log_uri or settings.log_uri).append(
            Event(type="training", data=data, model_version=pointer.version)
        )
    except Exception as exc:  # best effort: the champion change already happened
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"mlsys models: warning: {action} of {pointer.version} done, but not recorded "
            f"in the system log: {detail}",
            file=sys.stderr,
        )


def _pointer_dict(pointer: ChampionPointer) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(pointer.to_json())
    return data


def _show(registry: ModelRegistry, version: str, *, as_json: bool) -> int:
    pointer = registry.require_champion() if version == CHAMPION else registry.champion()
    resolved = pointer.version if version == CHAMPION and pointer else version
    card = registry.card(resolved)
    is_champion = pointer is not None and pointer.version == card.version
    if as_json:
        print(
            json.dumps(
                {
                    "champion": is_champion,
                    "pointer": _pointer_dict(pointer) if is_champion and pointer else None,
                    "card": card.to_dict(),
                },
                default=str,
            )
        )
        return 0
    print(f"version     {card.version}{'  (champion)' if is_champion else ''}")
    print(f"model       {card.model_name}, {card.task}, target {card.target!r}")
    print(f"created     {card.created_at}")
    print(f"estimator   {card.training.get('estimator')}")
    score = _score(card)
    print(
        f"holdout     {card.metric} = {'-' if score is None else f'{score:.4f}'} "
        f"on {card.metrics.get('holdout_rows', '?')} rows"
    )
    features = ", ".join(f"{f.name} ({f.kind})" for f in card.features)
    print(f"features    {features}")
    if card.classes is not None:
        print(f"classes     {', '.join(str(c) for c in card.classes)}")
    print(f"data        {card.data.get('source')} sha256={card.data.get('sha256')}")
    print(f"decision    {card.decision.get('reason', '-')}")
    if is_champion and pointer is not None:
        print(f"promoted    {pointer.updated_at} by {pointer.actor}: {pointer.reason}")
    return 0


def _promote(
    registry: ModelRegistry, args: argparse.Namespace
) -> tuple[ChampionPointer, str | None, bool]:
    """The new pointer, the version it replaced and whether ``--force`` was needed."""
    card = registry.card(args.version)  # must exist before reading the pointer
    expected = registry.champion()
    champion_card = registry.card(expected.version) if expected else None
    blockers = promotion_blockers(card, champion_card)
    reason = args.reason
    if blockers and not args.force:
        raise PromotionRefusedError(
            f"not promoting {card.version}: {'; '.join(blockers)} (--force to override)"
        )
    if blockers:
        reason = f"{args.reason} [forced: {'; '.join(blockers)}]"
    if rollout_cli.wants_rollout(args):
        if expected is None:
            raise ConfigError("no champion yet: a first champion is always promoted directly")
        started = rollout_cli.start(
            registry, args, version=card.version, reason=reason, expected=expected
        )
        return started, expected.version, bool(blockers)
    pointer = registry.promote(card.version, reason=reason, actor=ACTOR, expected=expected)
    return pointer, expected.version if expected else None, bool(blockers)


def _history(registry: ModelRegistry, *, as_json: bool) -> int:
    entries = registry.history()
    if as_json:
        print(json.dumps(entries, default=str))
        return 0
    if not entries:
        print("no champion changes yet")
    for entry in entries:
        print(f"{entry['at']}  #{entry['sequence']}  {history_sentence(entry)}")
    return 0


def history_sentence(entry: Mapping[str, Any]) -> str:
    """One champion change, as a sentence: who did what to which version, and why."""
    action, version = entry.get("action"), entry.get("version")
    before, candidate = entry.get("from_version"), entry.get("candidate")
    if action == "promote" and before is None:
        what = f"promoted {version} as the first champion"
    elif action == "promote":
        what = f"promoted {version}, replacing {before}"
    elif action == "rollback":
        what = f"rolled back from {before} to {version}"
    elif action in ("rollout_canary", "rollout_shadow"):
        mode = "a canary" if action == "rollout_canary" else "a shadow rollout"
        what = f"started {mode} of {candidate} next to champion {version}"
    elif action == "rollout_complete":
        what = f"completed the rollout: {version} replaces {before} as champion"
    elif action == "rollout_abort":
        what = f"aborted the rollout of {candidate}; {version} stays champion"
    else:
        what = f"{action}: champion {version}"
    actor = str(entry.get("actor") or "someone")
    # Training runs sign as training_job:<their version>, which the sentence already names.
    who = "training" if actor.startswith("training_job") else actor
    return f"{who} {what}: {entry.get('reason') or 'no reason given'}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = ModelRegistry.open(
        args.registry or settings.registry_uri, model_name=args.model_name or settings.model_name
    )
    if args.action == "list":
        champion = registry.champion()
        past = past_roles(registry.history())
        rows = [_row(registry.card(v), champion, past) for v in registry.versions()]
        print(json.dumps(rows, default=str) if args.json else "\n".join(table_lines(rows)))
        return 0
    if args.action == "show":
        return _show(registry, args.version, as_json=args.json)
    if args.action == "history":
        return _history(registry, as_json=args.json)
    if args.action == "rollout":
        return rollout_cli.run(registry, args, settings)
    if args.action == "promote":
        pointer, from_version, forced = _promote(registry, args)
        if pointer.rollout is not None:
            return rollout_cli.report_start(registry, args, settings, pointer=pointer)
        verb = "promoted"
    else:
        from_version, forced = registry.require_champion().version, False
        pointer = registry.rollback(reason=args.reason, actor=ACTOR)
        verb = "rolled back to"
    record_champion_change(
        settings,
        args.log_uri,
        registry=registry,
        action=args.action,
        pointer=pointer,
        from_version=from_version,
        forced=forced,
    )
    if args.json:
        print(json.dumps(_pointer_dict(pointer)))
    else:
        print(f"{verb} {pointer.version} (champion change #{pointer.sequence})")
        print(f"note: {pickup_note(registry, settings)}")
    return 0
