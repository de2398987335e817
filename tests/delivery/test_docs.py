"""The README and docs/ say what the code does: every flag, variable, context key,
route and make target they name exists, and every one the code has is documented."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from infra.config import DEFAULTS
from lambda_inference.handler import ALL_ROUTES
from mlsys import settings
from mlsys.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
ALL_TEXT = "\n".join([README, *DOCS.values()])


def word(token: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])")


def cli_options(command: str) -> set[str]:
    parser, _ = build_parser([command])
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options: set[str] = set()
    pending = [sub.choices[command]]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
            options.update(o for o in action.option_strings if o.startswith("--") and o != "--help")
    return options


COMMANDS = ("train", "models", "serve", "monitor", "predict")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_cli_option_is_documented(command: str) -> None:
    missing = sorted(o for o in cli_options(command) if not word(o).search(ALL_TEXT))
    assert not missing, f"mlsys {command} options missing from README.md and docs/: {missing}"


def _tabled_options(text: str) -> set[str]:
    return {
        option
        for line in text.splitlines()
        if line.startswith("| `--")
        for option in re.findall(r"`(--[a-z-]+)", line.split("|")[1])
    }


def test_every_option_in_the_option_tables_exists() -> None:
    known = set().union(*(cli_options(c) for c in COMMANDS))
    for name, text in {"README.md": README, **DOCS}.items():
        tabled = _tabled_options(text)
        assert tabled <= known, f"{name} documents options that do not exist: {tabled - known}"
    assert _tabled_options(DOCS["cli.md"]), "docs/cli.md should have option tables"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_cli_reference_has_a_section_per_command(command: str) -> None:
    assert f"## `mlsys {command}`" in DOCS["cli.md"]


def _known_variables() -> set[str]:
    # Repository variables the deploy workflow reads are documented next to the runtime ones.
    workflows = "\n".join(p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    return set(settings.KNOWN_VARIABLES) | set(re.findall(r"vars\.([A-Z_]+)", workflows))


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    reference = DOCS["configuration.md"]
    missing = sorted(n for n in settings.KNOWN_VARIABLES if not word(f"`{n}`").search(reference))
    assert not missing, f"environment variables missing from docs/configuration.md: {missing}"
    mentioned = set(re.findall(r"\bMLSYS_[A-Z_]+[A-Z]\b", ALL_TEXT))
    unknown = sorted(mentioned - _known_variables())
    assert not unknown, f"docs mention variables the code does not read: {unknown}"


def test_every_cdk_context_key_is_documented_and_no_other() -> None:
    cdk_json = json.loads((ROOT / "cdk.json").read_text())["context"]
    keys = {k for k in cdk_json if not k.startswith("@")}
    assert keys == set(DEFAULTS)
    reference = DOCS["configuration.md"]
    tabled = set(re.findall(r"(?:^\| |context )`([a-z0-9_]+)`", reference, flags=re.MULTILINE))
    assert tabled == keys, (
        f"undocumented: {sorted(keys - tabled)}; not context keys: {sorted(tabled - keys)}"
    )
    passed = set(re.findall(r"-c ([a-z0-9_]+)=", ALL_TEXT)) - {"key"}  # "-c key=value"
    assert passed <= keys, f"docs pass unknown context keys: {sorted(passed - keys)}"


def test_every_route_is_in_the_readme_tour_and_the_http_reference() -> None:
    tour = README[README.index("## A tour of the local API") : README.index("## Training")]
    reference_headings = "\n".join(re.findall(r"^## .+$", DOCS["http-api.md"], flags=re.MULTILINE))
    for path, methods in ALL_ROUTES.items():
        for method in methods:
            assert f"{method} {path}" in tour, f"{method} {path} missing from the API tour"
            assert re.search(rf"\b{method} {re.escape(path)}(?![\w/.])", reference_headings), (
                f"{method} {path} has no section in docs/http-api.md"
            )


def test_every_make_target_named_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_./-]+):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z0-9_./-]*)", ALL_TEXT))
    assert {"run", "test", "bench"} <= named
    assert named <= targets, f"docs name make targets that do not exist: {named - targets}"


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_and_anchors_resolve() -> None:
    sources = {ROOT / "README.md": README} | {ROOT / "docs" / n: t for n, t in DOCS.items()}
    for source, text in sources.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path_part, _, anchor = target.partition("#")
            path = (source.parent / path_part).resolve() if path_part else source
            assert path.exists(), f"{source.name}: broken link {target}"
            if anchor and path.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
                assert anchor in {_slug(h) for h in headings}, f"{source.name}: no #{anchor}"


def test_quick_start_is_exactly_make_run_and_make_test() -> None:
    section = README[README.index("## Quick start") :].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in section.splitlines()[1:] if line.strip()]
    assert commands == ["make run", "make test"]


def test_readme_is_short_with_a_table_of_contents() -> None:
    assert len(README.splitlines()) <= 350, "reference material belongs in docs/"
    contents = next(line for line in README.split("\n\n") if line.startswith("**Contents:**"))
    linked = set(re.findall(r"\]\(#([^)]+)\)", contents))
    sections = {_slug(h) for h in re.findall(r"^## (.+)$", README, flags=re.MULTILINE)}
    missing = sections - linked - {"license"}
    assert not missing, f"README sections missing from its contents line: {sorted(missing)}"
    assert linked <= sections


def test_every_docs_page_is_linked_from_the_readme() -> None:
    unlinked = sorted(name for name in DOCS if f"](docs/{name}" not in README)
    assert not unlinked, f"docs/ pages the README does not link: {unlinked}"
