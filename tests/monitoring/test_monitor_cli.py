"""``mlsys monitor``: the documented --json shape, --html, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.monitoring.support import Trained, make_api, post, records, send_batches
from tests.training_support import run_main


def _argv(trained: Trained, log: Path, *extra: str) -> list[str]:
    return [
        "monitor",
        "--registry",
        str(trained.registry),
        "--model-name",
        trained.model_name,
        "--log",
        f"sqlite:///{log}",
        *extra,
    ]


def test_json_has_the_documented_shape(
    regressor: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.sqlite3"
    api = make_api(regressor, f"sqlite:///{log}")
    send_batches(api, records(regressor.features().iloc[:100]), prefix="b")
    post(api, "/feedback", {"data": [{"request_id": "b-0", "index": 3, "actual": 1.0}]}, "f")
    html = tmp_path / "report.html"
    argv = _argv(regressor, log, "--json", "--since", "2h", "--lookback", "1d", "--html", str(html))
    assert run_main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"window", "versions"}
    assert set(document["window"]) == {"since", "until"}
    assert document["window"]["since"] < document["window"]["until"]
    (version,) = document["versions"]
    assert set(version) == {
        "version",
        "records",
        "coverage",
        "features",
        "prediction",
        "quality",
        "unmatched_feedback",
    }
    assert version["records"] == 100
    # 100 records in one 100-record request: logged whole, so drift rests on all of them,
    # which is too few to trust (warned).
    assert version["coverage"] == {
        "records": 100,
        "share": 1.0,
        "unlogged": 0,
        "low": True,
        "warnings": [
            "low coverage: feature drift rests on 100 of 100 records "
            "(fewer than 200, so PSI is noisy)"
        ],
    }
    assert set(version["features"]) == {"a", "b", "c"}
    assert all(
        set(f) == {"psi", "drift", "coverage", "importance"} for f in version["features"].values()
    )
    assert all(
        f["coverage"] == {"records": 100, "share": 1.0} for f in version["features"].values()
    )
    assert set(version["prediction"]) == {"psi", "drift", "coverage"}
    assert version["prediction"]["coverage"] == {"records": 100, "share": 1.0}
    assert set(version["quality"]) == {"metric", "value", "n", "offline"}
    assert version["quality"]["metric"] == "r2"
    assert version["quality"]["n"] == 1
    assert version["quality"]["value"] is None  # r2 of one row is undefined
    assert version["unmatched_feedback"] == 0
    assert "<svg" in html.read_text()


def test_text_summary_and_an_empty_window(
    regressor: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(_argv(regressor, tmp_path / "log.sqlite3")) == 0
    assert "no predictions in this window" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--since", "tomorrow-ish"), "--since must be an ISO-8601 time"),
        (("--threshold", "0"), "--threshold must be positive"),
        (("--lookback", "later"), "--lookback must be an ISO-8601 time"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    regressor: Trained,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    assert run_main(_argv(regressor, tmp_path / "log.sqlite3", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
