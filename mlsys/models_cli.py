"""``mlsys models``: list, show, promote and roll back model versions.

``mlsys models show champion`` exits non-zero when there is no champion yet
(the Makefile relies on that to decide whether to train). Manual promotion and
rollback rewrite the champion pointer with compare-and-swap, like training.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from mlsys.contract import ModelCard
from mlsys.registry import ChampionPointer, ModelRegistry
from mlsys.settings import Settings

CHAMPION = "champion"
ACTOR = "mlsys models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Options live on every action so they can follow it: `mlsys models list --json`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        metavar="URI",
        help="registry directory or s3://bucket/prefix (env MLSYS_REGISTRY_URI)",
    )
    common.add_argument("--model-name", metavar="NAME", help="env MLSYS_MODEL_NAME")
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
    rollback = actions.add_parser(
        "rollback", parents=[common], help="restore the previous champion"
    )
    rollback.add_argument(
        "--reason", default="manual rollback", help="why (kept in the promotion history)"
    )
    actions.add_parser("history", parents=[common], help="champion changes, oldest first")


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
        entries = registry.history()
        if args.json:
            print(json.dumps(entries, default=str))
        else:
            for entry in entries:
                print(
                    f"{entry['at']}  {entry['action']:<8} {entry.get('from_version') or '-'} -> "
                    f"{entry['version']}  {entry['actor']}: {entry['reason']}"
                )
        return 0
    if args.action == "promote":
        version = registry.card(args.version).version  # must exist before reading the pointer
        pointer = registry.promote(
            version, reason=args.reason, actor=ACTOR, expected=registry.champion()
        )
        verb = "promoted"
    else:
        pointer = registry.rollback(reason=args.reason, actor=ACTOR)
        verb = "rolled back to"
    if args.json:
        print(json.dumps(_pointer_dict(pointer)))
    else:
        print(f"{verb} {pointer.version} (champion change #{pointer.sequence})")
    return 0
