"""Loading training data: formats, the bundled default and 'newest file' directories."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsys.errors import DataError
from training_job import data
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
    # Numeric features are stored as float32 (the model's input type); the target is kept.
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert loaded["price"].dtype == np.float64


def test_csv_whose_separator_cannot_be_told_is_named(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("a;b|c\n1\n2\n")
    with pytest.raises(DataError, match="separated by something other than commas"):
        load_dataset(str(path))


def _table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 1000, size=rows),
            "x": rng.normal(size=rows),
            "city": rng.choice(["Lyon", "Nice", "Paris"], size=rows),
            "y": rng.normal(size=rows) * 1e6 + 0.123456789,
        }
    )
    frame.loc[frame.index % 7 == 0, "x"] = np.nan
    frame.loc[frame.index % 11 == 0, "city"] = None
    return frame


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz", "d.parquet"])
def test_chunked_reading_returns_every_row_compactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Small chunks and samples, so a 2,500-row file is read in 5 chunks.
    monkeypatch.setattr(data, "CHUNK_ROWS", 500)
    monkeypatch.setattr(data, "SAMPLE_ROWS", 100)
    frame = _table(2_500)
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, row_group_size=700)
    else:
        frame.to_csv(path, index=False)
    loaded = load_dataset(str(path), target="y").frame
    assert list(loaded.columns) == ["count", "x", "city", "y"]
    assert loaded.index.equals(pd.RangeIndex(2_500))
    assert (loaded["count"].dtype, loaded["x"].dtype) == (np.float32, np.float32)
    np.testing.assert_array_equal(loaded["count"], frame["count"])
    np.testing.assert_array_equal(loaded["x"], frame["x"].astype(np.float32))
    assert loaded["city"].isna().tolist() == frame["city"].isna().tolist()
    assert loaded["city"].dropna().tolist() == frame["city"].dropna().tolist()
    # The target keeps full precision (float32 would round it to ~7 digits).
    assert loaded["y"].dtype == np.float64
    np.testing.assert_allclose(loaded["y"], frame["y"], rtol=1e-12)


def test_csv_with_text_after_the_sample_is_read_as_pandas_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK_ROWS", 50)
    monkeypatch.setattr(data, "SAMPLE_ROWS", 20)
    values = [str(i) for i in range(200)]
    values[150] = "n/a?"
    path = tmp_path / "d.csv"
    pd.DataFrame({"code": values, "y": range(200)}).to_csv(path, index=False)
    loaded = load_dataset(str(path)).frame
    # Numeric in the first 20 rows, text later: the column is text, as in a whole-file read.
    assert loaded["code"].tolist()[149:151] == ["149", "n/a?"]
    assert len(loaded) == 200


def test_a_saved_parquet_index_is_not_a_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [3, 4]}, index=[10, 20])
    frame.to_parquet(tmp_path / "d.parquet")
    assert list(load_dataset(str(tmp_path / "d.parquet")).frame.columns) == ["x", "y"]
