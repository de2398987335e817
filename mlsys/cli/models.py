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
from mlsys.cli.common import add_location_arguments
from mlsys.contract import ModelCard, schema_changes
from mlsys.errors import ConfigError
from mlsys.eventlog import Event, open_event_log_for
from mlsys.registry import ChampionPointer, ModelRegistry
from mlsys.settings import Settings

CHAMPION = "champion"
ACTOR = "mlsys models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Options live on every action so they can follow it: `mlsys models list --json`.
    common = argparse.ArgumentParser(add_help=False)
    add_location_arguments(common, log_help="system log promotions and rollbacks go to")
    common.add_argument("--json", action="store_true", help="print JSON")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    actions.add_parser(
        "list", parents=[common], help="all versions, oldest first, with their holdout scores"
    )
    show = actions.add_parser(
        "show", parents=[common], help="a version's model card ('champion' for the champion)"
    )
    show.add_argument("version", metavar="VERSION")
    promote = actions.add_parser(
        "promote", parents=[common], help="make VERSION the champion (manual override)"
    )
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--reason", required=True, help="why (kept in the promotion history)")
    promote.add_argument(
        "--force",
        action="store_true",
        help="promote even if a guardrail failed or the inputs differ from the champion's",
    )
    rollout_cli.add_promote_arguments(promote)
    rollback = actions.add_parser(
        "rollback", parents=[common], help="restore the previous champion"
    )
    rollback.add_argument(
        "--reason", default="manual rollback", help="why (kept in the promotion history)"
    )
    actions.add_parser("history", parents=[common], help="champion changes, oldest first")
    rollout_cli.add_arguments(actions, parents=[common])


def _score(card: ModelCard) -> float | None:
    challenger = card.metrics.get("challenger") or {}
    value = challenger.get(card.metric) if isinstance(challenger, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


def _row(card: ModelCard, champion: ChampionPointer | None) -> dict[str, Any]:
    return {
        "version": card.version,
        "champion": champion is not None and champion.version == card.version,
        "created_at": card.created_at,
        "task": card.task,
        "estimator": card.training.get("estimator"),
        "metric": card.metric,
        "score": _score(card),
        "decision": card.decision.get("code"),
    }


def _print_table(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        print("no versions yet")
        return
    for row in rows:
        marker = "*" if row["champion"] else " "
        score = "-" if row["score"] is None else f"{row['score']:.4f}"
        print(
            f"{marker} {row['version']}  {row['created_at']}  {row['estimator'] or '-':<18} "
            f"{row['metric']}={score}  {row['decision'] or ''}"
        )


class PromotionRefusedError(ConfigError):
    """A manual promotion the guardrails forbid (exit 2; ``--force`` overrides)."""

    code = "promotion_refused"


def promotion_blockers(card: ModelCard, champion: ModelCard | None) -> list[str]:
    """Why ``card`` should not be promoted over ``champion`` (empty: nothing against it).

    The same checks that block an automatic promotion: a guardrail recorded as failed in
    the card, and a schema change (task, target, or input names/kinds) against the
    current champion, which clients of the API would notice.
    """
    blockers = [
        f"guardrail {check.get('name')} failed ({check.get('detail', 'no detail')})"
        for check in card.guardrails.get("checks", [])
        if isinstance(check, Mapping) and check.get("passed") is False
    ]
    if card.guardrails.get("passed") is False and not blockers:
        blockers.append("its guardrails failed")
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
    for line in importance_lines(card):
        print(line)
    return 0


IMPORTANCE_SHOWN = 20


def importance_lines(card: ModelCard) -> list[str]:
    """The card's permutation importance, most important first (empty for older cards)."""
    importance = card.importance
    features = importance.get("features")
    if not isinstance(features, Mapping) or not features:
        return []
    ranked = sorted(features.items(), key=lambda item: -float(item[1]["mean"]))
    width = max(len(name) for name, _ in ranked[:IMPORTANCE_SHOWN])
    lines = [
        f"importance  loss of {importance.get('metric')} when a feature is shuffled "
        f"({importance.get('rows')} holdout rows, {importance.get('repeats')} shuffles each)"
    ]
    lines.extend(
        f"            {name:<{width}}  {float(value['mean']):+.4f} ± {float(value['std']):.4f}"
        for name, value in ranked[:IMPORTANCE_SHOWN]
    )
    if len(ranked) > IMPORTANCE_SHOWN:
        lines.append(f"            ... {len(ranked) - IMPORTANCE_SHOWN} more (--json has all)")
    return lines


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
    for entry in entries:
        candidate = f" (candidate {entry['candidate']})" if entry.get("candidate") else ""
        print(
            f"{entry['at']}  {entry['action']:<8} {entry.get('from_version') or '-'} -> "
            f"{entry['version']}{candidate}  {entry['actor']}: {entry['reason']}"
        )
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    registry = ModelRegistry.open(
        args.registry or settings.registry_uri, model_name=args.model_name or settings.model_name
    )
    if args.action == "list":
        champion = registry.champion()
        rows = [_row(registry.card(v), champion) for v in registry.versions()]
        if args.json:
            print(json.dumps(rows, default=str))
        else:
            _print_table(rows)
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
    return 0
