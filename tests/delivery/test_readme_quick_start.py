"""The README's quick start shows what ``make run`` prints today.

The commands come from the Makefile's ``run`` recipe and run for real, offline, in an empty
directory with the defaults (the bundled diabetes data, a ``.mlsys/`` registry and log), so the
test fails when the summary, the make echo line or the server's start-up lines change format
and the README was not updated. Only figures (scores, times, counts, ports) and version ids
may differ from the README's sample.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
VERSION = re.compile(r"\d{8}T\d{9}Z-[0-9a-f]{6}")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def quick_start_output() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[
        readme.index("## Quick start") : readme.index("\n## ", readme.index("## Quick start") + 1)
    ]
    block = section[section.index("```text\n") + len("```text\n") :]
    return block[: block.index("```")].rstrip("\n").splitlines()


def makefile_variables(makefile: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+) *[?:]?= *(\S+)$", makefile, flags=re.MULTILINE))


def run_recipe() -> tuple[str, str]:
    """The train and serve commands of ``make run``, with make's variables expanded."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE)
    assert recipe, "the Makefile has no run recipe"
    variables = makefile_variables(makefile)

    def expand(text: str) -> str:
        return re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables[m.group(1)], text)

    lines = [expand(line.strip()) for line in recipe.group(1).splitlines()]
    (train,) = {
        re.sub(r";.*", "", m) for line in lines for m in re.findall(r"\S+/mlsys train\S*", line)
    }
    (serve,) = [line for line in lines if "/mlsys serve " in line]
    return train, serve


def pattern(sample_line: str) -> re.Pattern[str]:
    """A README sample line as a regex: version ids and figures vary, every word is fixed."""
    parts: list[str] = []
    position = 0
    for match in re.finditer(rf"{VERSION.pattern}|{NUMBER.pattern}", sample_line):
        parts.append(re.escape(sample_line[position : match.start()]))
        parts.append(VERSION.pattern if VERSION.fullmatch(match.group()) else NUMBER.pattern)
        position = match.end()
    parts.append(re.escape(sample_line[position:]))
    return re.compile("".join(parts))


def clean_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLSYS_")}
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"
    return environment


def serve_start_lines(command: list[str], cwd: Path) -> list[str]:
    """The lines ``mlsys serve`` prints before it answers, then it is stopped (SIGTERM)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=clean_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"mlsys serve exited: {process.stderr.read()}")
            lines.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                return lines
        raise AssertionError(f"mlsys serve printed no 'listening on' line: {lines}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)


def test_pattern_keeps_words_and_varies_only_figures_and_versions() -> None:
    sample = "challenger 20261203T055642859Z-ffb82c: r2 = 0.3311"
    assert pattern(sample).fullmatch("challenger 20270101T000000000Z-0a1b2c: r2 = -1.5")
    assert not pattern(sample).fullmatch("challenger 20270101T000000000Z-0a1b2c: rmse = 0.3311")
    assert not pattern("2 worker(s)").fullmatch("2 workers")


def test_quick_start_output_matches_what_make_run_prints(tmp_path: Path) -> None:
    sample = quick_start_output()
    train, serve = run_recipe()
    venv = f"{makefile_variables((ROOT / 'Makefile').read_text())['VENV']}/bin/"
    trained = subprocess.run(
        [str(VENV_BIN / "mlsys"), *train.split()[1:]],
        cwd=tmp_path,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr
    assert trained.stderr, "training should report its progress on stderr"
    serve_args = serve.split()
    assert serve_args[0] == f"{venv}mlsys"
    port_index = serve_args.index("--port") + 1
    started = serve_start_lines(
        [
            str(VENV_BIN / "mlsys"),
            *serve_args[1:port_index],
            "0",
            *serve_args[port_index + 1 :],
        ],
        tmp_path,
    )
    printed = [*trained.stdout.rstrip("\n").splitlines(), serve, *started]

    assert len(sample) == len(printed), (
        "the README's quick start output has "
        f"{len(sample)} lines, make run prints {len(printed)}:\n" + "\n".join(printed)
    )
    for sample_line, line in zip(sample, printed, strict=True):
        assert pattern(sample_line).fullmatch(line), (
            f"README quick start shows\n  {sample_line}\nbut make run prints\n  {line}"
        )
