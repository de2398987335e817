"""``mlsys predict``: a whole file scored as ``/batch`` scores its records, chunk by chunk."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lambda_inference.handler import Api
from lambda_inference.predictor import ServingModel
from lambda_inference.scoring import FileScorer, Source, score_file, scores_uri_for
from lambda_inference.service import InferenceService
from mlsys.contract import LoadedModel
from mlsys.eventlog import open_event_log
from mlsys.registry import ModelRegistry
from mlsys.settings import Settings
from tests.inference_support import (
    BuiltModel,
    api_event,
    body_of,
    build_classifier,
    build_regression,
    publish,
)
from tests.training_support import run_main


@pytest.fixture(scope="module")
def classifier() -> BuiltModel:
    return build_classifier(version="20260101T000000Z-cccccc")


@pytest.fixture(scope="module")
def regression() -> BuiltModel:
    return build_regression(version="20260101T000000Z-rrrrrr")


class Workspace:
    """A registry with one champion, its system log, and /batch served from both."""

    def __init__(self, root: Path, built: BuiltModel) -> None:
        self.root = root
        self.registry = root / "registry"
        self.log = root / "log.sqlite3"
        publish(ModelRegistry.open(str(self.registry), model_name="default"), built)
        settings = Settings(
            registry_uri=str(self.registry), log_uri=f"sqlite:///{self.log}", log_delivery="sync"
        )
        self.api = Api(InferenceService.from_settings(settings, emit_metrics=False))

    def batch(self, records: list[Any]) -> dict[str, Any]:
        event = api_event("POST", "/batch", body={"data": records})
        response = self.api.handle_predict(event)
        return {"status": response["statusCode"], **body_of(response)}

    def predict(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        argv = ["predict", "--registry", str(self.registry), "--log", f"sqlite:///{self.log}"]
        code = run_main([*argv, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def scoring_events(self) -> list[dict[str, Any]]:
        page = open_event_log(f"sqlite:///{self.log}").query(limit=100, event_type="scoring")
        return [event.to_dict() for event in page.events]


def records_of(built: BuiltModel) -> list[dict[str, Any]]:
    frame = built.frame.astype(object)
    return frame.where(frame.notna(), None).to_dict("records")  # type: ignore[no-any-return]


def write(records: list[dict[str, Any]], path: Path) -> Path:
    frame = pd.DataFrame(records)
    if path.name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)


CLASSIFIER_EXTRAS = [
    {"age": None, "colour": "purple", "income": 51.0},  # unknown category, missing number
    {"age": 30.0, "colour": None, "income": 1e30},
]


@pytest.mark.parametrize(
    ("source", "target"),
    [("in.parquet", "out.parquet"), ("in.csv.gz", "out.csv"), ("in.csv", "out.csv.gz")],
)
def test_a_classifiers_file_scores_equal_batch_for_the_same_records(
    tmp_path: Path,
    classifier: BuiltModel,
    capsys: pytest.CaptureFixture[str],
    source: str,
    target: str,
) -> None:
    space = Workspace(tmp_path, classifier)
    records = records_of(classifier) + CLASSIFIER_EXTRAS
    expected = space.batch(records)
    assert expected["status"] == 200
    frame = pd.DataFrame([{"id": i, **r} for i, r in enumerate(records)])
    path = tmp_path / source
    if source.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, compression="gzip" if source.endswith(".gz") else None)

    code, out, err = space.predict(
        capsys, "--data", str(path), "--out", str(tmp_path / target), "--keep", "id", "--json"
    )

    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["model_version"] == expected["model_version"]
    assert (summary["rows_read"], summary["rows_written"], summary["refused"]) == (302, 302, 0)
    written = (
        pd.read_parquet(tmp_path / target)
        if target.endswith(".parquet")
        else pd.read_csv(tmp_path / target)
    )
    assert list(written.columns) == [
        "id",
        "prediction",
        "probability_no",
        "probability_yes",
        "probability_maybe",
    ]
    assert written["id"].tolist() == list(range(302))
    assert written["prediction"].tolist() == expected["result"]
    for label in ("no", "yes", "maybe"):
        assert written[f"probability_{label}"].tolist() == [
            p[label] for p in expected["probabilities"]
        ]


@pytest.mark.parametrize("layout", ["tensor", "per_feature"])
def test_a_regression_files_scores_equal_batch_in_either_input_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: Any
) -> None:
    built = build_regression(version="20260101T000000Z-llllll", layout=layout)
    space = Workspace(tmp_path, built)
    records = records_of(built)
    records[3] = {**records[3], "age": None}
    write(records, tmp_path / "in.parquet")

    code, out, _ = space.predict(
        capsys, "--data", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "out.parquet")
    )

    assert code == 0
    assert out.startswith(f"scored 442 row(s) of {tmp_path / 'in.parquet'} with default version ")
    assert read(tmp_path / "out.parquet")["prediction"].tolist() == space.batch(records)["result"]


def test_an_old_per_feature_classifier_scores_equal_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = build_classifier(version="20260101T000000Z-pppppp", layout="per_feature")
    space = Workspace(tmp_path, built)
    records = records_of(built) + CLASSIFIER_EXTRAS
    write(records, tmp_path / "in.parquet")

    code, _, _ = space.predict(
        capsys, "--data", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "o.parquet")
    )

    assert code == 0
    expected = space.batch(records)
    written = read(tmp_path / "o.parquet")
    assert written["prediction"].tolist() == expected["result"]
    assert written["probability_yes"].tolist() == [p["yes"] for p in expected["probabilities"]]


# --- rows /batch refuses --------------------------------------------------------------


def test_a_refused_row_fails_the_run_with_its_row_number_and_batchs_error(
    tmp_path: Path, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    space = Workspace(tmp_path, classifier)
    records = records_of(classifier)[:10]
    records[6] = {**records[6], "income": "lots"}
    batch_error = space.batch(records)["error"]
    path = write(records, tmp_path / "in.csv")
    out = tmp_path / "out.parquet"

    code, stdout, err = space.predict(capsys, "--data", str(path), "--out", str(out))

    assert (code, stdout) == (2, "")
    assert batch_error["message"].startswith("record 6: ")
    assert (
        err == f"mlsys predict: error: row 7: {batch_error['message'].removeprefix('record 6: ')}\n"
    )
    assert batch_error["code"] == "invalid_type"
    assert not out.exists()
    assert list(tmp_path.glob(".out*")) == []  # no partial file left behind either
    (event,) = space.scoring_events()
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"]["code"] == "invalid_type"


def test_skip_and_null_keep_going_and_count_refusals_by_code(
    tmp_path: Path, regression: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    space = Workspace(tmp_path, regression)
    records = records_of(regression)[:6]
    columns = list(records[0])
    records[1] = {**records[1], columns[0]: "n/a?"}  # text in a numeric column
    records[3] = {**records[3], columns[2]: 1e39}  # outside float32
    records[4] = dict.fromkeys(columns, 3e38)  # valid, but the model's output overflows
    frame = pd.DataFrame([{"id": i, **r} for i, r in enumerate(records)])
    frame.to_csv(tmp_path / "in.csv", index=False)
    codes = [space.batch([r]).get("error", {}).get("code") for r in records]
    assert codes == [None, "invalid_type", None, "invalid_number", "prediction_not_finite", None]

    results = {}
    for mode in ("skip", "null"):
        out = tmp_path / f"{mode}.parquet"
        code, stdout, _ = space.predict(
            capsys, "--data", str(tmp_path / "in.csv"), "--out", str(out),
            "--keep", "id", "--on-error", mode, "--json",
        )  # fmt: skip
        assert code == 0
        results[mode] = (json.loads(stdout), read(out))

    summary, written = results["skip"]
    assert summary["errors"] == {"invalid_number": 1, "invalid_type": 1, "prediction_not_finite": 1}
    assert [e["row"] for e in summary["first_errors"]] == [2, 4, 5]
    assert (summary["rows_read"], summary["rows_written"]) == (6, 3)
    assert written["id"].tolist() == ["0", "2", "5"]  # CSV cells are copied as text
    good = space.batch([records[i] for i in (0, 2, 5)])["result"]
    assert written["prediction"].tolist() == good
    summary, written = results["null"]
    assert (summary["rows_written"], summary["refused"]) == (6, 3)
    assert written["id"].tolist() == [str(i) for i in range(6)]
    predictions = written["prediction"].tolist()
    assert [predictions[i] for i in (0, 2, 5)] == good
    assert all(pd.isna(predictions[i]) for i in (1, 3, 4))
    assert [e["data"]["refused"] for e in space.scoring_events()] == [3, 3]


def test_row_numbers_run_across_chunks(tmp_path: Path, regression: BuiltModel) -> None:
    records = records_of(regression)
    first = next(iter(records[0]))
    for row in (19, 300):  # 0-based: rows 20 and 301 of the file
        records[row] = {**records[row], first: "high"}
    write(records, tmp_path / "in.csv")
    loaded = LoadedModel(regression.card, regression.model_bytes)
    scorer = FileScorer(ServingModel.from_loaded(loaded, etag=None), on_error="skip", chunk_rows=7)

    result = score_file(scorer, data=str(tmp_path / "in.csv"), out=str(tmp_path / "o.csv"))

    assert [(e.row, e.error.code) for e in result.first_errors] == [
        (20, "invalid_type"),
        (301, "invalid_type"),
    ]
    assert result.first_errors[0].error.message == (
        f"row 20: feature {first!r} is numeric; got string 'high'"
    )
    assert (result.rows_read, result.rows_written) == (442, 440)


# --- bad input: one line, exit 2 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "o.json"], "'o.json': unsupported file type; use one of .csv, .csv.gz"),
        (["--keep", "nope", "--out", "o.csv"], "--keep 'nope': the file has no such column"),
        (["--keep", "prediction", "--out", "o.csv"], "--keep 'prediction': the output already"),
        (["--version", "20990101T000000Z-000000", "--out", "o.csv"], "has no version"),
        (["--on-error", "ignore", "--out", "o.csv"], "argument --on-error: invalid choice"),
        ([], "--out is required"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_2(
    tmp_path: Path,
    regression: BuiltModel,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    space = Workspace(tmp_path, regression)
    write(records_of(regression)[:3], tmp_path / "in.parquet")
    monkeypatch.chdir(tmp_path)

    code, out, err = space.predict(capsys, "--data", "in.parquet", *args)

    assert (code, out) == (2, "")
    assert message in err
    assert err.count("\n") == 1


def test_a_file_without_a_feature_column_or_no_file_at_all_is_refused(
    tmp_path: Path, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    space = Workspace(tmp_path, classifier)
    pd.DataFrame({"age": [1.0], "income": [2.0]}).to_csv(tmp_path / "in.csv", index=False)
    out = str(tmp_path / "o.csv")

    code, _, err = space.predict(capsys, "--data", str(tmp_path / "in.csv"), "--out", out)
    assert code == 2
    assert err.startswith("mlsys predict: error: the file has no column 'colour', a feature")

    code, _, err = space.predict(capsys, "--data", str(tmp_path / "gone.csv"), "--out", out)
    assert code == 2
    assert err == f"mlsys predict: error: {tmp_path / 'gone.csv'}: no such file\n"


def test_an_empty_file_writes_an_empty_output_with_the_columns(
    tmp_path: Path, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    space = Workspace(tmp_path, classifier)
    (tmp_path / "in.csv").write_text("age,colour,income\n")

    code, _, _ = space.predict(
        capsys, "--data", str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.csv.gz")
    )

    assert code == 0
    with gzip.open(tmp_path / "o.csv.gz", "rt") as handle:
        header = handle.read()
    assert header == '"prediction","probability_no","probability_yes","probability_maybe"\n'


def test_parquet_types_are_read_as_batch_reads_json(
    tmp_path: Path, classifier: BuiltModel, capsys: pytest.CaptureFixture[str]
) -> None:
    """Integers for a number, NaN as a missing value, a dictionary column for a category."""
    space = Workspace(tmp_path, classifier)
    table = pa.table(
        {
            "age": pa.array([41, None, 25], type=pa.int32()),
            "colour": pa.array(["red", None, "blue"]).dictionary_encode(),
            "income": pa.array([float("nan"), 20.5, 80.0]),
        }
    )
    pq.write_table(table, tmp_path / "in.parquet")
    expected = space.batch(
        [
            {"age": 41, "colour": "red", "income": None},
            {"age": None, "colour": None, "income": 20.5},
            {"age": 25, "colour": "blue", "income": 80.0},
        ]
    )

    code, _, _ = space.predict(
        capsys, "--data", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "o.parquet")
    )

    assert code == 0
    assert read(tmp_path / "o.parquet")["prediction"].tolist() == expected["result"]


def test_the_upload_convention_names_the_output() -> None:
    assert scores_uri_for("s3://b/score/2026/jan.csv") == "s3://b/scores/2026/jan.csv.parquet"
    assert scores_uri_for("s3://b/data/jan.csv") is None
    assert scores_uri_for("score/jan.csv") is None


def test_reading_a_parquet_file_holds_one_row_group_at_a_time(tmp_path: Path) -> None:
    """Memory is bounded by the chunk, not the file: Arrow holds about one row group of the
    sixteen at any time (pyarrow's pre-buffering held them all)."""
    path = tmp_path / "wide.parquet"
    rows = 20_000
    table = pa.table({f"n{i}": pa.array(range(i, i + rows), type=pa.float64()) for i in range(20)})
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(16):
            writer.write_table(table)
    names = list(table.column_names)
    del table
    source = Source(path, "parquet", chunk_rows=4096)
    live = []
    for batch in source.batches(names):
        live.append(pa.total_allocated_bytes())
        del batch
    assert len(live) == -(-16 * rows // 4096)  # chunks of 4,096 rows
    row_group = rows * 20 * 8
    assert max(live) < 6 * row_group  # a row group and its decoding buffers, not the file


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_csv_separated_by_semicolons_tabs_or_bars_is_read_as_training_reads_it(
    tmp_path: Path, classifier: BuiltModel, capsys: pytest.CaptureFixture[str], separator: str
) -> None:
    space = Workspace(tmp_path, classifier)
    records = records_of(classifier)[:20]
    pd.DataFrame(records).to_csv(tmp_path / "in.csv.gz", sep=separator, index=False)

    code, _, err = space.predict(
        capsys, "--data", str(tmp_path / "in.csv.gz"), "--out", str(tmp_path / "o.csv")
    )

    assert (code, err) == (0, "")
    assert read(tmp_path / "o.csv")["prediction"].tolist() == space.batch(records)["result"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("in.parquet", b"id,age\n1,2\n"), ("in.csv.gz", b"not gzip at all"), ("in.csv", b"")],
)
def test_an_unreadable_file_is_a_one_line_error(
    tmp_path: Path,
    regression: BuiltModel,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
) -> None:
    space = Workspace(tmp_path, regression)
    (tmp_path / name).write_bytes(content)

    code, _, err = space.predict(
        capsys, "--data", str(tmp_path / name), "--out", str(tmp_path / "o.csv")
    )

    assert code == 2
    assert err.startswith("mlsys predict: error: cannot read the input as ")
    assert err.count("\n") == 1
    assert not (tmp_path / "o.csv").exists()
