"""End to end: ``mlsys train`` -> ``mlsys serve`` -> canary, abort, shadow, complete by CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_diabetes

from mlsys.rollout.state import routes_to_candidate
from tests.serve_support import ServeProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def mlsys(workdir: Path, *args: str) -> Any:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlsys",
            *args,
            "--registry",
            str(workdir / "registry"),
            "--log",
            f"sqlite:///{workdir}/log.sqlite3",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, ServeProcess, str, str]]:
    workdir = tmp_path_factory.mktemp("rollout")
    first = mlsys(workdir, "train", "--models", "linear", "--time-budget", "30")
    assert first["promoted"] is True
    # A second version, registered but not promoted (it cannot gain 100 r2 points).
    second = mlsys(
        workdir, "train", "--models", "linear", "--seed", "1", "--min-improvement", "100"
    )
    assert second["promoted"] is False
    server = ServeProcess(
        str(workdir / "registry"),
        f"sqlite:///{workdir}/log.sqlite3",
        env={"MLSYS_MODEL_REFRESH_SECONDS": "0"},
    )
    yield workdir, server, first["version"], second["version"]
    server.stop()


def ask(server: ServeProcess, count: int) -> list[dict[str, Any]]:
    record = load_diabetes(as_frame=True).data.iloc[0].to_dict()
    return [ok(server.call("POST", "/stream", {"data": record})) for _ in range(count)]


def ok(answer: tuple[int, Any]) -> Any:
    status, body = answer
    assert status == 200, body
    return body


def test_canary_abort_shadow_complete_through_the_local_server(
    setup: tuple[Path, ServeProcess, str, str],
) -> None:
    workdir, server, champion, candidate = setup
    assert {a["model_version"] for a in ask(server, 5)} == {champion}

    started = mlsys(workdir, "models", "promote", candidate, "--canary", "0.3", "--reason", "try")
    assert (started["state"], started["candidate"], started["fraction"]) == (
        "canary",
        candidate,
        0.3,
    )
    answers = ask(server, 400)
    on_candidate = [a for a in answers if a["model_version"] == candidate]
    # Which model answers is decided by the request id alone.
    for a in answers:
        routed = routes_to_candidate(a["request_id"], 0.3)
        assert a["model_version"] == (candidate if routed else champion)
    assert 80 <= len(on_candidate) <= 160  # about 30 % of 400 (random request ids)
    state = mlsys(workdir, "models", "rollout")
    assert state["state"] == "canary"
    assert state["evidence"]["candidate"]["requests"] == len(on_candidate)
    assert state["evidence"]["champion"]["requests"] == 400 - len(on_candidate)

    aborted = mlsys(workdir, "models", "rollout", "abort", "--reason", "enough")
    assert (aborted["state"], aborted["champion"]) == ("none", champion)
    assert {a["model_version"] for a in ask(server, 100)} == {champion}

    mlsys(workdir, "models", "promote", candidate, "--shadow", "--reason", "watch")
    shadowed = ask(server, 20)
    assert {a["model_version"] for a in shadowed} == {champion}
    log = ok(server.call("GET", "/log?type=shadow&limit=100"))["result"]
    assert len(log) == 20
    assert {e["data"]["candidate_version"] for e in log} == {candidate}
    assert {e["data"]["champion_version"] for e in log} == {champion}
    assert {e["request_id"] for e in log} == {a["request_id"] for a in shadowed}
    assert all(isinstance(e["data"]["candidate"]["outputs"], float) for e in log)

    completed = mlsys(workdir, "models", "rollout", "complete", "--reason", "looks right")
    assert (completed["state"], completed["champion"]) == ("none", candidate)
    assert {a["model_version"] for a in ask(server, 50)} == {candidate}

    actions = [e["action"] for e in mlsys(workdir, "models", "history")]
    assert actions == [
        "promote",
        "rollout_canary",
        "rollout_abort",
        "rollout_shadow",
        "rollout_complete",
    ]
    training = ok(server.call("GET", "/log?type=training&limit=10"))["result"]
    logged = [
        e["data"].get("action") for e in training if "rollout" in str(e["data"].get("action"))
    ]
    assert logged == ["rollout_complete", "rollout_shadow", "rollout_abort", "rollout_canary"]
