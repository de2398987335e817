"""Loading training data: CSV or Parquet, from a local path or S3, or the bundled default.

Every failure a user can cause (missing file, unreadable format, empty data)
raises :class:`~mlsys.errors.DataError` before anything is written anywhere.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import pandas as pd

from mlsys.errors import DataError
from training_job.data_checks import reject_duplicate_columns

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_SOURCE = "sklearn:diabetes"
DEFAULT_TARGET = "progression"
"""Target column of the bundled data set (the disease progression one year after baseline)."""

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


def _read_csv(raw: bytes, *, source: str) -> pd.DataFrame:
    compression: Literal["gzip"] | None = "gzip" if source.lower().endswith(".gz") else None
    frame = pd.read_csv(io.BytesIO(raw), compression=compression)
    sep = ","
    if frame.shape[1] == 1 and any(d in str(frame.columns[0]) for d in OTHER_DELIMITERS):
        text = gzip.decompress(raw) if compression else raw
        sample = text[:SNIFF_BYTES].decode("utf-8", errors="replace")
        delimiter = csv_delimiter(frame, sample.rsplit("\n", 1)[0] if "\n" in sample else sample)
        if delimiter is None:
            raise DataError(
                f"{source} looks like a CSV separated by something other than commas "
                f"(header {str(frame.columns[0])[:60]!r}); save it comma-separated"
            )
        frame = pd.read_csv(io.BytesIO(raw), compression=compression, sep=delimiter)
        sep = delimiter
    # pandas renames a repeated header to `age.1`; refuse instead (see data_checks).
    reject_duplicate_columns(raw, compression=compression, sep=sep, source=source)
    return frame


def parse_table(raw: bytes, *, kind: str, source: str) -> pd.DataFrame:
    """Parse CSV or Parquet bytes; map every parser failure to :class:`DataError`.

    CSV files separated by ``;``, tabs or ``|`` instead of commas are detected (see
    :func:`csv_delimiter`) and read with their separator. Decimal commas (``1,5``) are
    not converted: such columns are read as text.
    """
    if not raw:
        raise DataError(f"data file {source} is empty")
    try:
        if kind == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        return _read_csv(raw, source=source)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {source} has no rows or columns") from None
    except (ValueError, OSError, EOFError, zlib.error, pd.errors.ParserError) as exc:
        # pyarrow's ArrowInvalid is a ValueError (as is UnicodeDecodeError); a bad gzip or
        # parquet header an OSError; a truncated gzip an EOFError.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {source} as {kind.upper()}: {detail}") from None


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


def load_local(path: str) -> Dataset:
    file = Path(path).expanduser()
    if file.is_dir():
        # Like an s3:// prefix: a directory of drops means "the newest one".
        file = newest_file(file)
        path = str(file)
    kind = data_format(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    frame = parse_table(raw, kind=kind, source=path)
    return Dataset(frame=frame, source=str(file), sha256=hashlib.sha256(raw).hexdigest())


def _s3_error_code(exc: Exception) -> str:
    response: dict[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


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


def load_s3(uri: str, *, client: S3Client | None = None) -> Dataset:
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
        raw = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = _s3_error_code(exc)
        if code in {"NoSuchKey", "404", "NoSuchBucket"}:
            raise DataError(f"data not found: {uri} ({code})") from None
        raise DataError(f"cannot read {uri}: {code or exc}") from None
    except BotoCoreError as exc:
        raise DataError(f"cannot read {uri}: {exc}") from None
    source = f"s3://{bucket}/{key}"
    frame = parse_table(raw, kind=kind, source=source)
    return Dataset(frame=frame, source=source, sha256=hashlib.sha256(raw).hexdigest())


def load_dataset(source: str | None, *, s3_client: S3Client | None = None) -> Dataset:
    """Load ``source``; never returns an empty frame.

    ``None``, ``""`` and :data:`DEFAULT_SOURCE` (the name a run record gives the bundled
    data set) all mean the bundled default, so a recorded source can be passed back as is.
    """
    if source is None or source in ("", DEFAULT_SOURCE):
        dataset = load_default()
    elif source.startswith("s3://"):
        dataset = load_s3(source, client=s3_client)
    else:
        dataset = load_local(source)
    if dataset.frame.shape[0] == 0 or dataset.frame.shape[1] == 0:
        raise DataError(f"data set {dataset.source} is empty")
    dataset.frame.columns = [str(c) for c in dataset.frame.columns]
    return dataset
