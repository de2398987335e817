"""Loading training data: formats, the bundled default and 'newest file' directories."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

from mlsys.errors import DataError
from training_job.data import DEFAULT_TARGET, data_format, load_dataset


def test_default_is_the_bundled_diabetes_data_with_all_ten_features() -> None:
    dataset = load_dataset(None)
    assert dataset.frame.shape == (442, 11)
    assert dataset.default_target == DEFAULT_TARGET
    assert DEFAULT_TARGET in dataset.frame.columns
    assert load_dataset(None).sha256 == dataset.sha256  # stable fingerprint


def test_csv_and_parquet_load_the_same_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", None], "y": [0, 1]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.csv.gz", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    loaded = [
        load_dataset(str(tmp_path / name)).frame for name in ("d.csv", "d.csv.gz", "d.parquet")
    ]
    for other in loaded:
        assert other["x"].tolist() == [1.5, 2.5]
        assert other["c"].isna().tolist() == [False, True]


def test_a_directory_means_its_newest_data_file(tmp_path: Path) -> None:
    pd.DataFrame({"x": [1], "y": [2]}).to_csv(tmp_path / "b-old.csv", index=False)
    pd.DataFrame({"x": [3], "y": [4]}).to_parquet(tmp_path / "a-new.parquet")
    (tmp_path / "readme.txt").write_text("ignored")
    os.utime(tmp_path / "b-old.csv", (1_000_000, 1_000_000))
    dataset = load_dataset(str(tmp_path))
    assert dataset.source.endswith("a-new.parquet")
    assert dataset.frame["x"].tolist() == [3]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no CSV or Parquet file"):
        load_dataset(str(empty))


@pytest.mark.parametrize("name", ["data.json", "data.xlsx", "data"])
def test_unsupported_formats_are_named(name: str) -> None:
    with pytest.raises(DataError, match="unsupported data format"):
        data_format(name)


def test_fingerprint_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x,y\n1,2\n")
    assert load_dataset(str(path)).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("separator", [";", "\t", "|"], ids=["semicolon", "tab", "pipe"])
def test_csv_separated_by_other_characters_is_read_with_its_separator(
    tmp_path: Path, separator: str
) -> None:
    frame = pd.DataFrame({"size m2": [50, 70, 90], "city": ["Lyon", "Nice", "Paris"]})
    frame["price"] = [1.5, 2.5, 3.5]
    path = tmp_path / "export.csv"
    frame.to_csv(path, sep=separator, index=False)
    loaded = load_dataset(str(path)).frame
    pd.testing.assert_frame_equal(loaded, frame)


def test_csv_whose_separator_cannot_be_told_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("a;b|c\n1\n2\n")
    with pytest.raises(DataError, match="separated by something other than commas"):
        load_dataset(str(path))
