"""Score a whole file (CSV, gzipped CSV or Parquet) with one model version, chunk by chunk.

The file-sized twin of ``POST /batch``: the same encoder, the same validation and the
same error codes, without an HTTP round trip per 10,000 records and with memory bounded
by the chunk size, never by the file size. Each chunk goes through two tiers, like
:mod:`lambda_inference.validation`:

* a vectorised pass over Arrow columns that encodes every value the way the model's
  :class:`~mlsys.contract.FeedEncoder` does and flags what it cannot vouch for (a value
  that is no number for a numeric feature, a number outside float32, a nested value);
* the exact path, ``/batch``'s own :class:`~lambda_inference.predictor.ServingModel`, run
  on each flagged row alone (and on each row whose prediction is not finite): it decides
  the row's error, so a row is refused here exactly when ``/batch`` refuses that record,
  with the same code and message, numbered as a file row (row 1 is the first data row).

What a file adds to JSON: a ``NaN`` number (Parquet) or a ``NaN``/``NA``/empty cell (CSV)
is a missing value, as ``null`` is in JSON; CSV cells are text, so a numeric feature's
cell is read as a number when it is one; columns the model does not use are ignored
(``keep`` copies them to the output).

On a refused row, ``fail`` stops with its error (nothing is written), ``skip`` leaves the
row out and ``null`` writes it with empty prediction columns; both count refusals by code.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lambda_inference.errors import MissingFeatureError, PredictionNotFiniteError
from lambda_inference.predictor import ServingModel
from lambda_inference.validation import FLOAT32_MAX
from mlsys.contract import MISSING_CATEGORY, FeatureSpec, categorical_value, output_names
from mlsys.errors import ConfigError, DataError, MlsysError
from mlsys.eventlog import Event
from mlsys.names import SCORE_PREFIX, SCORES_PREFIX
from mlsys.storage import local_copy, split_s3_uri, staged_output

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OnError = Literal["fail", "skip", "null"]
ON_ERROR_CHOICES: tuple[OnError, ...] = ("fail", "skip", "null")
FileFormat = Literal["csv", "parquet"]
FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
"""File name endings and their formats (``.csv.gz`` is compressed and decompressed on the fly)."""
PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
CHUNK_ROWS = 65_536
"""Rows per chunk: big enough that per-call overheads vanish, small enough that a chunk of
a wide file stays in the tens of megabytes."""
CSV_BLOCK_BYTES = 8 << 20
OUTPUT_ROW_GROUP_ROWS = 1 << 20
"""Output rows gathered before a write: Parquet row groups of about a million rows (the
output columns of that many rows take tens of megabytes)."""
MAX_LISTED_ROWS = 5
"""Refused rows described one by one in a result (the rest are counted by code)."""


def file_format(name: str) -> FileFormat:
    """The format a file name's ending names; :class:`ConfigError` for any other."""
    lowered = name.lower()
    for ending, kind in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
        if lowered.endswith(ending):
            return kind
    raise ConfigError(f"{name!r}: unsupported file type; use one of {', '.join(FORMATS)}")


def probability_column(label: Any) -> str:
    return f"{PROBABILITY_PREFIX}{categorical_value(label)}"


# --- the result -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RowError:
    """A refused row: its number in the file (1 = first data row) and ``/batch``'s error."""

    row: int
    error: MlsysError

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "code": self.error.code, "message": self.error.message}


@dataclass(kw_only=True)
class ScoringResult:
    """What one scoring run did; :meth:`to_dict` is ``mlsys predict --json``."""

    model_name: str
    model_version: str
    data: str
    out: str
    on_error: OnError
    rows_read: int = 0
    rows_written: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Refused rows by error code."""
    first_errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> int:
        return sum(self.errors.values())

    def refuse(self, error: RowError) -> None:
        self.errors[error.error.code] += 1
        if len(self.first_errors) < MAX_LISTED_ROWS:
            self.first_errors.append(error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "data": self.data,
            "out": self.out,
            "on_error": self.on_error,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "refused": self.refused,
            "errors": dict(sorted(self.errors.items())),
            "first_errors": [e.to_dict() for e in self.first_errors],
            "seconds": round(self.seconds, 3),
        }

    def event(self, *, failure: MlsysError | None = None) -> Event:
        """The ``scoring`` event this run leaves in the system log (a failed run too)."""
        data = {
            "status": "failed" if failure else "succeeded",
            **self.to_dict(),
        }
        if failure is not None:
            data["error"] = {"code": failure.code, "message": failure.message}
        return Event(type="scoring", model_version=self.model_version, data=data)


# --- reading --------------------------------------------------------------------------


class Source:
    """The columns of one input file, read in chunks of Arrow record batches."""

    def __init__(self, path: Path, kind: FileFormat, *, chunk_rows: int) -> None:
        self.path = path
        self.kind = kind
        self.chunk_rows = chunk_rows
        self.parse_options = pacsv.ParseOptions()
        self.names, self.schema = self._schema()
        duplicated = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicated:
            raise DataError(f"the file repeats the column(s) {', '.join(map(repr, duplicated))}")

    def _schema(self) -> tuple[list[str], pa.Schema]:
        try:
            if self.kind == "parquet":
                schema = pq.ParquetFile(self.path).schema_arrow
                return list(schema.names), schema
            self.parse_options = pacsv.ParseOptions(delimiter=_delimiter(self.path))
            with pacsv.open_csv(
                self.path, read_options=self._read_options(), parse_options=self.parse_options
            ) as reader:
                names = list(reader.schema.names)
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(self.kind, exc) from None
        # CSV cells are text until a feature's kind says otherwise.
        return names, pa.schema([(name, pa.string()) for name in names])

    def _read_options(self) -> pacsv.ReadOptions:
        return pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)

    def batches(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        try:
            if self.kind == "parquet":
                # pre_buffer keeps every row group's buffers until the file is closed:
                # memory would grow with the file (by ~120 MB per million rows of 20 columns).
                parquet = pq.ParquetFile(self.path, pre_buffer=False)
                yield from parquet.iter_batches(batch_size=self.chunk_rows, columns=columns)
                return
            convert = pacsv.ConvertOptions(
                include_columns=columns,
                column_types={name: pa.string() for name in columns},
                strings_can_be_null=True,
            )
            with pacsv.open_csv(
                self.path,
                read_options=self._read_options(),
                parse_options=self.parse_options,
                convert_options=convert,
            ) as reader:
                for block in reader:  # blocks are sized in bytes; chunks in rows
                    for start in range(0, block.num_rows, self.chunk_rows):
                        yield block.slice(start, self.chunk_rows)
        except (pa.ArrowException, OSError) as exc:  # a parse error, a corrupt gzip stream
            raise _unreadable(self.kind, exc) from None


OTHER_DELIMITERS = ";\t|"
"""Field separators recognised besides the comma, as training recognises them (European
spreadsheets export ``;``)."""


def _delimiter(path: Path) -> str:
    """``,`` unless the header line has no comma but one of :data:`OTHER_DELIMITERS`."""
    with pa.input_stream(str(path), compression="detect") as stream:
        header = stream.read(64 * 1024).split(b"\n", 1)[0].decode("utf-8", errors="replace")
    if "," in header:
        return ","
    found = [d for d in OTHER_DELIMITERS if d in header]
    return found[0] if len(found) == 1 else ","


def _unreadable(kind: FileFormat, exc: Exception) -> DataError:
    reason = " ".join(str(exc).split())  # Arrow's messages may span lines; errors are one
    return DataError(f"cannot read the input as {kind}: {reason}")


# --- encoding one chunk -----------------------------------------------------------------


@dataclass
class _Chunk:
    """One chunk's model inputs, encoded, the rows the vectorised pass could not vouch for,
    and the raw columns the exact path re-reads for those rows."""

    first_row: int
    batch: pa.RecordBatch
    numeric: npt.NDArray[np.float32]
    """``[rows, numeric features]`` in schema order."""
    categorical: npt.NDArray[np.object_]
    """``[rows, categorical features]`` of :func:`~mlsys.contract.categorical_value` strings."""
    flagged: npt.NDArray[np.bool_]

    @property
    def rows(self) -> int:
        return int(self.batch.num_rows)


def _present(column: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _as_numbers(column: pa.Array) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A numeric feature's values (missing = NaN) and the rows that hold no usable number."""
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = np.asarray(
            pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = _parse_numbers(column)
    elif pa.types.is_null(kind):
        return np.full(len(column), np.nan), np.zeros(len(column), dtype=bool)
    else:  # booleans, dates, nested values: /batch refuses them for a numeric feature
        return np.full(len(column), np.nan), _present(column)
    with np.errstate(invalid="ignore"):
        flagged = np.abs(values) > FLOAT32_MAX  # infinities too; NaN compares False
    unparsed = np.isnan(values) & _present(column)
    if pa.types.is_floating(kind):
        # A NaN number is a missing value, as null is in JSON.
        unparsed &= ~np.asarray(pc.is_nan(column).fill_null(False).to_numpy(zero_copy_only=False))
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        unparsed &= ~_nan_text(column)
    return values, flagged | unparsed


def _nan_text(column: pa.Array) -> npt.NDArray[np.bool_]:
    """Cells whose text is a NaN spelling the CSV reader did not already read as empty."""
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(column))
    spelled = pc.is_in(lowered, value_set=pa.array(["nan", "+nan", "-nan"]))
    return np.asarray(spelled.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _parse_numbers(column: pa.Array) -> npt.NDArray[np.float64]:
    """Text cells as numbers: Arrow's parser for the whole chunk; Python's, cell by cell,
    only when Arrow refuses one (a cell that is no number becomes NaN, flagged by the
    caller)."""
    try:
        return np.asarray(
            pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed = np.full(len(column), np.nan)
    for index, text in enumerate(column.to_pylist()):
        number = _number_or_none(text)
        if number is not None:
            parsed[index] = number
    return parsed


def _number_or_none(text: Any) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


_CATEGORY_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_boolean,
    pa.types.is_dictionary,
    pa.types.is_null,
)


def _as_categories(column: pa.Array) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """A categorical feature's values encoded as training saw them: through the one
    :func:`~mlsys.contract.categorical_value`, once per distinct value of the chunk."""
    if not any(check(column.type) for check in _CATEGORY_TYPES):
        # Nested values, dates, bytes: /batch refuses them as a category.
        return np.full(len(column), MISSING_CATEGORY, dtype=object), _present(column)
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    dictionary = encoded.dictionary.to_pylist()
    lookup = np.array([*map(categorical_value, dictionary), MISSING_CATEGORY], dtype=object)
    indices = encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)
    return lookup[indices], np.zeros(len(column), dtype=bool)


def encode_chunk(
    batch: pa.RecordBatch, features: Sequence[FeatureSpec], *, first_row: int
) -> _Chunk:
    """Encode one batch for the model, flagging the rows the exact path must judge."""
    rows = batch.num_rows
    numeric_specs = [spec for spec in features if spec.kind == "numeric"]
    categorical_specs = [spec for spec in features if spec.kind == "categorical"]
    numeric = np.empty((rows, len(numeric_specs)), dtype=np.float32)
    categorical = np.empty((rows, len(categorical_specs)), dtype=object)
    flagged = np.zeros(rows, dtype=bool)
    for position, spec in enumerate(numeric_specs):
        values, bad = _as_numbers(batch.column(spec.name))
        numeric[:, position] = np.where(bad, np.nan, values)
        flagged |= bad
    for position, spec in enumerate(categorical_specs):
        codes, bad = _as_categories(batch.column(spec.name))
        categorical[:, position] = codes
        flagged |= bad
    return _Chunk(first_row, batch, numeric, categorical, flagged)


# --- scoring ------------------------------------------------------------------------------


def _renumbered(error: MlsysError, row: int) -> MlsysError:
    """``/batch``'s error for a one-record request, told as row ``row`` of the file."""
    message = error.message.removeprefix("record 0: ")
    details = dict(error.details) if isinstance(error.details, dict) else {}
    details.pop("record", None)
    return type(error)(f"row {row}: {message}", details={"row": row, **details})


class FileScorer:
    """Scores input files with one loaded model version (build once, score many)."""

    def __init__(
        self,
        model: ServingModel,
        *,
        keep: Sequence[str] = (),
        on_error: OnError = "fail",
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}")
        self.model = model
        self.card = model.card
        self.keep = list(dict.fromkeys(keep))
        self.on_error = on_error
        self.chunk_rows = chunk_rows
        self._outputs = output_names(self.card)
        classes = self.card.classes if self.card.is_classifier else None
        self._classes = pa.array(list(classes)) if classes is not None else None
        self.produced = [PREDICTION_COLUMN]
        if classes is not None:
            self.produced += [probability_column(label) for label in classes]
        clash = [name for name in self.keep if name in self.produced]
        if clash:
            raise ConfigError(
                f"--keep {clash[0]!r}: the output already has a column of that name "
                f"({', '.join(self.produced)})"
            )

    # --- columns --------------------------------------------------------------------------
    def columns_to_read(self, source: Source) -> list[str]:
        """The columns to read; refuses a file missing a feature, as ``/batch`` refuses a
        record without one (whatever ``on_error``: every row would be refused)."""
        present = set(source.names)
        for spec in self.card.features:
            if spec.name not in present:
                raise MissingFeatureError(
                    f"the file has no column {spec.name!r}, a feature of the model (its "
                    f"features are {', '.join(f.name for f in self.card.features)})",
                    details={"feature": spec.name},
                )
        missing = [name for name in self.keep if name not in present]
        if missing:
            raise ConfigError(f"--keep {missing[0]!r}: the file has no such column")
        wanted = {*self.keep, *(f.name for f in self.card.features)}
        return [name for name in source.names if name in wanted]

    def output_schema(self, source: Source) -> pa.Schema:
        self.columns_to_read(source)  # refuses a missing feature or --keep column first
        kept = [source.schema.field(name) for name in self.keep]
        return pa.schema(kept + list(zip(self.produced, self._produced_types(), strict=True)))

    def _produced_types(self) -> list[pa.DataType]:
        if self._classes is None:
            return [pa.float64()]
        return [self._classes.type] + [pa.float64()] * (len(self.produced) - 1)

    # --- refused rows -----------------------------------------------------------------------
    def _record(self, chunk: _Chunk, index: int) -> dict[str, Any]:
        """Row ``index`` of a chunk as the JSON record ``/batch`` would receive."""
        record: dict[str, Any] = {}
        for spec in self.card.features:
            value = chunk.batch.column(spec.name)[index].as_py()
            if isinstance(value, Decimal):
                value = float(value)
            elif spec.kind == "numeric" and isinstance(value, str):
                number = _number_or_none(value)
                value = value if number is None else number
            if isinstance(value, float) and math.isnan(value):
                value = None  # a missing value, as in the vectorised pass
            record[spec.name] = value
        return record

    def _verdict(self, chunk: _Chunk, index: int) -> RowError:
        """``/batch``'s verdict on one row the vectorised pass could not vouch for."""
        row = chunk.first_row + index
        try:
            self.model.predict([self._record(chunk, index)])
        except MlsysError as exc:
            return RowError(row=row, error=_renumbered(exc, row))
        # Accepted alone though not in its chunk: the model's output for it was not finite.
        error = PredictionNotFiniteError(
            f"row {row}: the model produced no finite prediction", details={"row": row}
        )
        return RowError(row=row, error=error)

    def _refuse(self, chunk: _Chunk, rows: npt.NDArray[np.bool_], result: ScoringResult) -> None:
        for index in np.flatnonzero(rows).tolist():
            verdict = self._verdict(chunk, index)
            if self.on_error == "fail":
                raise verdict.error
            result.refuse(verdict)

    # --- the model ------------------------------------------------------------------------
    def _predict(self, chunk: _Chunk, usable: npt.NDArray[np.bool_]) -> list[pa.Array]:
        """One output column per produced column for the usable rows (null where the
        model's output is not finite)."""
        every = bool(usable.all())
        numeric = chunk.numeric if every else chunk.numeric[usable]
        categorical = chunk.categorical if every else chunk.categorical[usable]
        feeds = self.model.model.encoder.from_encoded(numeric, categorical)
        outputs = self.model.model.session.run(self._outputs, feeds)
        if self._classes is None:
            values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
            return [pa.array(values, mask=~np.isfinite(values))]
        probabilities = np.asarray(outputs[1], dtype=np.float32).astype(np.float64)
        broken = ~np.isfinite(probabilities).all(axis=1)
        indices = np.asarray(outputs[0]).reshape(-1).astype(np.int64)
        labels = self._classes.take(pa.array(indices, mask=broken))
        return [labels, *(pa.array(column, mask=broken) for column in probabilities.T)]

    def score_chunk(self, chunk: _Chunk, result: ScoringResult) -> pa.RecordBatch:
        """The chunk's output rows; refused rows are raised, skipped or written empty."""
        self._refuse(chunk, chunk.flagged, result)
        usable = ~chunk.flagged
        produced: list[pa.Array] = []
        if usable.any():
            produced = self._predict(chunk, usable)
            not_finite = np.zeros(chunk.rows, dtype=bool)
            not_finite[usable] = np.asarray(produced[0].is_null().to_numpy(zero_copy_only=False))
            self._refuse(chunk, not_finite, result)
            usable &= ~not_finite
        return self._output(chunk, produced, usable=usable)

    def _output(
        self, chunk: _Chunk, produced: list[pa.Array], *, usable: npt.NDArray[np.bool_]
    ) -> pa.RecordBatch:
        """Kept columns, then the produced ones (null in a refused row that is kept)."""
        rows = usable if self.on_error == "skip" else np.ones(chunk.rows, dtype=bool)
        count = int(rows.sum())
        if produced:
            # Where each output row's prediction sits among the model's rows (null: none).
            position = np.full(chunk.rows, -1, dtype=np.int64)
            position[~chunk.flagged] = np.arange(int((~chunk.flagged).sum()))
            wanted = position[rows]
            take = pa.array(wanted, mask=wanted < 0)
            columns = [column.take(take) for column in produced]
        else:
            columns = [pa.nulls(count, type=kind) for kind in self._produced_types()]
        selected = pa.array(rows)
        kept = [chunk.batch.column(name).filter(selected) for name in self.keep]
        return pa.RecordBatch.from_arrays([*kept, *columns], names=[*self.keep, *self.produced])

    # --- a whole file ----------------------------------------------------------------------
    def score(
        self, source: Source, write: Callable[[pa.RecordBatch], None], result: ScoringResult
    ) -> None:
        """Score every chunk of ``source`` into ``write``, counting into ``result``."""
        columns = self.columns_to_read(source)
        for batch in source.batches(columns):
            chunk = encode_chunk(batch, self.card.features, first_row=result.rows_read + 1)
            result.rows_read += batch.num_rows
            output = self.score_chunk(chunk, result)
            if output.num_rows:
                write(output)
                result.rows_written += output.num_rows


# --- files by URI -----------------------------------------------------------------------


class OutputError(MlsysError):
    """The output file could not be written (a full disk, a vanished folder): exit 1."""

    code = "output_error"


class _Sink:
    """The output file: Parquet or (gzipped) CSV, written chunk by chunk."""

    def __init__(self, path: Path, kind: FileFormat, schema: pa.Schema, *, gzip: bool) -> None:
        self.path = path
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._stack = ExitStack()
        self.writer: Any
        with self._failing("open"):
            if kind == "parquet":
                self.writer = self._stack.enter_context(pq.ParquetWriter(path, schema))
            else:
                stream = (
                    pa.CompressedOutputStream(str(path), "gzip")
                    if gzip
                    else pa.OSFile(str(path), "wb")
                )
                self._stack.enter_context(stream)
                self.writer = self._stack.enter_context(pacsv.CSVWriter(stream, schema))

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        try:
            yield
        except (pa.ArrowException, OSError) as exc:
            raise OutputError(f"cannot {action} the output file: {exc}") from None

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= OUTPUT_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Chunks are gathered into Parquet row groups of about a million rows (each write
        is a row group; 65,536-row groups make slow files for their readers)."""
        if self._pending:
            with self._failing("write"):
                self.writer.write_table(pa.Table.from_batches(self._pending))
        self._pending, self._pending_rows = [], 0

    def close(self, *, complete: bool = True) -> None:
        if complete:
            self._flush()
        with self._failing("finish"):
            self._stack.close()


def score_file(
    scorer: FileScorer,
    *,
    data: str,
    out: str,
    s3_client: S3Client | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_result: Callable[[ScoringResult, MlsysError | None], None] | None = None,
) -> ScoringResult:
    """Score the file ``data`` names into ``out`` (paths or ``s3://`` URIs). ``out`` appears
    only when every row was scored (or skipped/nulled, as ``on_error`` says); on any error
    it is left as it was. ``on_result`` sees the result, with the error of a failed run."""
    started = clock()
    result = ScoringResult(
        model_name=scorer.card.model_name,
        model_version=scorer.card.version,
        data=data,
        out=out,
        on_error=scorer.on_error,
    )
    try:
        in_kind, out_kind = file_format(data), file_format(out)
        with (
            local_copy(data, s3_client=s3_client) as path,
            staged_output(out, s3_client=s3_client) as target,
        ):
            source = Source(path, in_kind, chunk_rows=scorer.chunk_rows)
            sink = _Sink(
                target, out_kind, scorer.output_schema(source), gzip=out.lower().endswith(".gz")
            )
            try:
                scorer.score(source, sink.write, result)
            except BaseException:
                sink.close(complete=False)  # the staged file is dropped anyway
                raise
            sink.close()
    except MlsysError as exc:
        result.seconds = clock() - started
        if on_result is not None:
            on_result(result, exc)
        raise
    result.seconds = clock() - started
    if on_result is not None:
        on_result(result, None)
    return result


def scores_uri_for(data: str) -> str | None:
    """Where an object uploaded under ``score/`` is scored to: ``s3://b/score/x/y.csv`` ->
    ``s3://b/scores/x/y.csv.parquet`` (``None`` for anything not under ``score/``)."""
    location = split_s3_uri(data)
    if location is None or not location[1].startswith(SCORE_PREFIX):
        return None
    bucket, key = location
    return f"s3://{bucket}/{SCORES_PREFIX}{key.removeprefix(SCORE_PREFIX)}.parquet"
