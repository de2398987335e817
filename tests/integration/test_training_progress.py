"""`mlsys train` as a user watches it: progress on stderr, `--quiet`, `--drop`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlsys.registry import ModelRegistry
from tests.training_support import (
    FAST,
    nonlinear_regression,
    run_main,
    stopped_search_clock,
    write_csv,
)

pytestmark = pytest.mark.slow

STAMP = re.compile(r"^\[ *\d+\.\ds\] ")


def train_argv(tmp_path: Path, *args: str) -> list[str]:
    return [
        "train",
        "--registry",
        str(tmp_path / "registry"),
        "--log",
        f"sqlite:///{tmp_path / 'log.sqlite3'}",
        *FAST,
        *args,
    ]


def test_progress_tells_each_phase_on_stderr_and_stdout_keeps_the_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = write_csv(nonlinear_regression().assign(id=range(300)), tmp_path / "d.csv")
    argv = train_argv(tmp_path, "--data", str(data), "--models", "linear,random_forest", "--json")
    with stopped_search_clock():  # every candidate is judged, whatever the machine's load
        code = run_main([*argv, "--drop", "id"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)  # nothing but the JSON object on stdout
    stamped = [STAMP.sub("", line) for line in captured.err.splitlines() if STAMP.match(line)]
    starts = [
        f"loading {data}",
        "loaded 300 rows x 5 columns from",
        "data checks passed",
        "search: 2 candidate(s) (linear, random_forest), 5-fold CV on 240 training rows",
        "candidate linear: CV r2 = ",
        "candidate random_forest: CV r2 = ",
        f"final fit: {result['estimator']} on 240 rows",
        "final fit done in",
        "exported to ONNX",
        "evaluated on 60 holdout rows",
        "decision: no_champion: no champion yet",
        f"registered {result['version']} and promoted it to champion",
    ]
    assert len(stamped) == len(starts), stamped
    for line, start in zip(stamped, starts, strict=True):
        assert line.startswith(start), (line, start)
    assert "3 features" in stamped[1]  # a, b, c: 'id' was left out
    # The leaderboard and the phase times close the report.
    tail = [line for line in captured.err.splitlines() if not STAMP.match(line)]
    assert tail[0] == "candidates:"
    assert {line.split()[1] for line in tail[2:4]} == {"linear", "random_forest"}
    assert "winner" in "\n".join(tail[2:4])
    assert tail[-1].startswith("phases: load ")
    assert "final fit" in tail[-1]
    assert "publish" in tail[-1]


def test_quiet_leaves_stderr_empty(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = write_csv(nonlinear_regression(), tmp_path / "d.csv")
    code = run_main([*train_argv(tmp_path, "--data", str(data), "--models", "linear"), "-q"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    assert captured.out.splitlines()[-1].startswith("PROMOTED: ")


def test_dropped_columns_are_recorded_in_the_card(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = nonlinear_regression().assign(row_id=range(300), batch="b1")
    data = write_csv(frame, tmp_path / "d.csv")
    argv = train_argv(tmp_path, "--data", str(data), "--models", "linear", "--json", "-q")
    code = run_main([*argv, "--drop", "row_id", "--drop", "batch"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    card = ModelRegistry.open(str(tmp_path / "registry"), model_name="default").card(
        result["version"]
    )
    assert [f.name for f in card.features] == ["a", "b", "c"]
    assert card.data["dropped_columns"] == {
        "row_id": "left out with --drop",
        "batch": "left out with --drop",
    }
    assert "column 'row_id' is not used as a feature: left out with --drop" in result["notes"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drop", "nosuch"], "--drop: no column 'nosuch' in "),
        (["--target", "y", "--drop", "y"], "--drop: 'y' is the target column; it cannot be"),
    ],
)
def test_dropping_a_column_the_data_lacks_is_a_one_line_error_after_the_progress(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    data = write_csv(nonlinear_regression(), tmp_path / "d.csv")
    code = run_main([*train_argv(tmp_path, "--data", str(data)), *args])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    errors = [line for line in err if not STAMP.match(line)]
    assert len(errors) == 1
    assert errors[0].startswith(f"mlsys train: error: {message}")
    assert err[-1] == errors[0]
    assert not (tmp_path / "registry").exists()


def test_without_target_the_last_column_not_dropped_is_the_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = write_csv(nonlinear_regression().assign(id=range(300)), tmp_path / "d.csv")
    argv = train_argv(tmp_path, "--data", str(data), "--models", "linear", "--json", "-q")
    code = run_main([*argv, "--drop", "id"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["target"] == "y"
