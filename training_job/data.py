"""Loading training data: CSV or Parquet, from a local path or S3, or the bundled default.

Files are read in chunks of :data:`CHUNK_ROWS` rows and each chunk is made compact at
once: numeric feature columns become float32 (the ONNX input type, so no information the
model could use is lost), while the target column keeps its precision. The raw file is
never held in memory whole (an ``s3://`` object is streamed to a temporary file first),
so reading needs about twice the compact frame (the chunks, then their concatenation).
CSV dtypes are inferred once, from the first :data:`SAMPLE_ROWS` rows; if a later row
contradicts them (text in a column that looked numeric) the file is re-read whole, with
pandas' own inference, so the result never depends on where the chunks fell.

Every failure a user can cause (missing file, unreadable format, empty data)
raises :class:`~mlsys.errors.DataError` before anything is written anywhere.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from mlsys.errors import DataError
from training_job.data_checks import reject_duplicate_columns

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_SOURCE = "sklearn:diabetes"
DEFAULT_TARGET = "progression"
"""Target column of the bundled data set (the disease progression one year after baseline)."""

CHUNK_ROWS = 500_000
"""Rows per chunk when reading a file (a chunk of 20 float64 columns is 80 MB)."""
SAMPLE_ROWS = 10_000
"""Rows a CSV's column types are inferred from."""
MAX_LINE_BYTES = 1024 * 1024
"""The longest line (row) a CSV may have: 1 MiB. Checked in one streaming pass before
pandas sees the file: its parser buffers a whole line, so a 2 GB file without a newline
took 14.5 GB of memory before failing."""
HASH_BLOCK_BYTES = 1024 * 1024

_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True, kw_only=True)
class Dataset:
    frame: pd.DataFrame
    source: str
    """Where the rows came from: a path, the ``s3://`` object actually read, or the default."""
    sha256: str
    """Of the bytes read (for the default data set: of its canonical CSV rendering)."""
    default_target: str | None = None
    """The target column to use when none is given, if the source defines one."""


def data_format(name: str) -> str:
    """``csv`` or ``parquet`` from a file name; :class:`DataError` for anything else."""
    lowered = name.lower()
    for suffix, kind in _FORMATS.items():
        if lowered.endswith(suffix):
            return kind
    supported = ", ".join(_FORMATS)
    raise DataError(f"unsupported data format for {name!r}: use one of {supported}")


OTHER_DELIMITERS = ";\t|"
"""Field separators recognised besides the comma (European spreadsheets export ``;``)."""
SNIFF_BYTES = 64 * 1024


def csv_delimiter(frame: pd.DataFrame, sample: str) -> str | None:
    """The separator to re-read a CSV with, when a comma-parse gave one column whose header
    contains ``;``, tab or ``|`` (``None``: the comma was right).

    :class:`csv.Sniffer` decides on a sample of the file; if it cannot, the separator
    that splits the header is used, which is unambiguous when only one of them occurs.
    """
    if frame.shape[1] != 1:
        return None
    header = str(frame.columns[0])
    present = [d for d in OTHER_DELIMITERS if d in header]
    if not present:
        return None
    try:
        return csv.Sniffer().sniff(sample, delimiters=OTHER_DELIMITERS).delimiter
    except csv.Error:
        return present[0] if len(present) == 1 else None


def compact(frame: pd.DataFrame, *, keep: str | None) -> pd.DataFrame:
    """Numeric columns (booleans aside) as float32, except ``keep`` (the target)."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric and name != keep and series.dtype != np.float32:
            # Beyond float32's range becomes inf, which schema validation reports as such.
            with np.errstate(over="ignore"):
                series = series.astype(np.float32)
        columns[name] = series
    return pd.DataFrame(columns, copy=False)


def _concat(chunks: Iterable[pd.DataFrame], *, keep: str | None) -> pd.DataFrame:
    """Compact each chunk as it arrives, then join the pieces column by column (freeing
    each column's pieces as it goes), so the peak is the compact frame plus one column."""
    pieces: dict[str, list[pd.Series[Any]]] = {}
    for chunk in chunks:
        for name, series in compact(chunk, keep=keep).items():
            pieces.setdefault(str(name), []).append(series)
    columns: dict[str, pd.Series[Any]] = {}
    for name in list(pieces):
        parts = pieces.pop(name)
        columns[name] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        del parts
    return pd.DataFrame(columns, copy=False)


def _csv_sep(path: Path, *, source: str, compression: Literal["gzip"] | None) -> str:
    """``,`` unless the file is separated by ``;``, tab or ``|`` (see :func:`csv_delimiter`)."""
    header = pd.read_csv(path, compression=compression, nrows=5)
    if header.shape[1] != 1 or not any(d in str(header.columns[0]) for d in OTHER_DELIMITERS):
        return ","
    opener = gzip.open if compression else open
    with opener(path, "rb") as handle:
        sample = handle.read(SNIFF_BYTES).decode("utf-8", errors="replace")
    delimiter = csv_delimiter(header, sample.rsplit("\n", 1)[0] if "\n" in sample else sample)
    if delimiter is None:
        raise DataError(
            f"{source} looks like a CSV separated by something other than commas "
            f"(header {str(header.columns[0])[:60]!r}); save it comma-separated"
        )
    return delimiter


def check_line_lengths(
    path: Path, *, source: str, compression: Literal["gzip"] | None, limit: int | None = None
) -> None:
    """:class:`DataError` if a line of the (decompressed) file is longer than ``limit``
    (default :data:`MAX_LINE_BYTES`), in constant memory.

    Blocks are at most ``limit`` bytes, so a line within one block is short enough;
    only the run of bytes since the last newline is carried from block to block.
    """
    limit = MAX_LINE_BYTES if limit is None else limit
    opener: Any = gzip.open if compression else open
    run = lines = 0
    with opener(path, "rb") as handle:
        while block := handle.read(min(limit, HASH_BLOCK_BYTES)):
            first = block.find(b"\n")
            run += len(block) if first == -1 else first
            if run > limit:
                raise DataError(
                    f"{source}: line {lines + 1} is longer than {limit} bytes; a CSV file "
                    "needs one row per line (is it a CSV at all?)"
                )
            if first != -1:
                lines += block.count(b"\n")
                run = len(block) - block.rfind(b"\n") - 1


def _read_csv(path: Path, *, source: str, keep: str | None) -> pd.DataFrame:
    compression: Literal["gzip"] | None = "gzip" if source.lower().endswith(".gz") else None
    check_line_lengths(path, source=source, compression=compression)
    sep = _csv_sep(path, source=source, compression=compression)
    # pandas renames a repeated header to `age.1`; refuse instead (see data_checks).
    reject_duplicate_columns(path, compression=compression, sep=sep, source=source)
    sample = pd.read_csv(path, compression=compression, sep=sep, nrows=SAMPLE_ROWS)
    dtypes = {
        str(name): "float32"
        for name, dtype in sample.dtypes.items()
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    }
    if keep is None and len(sample.columns):
        keep = str(sample.columns[-1])  # the default target
    dtypes.pop(str(keep), None)
    if len(sample) < SAMPLE_ROWS:
        return compact(sample, keep=keep)
    try:
        reader = pd.read_csv(
            path, compression=compression, sep=sep, dtype=dtypes, chunksize=CHUNK_ROWS
        )
        with reader:
            return _concat(reader, keep=keep)
    except ValueError:
        # A later row contradicts the sample's types: read the whole file as pandas would.
        return compact(pd.read_csv(path, compression=compression, sep=sep), keep=keep)


def _read_parquet(path: Path, *, keep: str | None) -> pd.DataFrame:
    import pyarrow.parquet as pq  # noqa: PLC0415

    # No pre-buffering: it reads ahead whole row groups (1.4 GB more at 10M rows x 21).
    file = pq.ParquetFile(path, pre_buffer=False)
    schema = file.schema_arrow
    # A saved pandas index is not data (pd.read_parquet would make it the index).
    index = {
        c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)
    }
    columns = [name for name in schema.names if name not in index]
    if keep is None and columns:
        keep = columns[-1]
    if file.metadata.num_rows == 0:
        empty: pd.DataFrame = schema.empty_table().select(columns).to_pandas()
        return empty
    batches = file.iter_batches(batch_size=CHUNK_ROWS, columns=columns)
    # One block per column: a column kept as is (the target) must not keep the whole
    # batch's consolidated block alive.
    return _concat((batch.to_pandas(split_blocks=True) for batch in batches), keep=keep)


def read_table(path: Path, *, kind: str, source: str, keep: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file in chunks; map every parser failure to :class:`DataError`.

    ``keep`` names the column to keep at full precision (the target; default: the last
    column). CSV files separated by ``;``, tabs or ``|`` instead of commas are detected
    (see :func:`csv_delimiter`) and read with their separator. Decimal commas (``1,5``)
    are not converted: such columns are read as text.
    """
    if path.stat().st_size == 0:
        raise DataError(f"data file {source} is empty")
    try:
        if kind == "parquet":
            return _read_parquet(path, keep=keep)
        return _read_csv(path, source=source, keep=keep)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {source} has no rows or columns") from None
    except (ValueError, OSError, EOFError, zlib.error, pd.errors.ParserError) as exc:
        # pyarrow's ArrowInvalid is a ValueError (as is UnicodeDecodeError); a bad gzip or
        # parquet header an OSError; a truncated gzip an EOFError.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {source} as {kind.upper()}: {detail}") from None


def parse_table(raw: bytes, *, kind: str, source: str, keep: str | None = None) -> pd.DataFrame:
    """:func:`read_table` for bytes already in memory (small files, tests)."""
    suffix = ".parquet" if kind == "parquet" else (".csv.gz" if source.endswith(".gz") else ".csv")
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(raw)
        handle.flush()
        return read_table(Path(handle.name), kind=kind, source=source, keep=keep)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def load_default() -> Dataset:
    """scikit-learn's bundled diabetes data: 442 rows, all 10 features, no download."""
    from sklearn.datasets import load_diabetes  # noqa: PLC0415 - sklearn is slow to import

    bunch = load_diabetes(as_frame=True)
    frame = bunch.frame.rename(columns={"target": DEFAULT_TARGET})
    canonical = frame.to_csv(index=False).encode()
    return Dataset(
        frame=frame,
        source=DEFAULT_SOURCE,
        sha256=hashlib.sha256(canonical).hexdigest(),
        default_target=DEFAULT_TARGET,
    )


def newest_file(directory: Path) -> Path:
    """The most recently modified CSV/Parquet file directly in ``directory``."""
    candidates = [
        p
        for p in directory.iterdir()
        if p.is_file() and any(p.name.lower().endswith(s) for s in _FORMATS)
    ]
    if not candidates:
        raise DataError(f"no CSV or Parquet file in {directory}")
    return max(candidates, key=lambda p: (p.stat().st_mtime_ns, p.name))


def load_local(path: str, *, keep: str | None = None) -> Dataset:
    file = Path(path).expanduser()
    if file.is_dir():
        # Like an s3:// prefix: a directory of drops means "the newest one".
        file = newest_file(file)
        path = str(file)
    kind = data_format(path)
    try:
        sha256 = file_sha256(file)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    frame = read_table(file, kind=kind, source=path, keep=keep)
    return Dataset(frame=frame, source=str(file), sha256=sha256)


def _s3_error_code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _s3_data_error(exc: Exception, uri: str) -> DataError:
    code = _s3_error_code(exc)
    if code in {"NoSuchKey", "404", "NoSuchBucket"}:
        return DataError(f"data not found: {uri} ({code})")
    return DataError(f"cannot read {uri}: {code or exc}")


def newest_object(client: S3Client, bucket: str, prefix: str) -> str:
    """Key of the most recently modified CSV/Parquet object under ``prefix``."""
    newest: tuple[Any, str] | None = None
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/") or not any(key.lower().endswith(s) for s in _FORMATS):
                continue
            candidate = (obj["LastModified"], key)
            if newest is None or candidate > newest:
                newest = candidate
    if newest is None:
        raise DataError(f"no CSV or Parquet object under s3://{bucket}/{prefix}")
    return newest[1]


def load_s3(uri: str, *, client: S3Client | None = None, keep: str | None = None) -> Dataset:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise DataError(f"data URI {uri!r} has no bucket")
    if client is None:
        import boto3  # noqa: PLC0415 - only S3 users pay for boto3

        client = boto3.client("s3")
    try:
        if not key or key.endswith("/"):
            key = newest_object(client, bucket, key)
        kind = data_format(key)
    except (ClientError, BotoCoreError) as exc:
        raise _s3_data_error(exc, uri) from None
    source = f"s3://{bucket}/{key}"
    # Streamed to disk, then read in chunks like a local file: never whole in memory.
    with tempfile.NamedTemporaryFile(suffix=Path(key).name) as spool:
        try:
            client.download_fileobj(bucket, key, spool)
        except (ClientError, BotoCoreError) as exc:
            raise _s3_data_error(exc, uri) from None
        spool.flush()
        path = Path(spool.name)
        frame = read_table(path, kind=kind, source=source, keep=keep)
        return Dataset(frame=frame, source=source, sha256=file_sha256(path))


def load_dataset(
    source: str | None, *, s3_client: S3Client | None = None, target: str | None = None
) -> Dataset:
    """Load ``source``; never returns an empty frame. ``target`` (default: the last column)
    keeps its full precision; other numeric columns are stored as float32.

    ``None``, ``""`` and :data:`DEFAULT_SOURCE` (the name a run record gives the bundled
    data set) all mean the bundled default, so a recorded source can be passed back as is.
    """
    if source is None or source in ("", DEFAULT_SOURCE):
        dataset = load_default()
    elif source.startswith("s3://"):
        dataset = load_s3(source, client=s3_client, keep=target)
    else:
        dataset = load_local(source, keep=target)
    if dataset.frame.shape[0] == 0 or dataset.frame.shape[1] == 0:
        raise DataError(f"data set {dataset.source} is empty")
    dataset.frame.columns = [str(c) for c in dataset.frame.columns]
    return dataset
