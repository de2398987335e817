"""Training input is bounded (issue 18): lines of a CSV, and model names."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import pytest

from mlsys.errors import ConfigError
from mlsys.registry import MODEL_NAME_MAX_LENGTH, ModelRegistry
from tests.training_support import run_main
from training_job import data
from training_job.data import check_line_lengths

LIMIT = 1000


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_a_line_longer_than_the_limit_is_named_wherever_it_falls(
    tmp_path: Path, compression: Literal["gzip"] | None
) -> None:
    rows = b"a,b\n" + b"1,2\n" * 3000  # many blocks of LIMIT bytes
    long_line = b"3," + b"4" * LIMIT + b"\n"  # spans two blocks
    path = tmp_path / ("data.csv.gz" if compression else "data.csv")
    raw = rows + long_line + rows
    path.write_bytes(gzip.compress(raw) if compression else raw)
    with pytest.raises(data.DataError, match=f"line 3002 is longer than {LIMIT} bytes"):
        check_line_lengths(path, source=str(path), compression=compression, limit=LIMIT)
    fitting = tmp_path / "fits.csv"
    fitting.write_bytes(rows + b"3," + b"4" * (LIMIT - 2) + b"\n" + rows)
    check_line_lengths(fitting, source="fits.csv", compression=None, limit=LIMIT)
    no_newline = tmp_path / "blob.csv"
    no_newline.write_bytes(b"x" * (5 * LIMIT))
    with pytest.raises(data.DataError, match="line 1 is longer"):
        check_line_lengths(no_newline, source="blob.csv", compression=None, limit=LIMIT)


def test_mlsys_train_stops_on_a_file_without_newlines_with_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "MAX_LINE_BYTES", LIMIT)
    blob = tmp_path / "upload.csv"
    blob.write_bytes(b"1," * (50 * LIMIT))
    registry = tmp_path / "registry"
    code = run_main(
        [
            "train",
            "--data",
            str(blob),
            "--registry",
            str(registry),
            "--log",
            f"sqlite:///{tmp_path}/l",
            "--quiet",  # the error alone (progress lines precede it otherwise)
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        f"mlsys train: error: {blob}: line 1 is longer than {LIMIT} bytes; a CSV file needs "
        "one row per line (is it a CSV at all?)"
    ]
    assert not registry.exists() or not any(registry.rglob("*.onnx"))


@pytest.mark.parametrize(
    "name",
    [
        "m" * (MODEL_NAME_MAX_LENGTH + 1),
        "m" * 300,
        "two words",
        "line\nbreak",
        "<b>bold</b>",
        "../up",
        ".hidden",
        "-flag",
        "caf\u00e9",
        "",
    ],
)
def test_model_names_outside_the_safe_pattern_are_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(ConfigError):
        ModelRegistry.open(str(tmp_path / "registry"), model_name=name)
    code = run_main(
        ["train", "--registry", str(tmp_path / "registry"), "--model-name", name,
         "--log", f"sqlite:///{tmp_path}/log.sqlite3"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("mlsys train: error: ")
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").rglob("*"))


@pytest.mark.parametrize("name", ["default", "churn-v2", "Fraud_Model.2026", "m" * 64])
def test_ordinary_model_names_are_accepted(tmp_path: Path, name: str) -> None:
    assert ModelRegistry.open(str(tmp_path), model_name=name).model_name == name
