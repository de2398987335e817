"""What is live at a glance, and a command line that explains itself."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_inference.local.adapter import route_index
from lambda_inference.routes import ROUTES
from mlsys import __version__
from mlsys.cli import SUBCOMMANDS, build_parser
from mlsys.cli.common import pickup_note
from mlsys.cli.models import history_sentence, past_roles, table_lines, version_status
from mlsys.cli.rollout import live_quality_line
from mlsys.contract import FeatureSpec, ModelCard
from mlsys.registry import ChampionPointer, ModelRegistry, Rollout
from mlsys.settings import Settings
from tests.training_support import run_main


def card(version: str, **decision: Any) -> ModelCard:
    return ModelCard(
        model_name="default",
        version=version,
        task="regression",
        target="y",
        features=(FeatureSpec(name="x", kind="numeric", input_name="x"),),
        metric="r2",
        decision=decision,
    )


def pointer(version: str, rollout: Rollout | None = None) -> ChampionPointer:
    return ChampionPointer(
        version=version, sequence=3, reason="r", actor="a", updated_at="", rollout=rollout
    )


CANARY = Rollout(mode="canary", candidate="v3", started="2026-12-03T00:00:00Z", fraction=0.1)


@pytest.mark.parametrize(
    ("version", "decision", "rollout", "status"),
    [
        ("v1", {"promote": True, "code": "no_champion"}, None, "champion"),
        ("v3", {"promote": True, "code": "improved"}, CANARY, "canary 10%"),
        ("v3", {"promote": True, "code": "improved"}, Rollout(
            mode="shadow", candidate="v3", started="2026-12-03T00:00:00Z"), "shadow"),
        ("v0", {"promote": True, "code": "no_champion"}, None, "former champion"),
        ("v4", {"promote": False, "code": "below_baseline"}, None, "refused: below baseline"),
        ("v5", {"promote": False, "code": "not_significant"}, None, "refused: not significant"),
        ("v6", {"promote": True, "code": "improved"}, None, "rollout aborted"),
        ("v7", {"promote": True, "code": "improved"}, None, "not promoted"),
    ],
)  # fmt: skip
def test_every_version_says_what_it_is_now(
    version: str, decision: dict[str, Any], rollout: Rollout | None, status: str
) -> None:
    history = [
        {"action": "promote", "version": "v0", "from_version": None},
        {"action": "rollout_canary", "version": "v0", "candidate": "v6"},
        {"action": "rollout_abort", "version": "v0", "candidate": "v6"},
        {"action": "promote", "version": "v1", "from_version": "v0"},
    ]
    current = pointer("v1", rollout)
    assert version_status(card(version, **decision), current, past=past_roles(history)) == status


def test_models_list_is_a_table_with_a_header() -> None:
    rows = [
        {
            "version": "20261203T040000000Z-aaaaaa",
            "created_at": "2026-12-03T04:00:00.000Z",
            "estimator": "linear",
            "metric": "r2",
            "score": 0.45123,
            "status": "champion",
        },
        {
            "version": "20261203T041500000Z-bbbbbb",
            "created_at": "2026-12-03T04:15:00.000Z",
            "estimator": "lightgbm",
            "metric": "r2",
            "score": None,
            "status": "refused: below baseline",
        },
    ]
    lines = table_lines(rows)
    assert lines[0].split() == ["VERSION", "CREATED", "ESTIMATOR", "METRIC", "SCORE", "STATUS"]
    assert lines[1].split() == [
        "20261203T040000000Z-aaaaaa",
        "2026-12-03",
        "04:00:00",
        "linear",
        "r2",
        "0.4512",
        "champion",
    ]
    assert lines[2].endswith("refused: below baseline")
    # Columns line up: every STATUS starts where the header's does.
    start = lines[0].index("STATUS")
    assert {line[start:].split()[0] for line in lines[1:]} == {"champion", "refused:"}
    assert table_lines([]) == ["no versions yet (train one: mlsys train)"]


@pytest.mark.parametrize(
    ("entry", "sentence"),
    [
        ({"action": "promote", "version": "v1", "from_version": None},
         "training promoted v1 as the first champion: because"),
        ({"action": "promote", "version": "v2", "from_version": "v1"},
         "training promoted v2, replacing v1: because"),
        ({"action": "rollback", "version": "v1", "from_version": "v2"},
         "training rolled back from v2 to v1: because"),
        ({"action": "rollout_canary", "version": "v1", "from_version": "v1", "candidate": "v2"},
         "training started a canary of v2 next to champion v1: because"),
        ({"action": "rollout_shadow", "version": "v1", "from_version": "v1", "candidate": "v2"},
         "training started a shadow rollout of v2 next to champion v1: because"),
        ({"action": "rollout_complete", "version": "v2", "from_version": "v1", "candidate": "v2"},
         "training completed the rollout: v2 replaces v1 as champion: because"),
        ({"action": "rollout_abort", "version": "v1", "from_version": "v1", "candidate": "v2"},
         "training aborted the rollout of v2; v1 stays champion: because"),
    ],
)  # fmt: skip
def test_history_entries_read_as_sentences(entry: dict[str, Any], sentence: str) -> None:
    assert history_sentence({**entry, "actor": "training_job", "reason": "because"}) == sentence


def test_the_note_after_a_promotion_says_when_servers_switch(tmp_path: Any) -> None:
    local = ModelRegistry.open(str(tmp_path), model_name="default")
    assert pickup_note(local, Settings()) == (
        "a running `mlsys serve` on this registry switches within 1 s"
    )
    settings = Settings(model_refresh_seconds=0.0)
    assert pickup_note(local, settings).endswith("within 0 s")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--version"]) == 0
    assert capsys.readouterr().out == f"mlsys {__version__}\n"


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_every_help_page_has_examples_and_no_markup(command: str | None) -> None:
    argv = [command] if command else []
    parser, _ = build_parser(argv)
    page = parser.format_help() if command is None else _subparser(parser, command).format_help()
    assert "``" not in page
    assert ":mod:" not in page
    assert "example" in page
    assert "  mlsys " in page  # an example command line


def test_defaults_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    parser, _ = build_parser(["serve"])
    page = " ".join(_subparser(parser, "serve").format_help().split())
    assert "(0 picks a free one) (default 8080)" in page
    assert "address to bind (default 127.0.0.1)" in page
    assert "stays open (1-30) (default 15)" in page


def _subparser(parser: Any, command: str) -> Any:
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices[command]


def test_the_root_lists_every_route_including_the_monitor() -> None:
    listed = {(r["method"], r["path"]) for r in route_index()["routes"]}
    assert listed == {(r.method, r.path) for r in ROUTES} | {("GET", "/monitor")}


def test_the_rollout_text_gives_both_versions_live_quality() -> None:
    quality = {
        "metric": "rmse",
        "higher_is_better": False,
        "champion": 41.25,
        "candidate": 38.5,
        "candidate_samples": 120,
    }
    assert live_quality_line(quality) == (
        "live rmse (lower is better): candidate 38.5000 on 120 feedback samples, champion 41.2500"
    )
    assert live_quality_line(None).startswith("live quality: no feedback yet")


def test_mlsys_serve_rereads_a_directory_registry_every_second() -> None:
    from mlsys.cli.serve import serve_settings  # noqa: PLC0415 - the server's imports

    parser, _ = build_parser(["serve"])
    local = serve_settings(parser.parse_args(["serve", "--registry", "reg"]), Settings())
    assert local.model_refresh_seconds == 1.0
    on_s3 = serve_settings(parser.parse_args(["serve", "--registry", "s3://b/p"]), Settings())
    assert on_s3.model_refresh_seconds == 30.0
    quicker = Settings(model_refresh_seconds=0.0)
    assert serve_settings(parser.parse_args(["serve"]), quicker).model_refresh_seconds == 0.0
