"""Parse and validate request bodies at the edge; the contract encodes them into ONNX feeds.

Records arrive as JSON objects keyed by feature name, arrays of values in
schema order, or (for a one-feature model) bare values. A batch is encoded in
two tiers: a vectorised fast path (``operator.itemgetter`` + one
``numpy.array`` call) that accepts only the common, unambiguous case, and an
exact per-value path that is used whenever the fast path declines. The exact
path is the specification: it decides every error and names the record index
and feature; the fast path only ever agrees with it or steps aside. Either way the
checked values go to the model's :class:`mlsys.contract.FeedEncoder`, the one
encoder training uses too.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from lambda_inference.errors import (
    DuplicateKeyError,
    EmptyBatchError,
    InvalidRecordError,
    InvalidRequestError,
    InvalidTypeError,
    MalformedJsonError,
    MissingFeatureError,
    NonFiniteNumberError,
    TooManyRecordsError,
    UnknownFeatureError,
)
from mlsys.contract import FeatureSpec, FeedEncoder, Feeds

FLOAT32_MAX = float(np.finfo(np.float32).max)


# --- JSON -----------------------------------------------------------------------


def decode_json(body: bytes) -> Any:
    """Parse a request body.

    orjson decides what is valid JSON. Only when it refuses does the stdlib
    parser take a second, lenient look, to turn two common refusals into
    errors that say where the problem is: NaN/Infinity (not JSON, but sent by
    many encoders) become ``invalid_number`` naming their path, and integers
    too large for a double come back as :class:`OutOfRangeInteger` markers,
    which the record encoder rejects naming the record and feature. Anything
    else (a UTF-8 BOM, a lone surrogate, nesting deeper than orjson's limit...)
    is ``malformed_json`` with orjson's own message.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        original = str(exc)
    else:
        _reject_duplicate_keys(body, payload)
        return payload
    malformed = MalformedJsonError(f"request body is not valid JSON: {original}")
    if body.startswith(b"\xef\xbb\xbf"):
        raise malformed
    try:
        lenient = json.loads(body.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise malformed from None
    non_finite, huge, bad_string = _lenient_findings(lenient)
    if non_finite is not None:
        raise NonFiniteNumberError(
            f"NaN and Infinity are not allowed (found at {non_finite})",
            details={"path": non_finite},
        )
    if bad_string or not huge:
        raise malformed
    for container, key, value in huge:
        container[key] = OutOfRangeInteger(value)
    return lenient


class OutOfRangeInteger:
    """An integer literal too large for a double (which orjson refuses); the
    record encoder rejects it as out of range, naming the record and feature."""

    __slots__ = ("digits", "text")

    def __init__(self, value: int) -> None:
        self.digits = len(str(abs(value)))
        self.text = f"{'-' if value < 0 else ''}{str(abs(value))[:20]}... ({self.digits} digits)"

    def __repr__(self) -> str:
        return self.text


def _lenient_findings(
    root: Any,
) -> tuple[str | None, list[tuple[Any, Any, int]], bool]:
    """Walk a stdlib-parsed document (iteratively: it may be deep) in order.

    Returns the path of the first non-finite float, the huge integers as
    ``(container, key, value)``, and whether any string or key is not valid
    Unicode (a lone surrogate). Paths are linked ``(parent, key)`` pairs, turned
    into text only for the one that is reported.
    """
    huge: list[tuple[Any, Any, int]] = []
    bad_string = False
    stack: list[tuple[Any, Any, Any, Any]] = [(None, None, root, None)]
    while stack:
        container, key, value, parent = stack.pop()
        where = (parent, key)
        if type(value) is float and not math.isfinite(value):
            return _path_text(where), huge, bad_string
        if type(value) is int and not -_DOUBLE_MAX <= value <= _DOUBLE_MAX:
            huge.append((container, key, value))
        elif type(value) is str:
            bad_string = bad_string or not _is_unicode(value)
        elif type(value) is dict:
            bad_string = bad_string or not all(map(_is_unicode, value))
            stack.extend((value, name, item, where) for name, item in reversed(value.items()))
        elif type(value) is list:
            stack.extend(
                (value, index, value[index], where) for index in reversed(range(len(value)))
            )
    return None, huge, bad_string


def _path_text(where: Any) -> str:
    """``$.data[3].age`` for a linked ``(parent, key)`` path (keys shortened)."""
    parts: list[str] = []
    while where is not None and where[1] is not None:  # the root's key is None
        parent, key = where
        parts.append(f"[{key}]" if type(key) is int else f".{preview_text(key)}")
        where = parent
    path = "".join(reversed(parts))
    return "$" + (path if len(path) <= MAX_PREVIEW_CHARS else f"...{path[-MAX_PREVIEW_CHARS:]}")


_DOUBLE_MAX = sys.float_info.max


def _is_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


MAX_PREVIEW_CHARS = 100
"""Values and keys echoed in error messages are cut to this many characters, so
a 1 MB string cannot make a 1 MB error body or log event."""


def preview(value: Any) -> str:
    """``repr(value)``, cut to :data:`MAX_PREVIEW_CHARS` with its original length."""
    return preview_text(repr(value))


def preview_text(text: str) -> str:
    if len(text) <= MAX_PREVIEW_CHARS:
        return text
    return f"{text[:MAX_PREVIEW_CHARS]}... ({len(text)} chars)"


MAX_LISTED_MEMBERS = 10


def _reject_duplicate_keys(body: bytes, payload: Any) -> None:
    """:class:`DuplicateKeyError` naming the first member an object repeats.

    orjson keeps the last of two equal keys silently. Every key in the text
    has its own ``:``, so when the parsed objects hold as many keys as the body
    has colons, no key was dropped: that count settles almost every request
    in C-speed passes (array batches after the top-level object, since no
    colon is left). Only a body with more colons (a duplicate, or a colon
    inside a string) is parsed again by the stdlib with every pair kept.
    """
    colons = body.count(b":")
    kept = _count_keys(payload, budget=colons)
    if kept >= colons:
        return
    try:
        json.loads(body, object_pairs_hook=_unique_pairs)
    except DuplicateKeyError:
        raise
    except (ValueError, RecursionError):
        return  # orjson accepted it; the stdlib's disagreements are not this check's business


def _count_keys(payload: Any, *, budget: int) -> int:
    """Keys kept in the top-level object and the objects one or two levels
    below it (the records), stopping once ``budget`` is reached."""
    if type(payload) is not dict:
        return 0
    kept = len(payload)
    for value in payload.values():
        if kept >= budget:
            return kept
        if type(value) is dict:
            kept += len(value)
        elif type(value) is list:
            kept += sum(len(item) for item in value if type(item) is dict)
    return kept


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(
                f"the JSON object repeats the member {preview(key)}; send each member once",
                details={"key": preview_text(key)},
            )
        seen[key] = value
    return seen


def request_data(payload: Any) -> Any:
    """The ``data`` member of ``{"data": ...}``."""
    if type(payload) is dict and len(payload) == 1 and "data" in payload:
        return payload["data"]  # the usual body, settled in one step
    if not isinstance(payload, dict) or "data" not in payload:
        raise InvalidRequestError('request body must be a JSON object {"data": ...}')
    extra = sorted(k for k in payload if k != "data")
    if extra:
        shown = [preview_text(k) for k in extra[:MAX_LISTED_MEMBERS]]
        more = f" and {len(extra) - len(shown)} more" if len(extra) > len(shown) else ""
        raise InvalidRequestError(
            f"unexpected member(s) {', '.join(map(repr, shown))}{more}; "
            'the body is {"data": ...}',
            details={"members": shown, "count": len(extra)},
        )
    return payload["data"]


def batch_records(data: Any, *, max_records: int) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequestError('/batch expects "data" to be an array of records')
    if not data:
        raise EmptyBatchError("the batch is empty; send at least one record")
    if len(data) > max_records:
        raise TooManyRecordsError(
            f"the batch has {len(data)} records; the limit is {max_records}",
            details={"records": len(data), "limit": max_records},
        )
    return data


# --- records --------------------------------------------------------------------


_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


class RecordEncoder:
    """Checks records against one model's feature schema and hands the values to its
    :class:`~mlsys.contract.FeedEncoder`; built once per model version."""

    def __init__(self, feeds: FeedEncoder) -> None:
        self.feeds = feeds
        self.features = feeds.features
        self.names = tuple(f.name for f in self.features)
        self.count = len(self.features)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._all_numeric = feeds.all_numeric
        getter = itemgetter(*self.names)
        self._get = getter if self.count > 1 else lambda r: (getter(r),)

    # public ---------------------------------------------------------------------
    def encode(self, records: list[Any], *, body_has_booleans: bool = True) -> Feeds:
        """Feeds for ``records``; raises a :class:`ValidationError` naming the
        first bad record and feature. ``body_has_booleans=False`` (no ``true``
        or ``false`` in the raw body) lets numeric batches take the fast path;
        up to :data:`SMALL_ROWS` records it is not needed (types are checked)."""
        if self._all_numeric and (len(records) <= SMALL_ROWS or not body_has_booleans):
            matrix = self._numeric_fast(records)
            if matrix is not None:
                return self.feeds.from_matrix(matrix)
        columns = self._columns_fast(records)
        if columns is None:
            columns = self._columns_exact(records)
        return self.feeds.from_columns(columns)

    def as_record_list(self, data: Any) -> list[Any]:
        """A /stream record as a one-record batch (a bare value for one-feature models)."""
        if isinstance(data, dict | list):
            return [data]
        if self.count == 1:
            return [[data]]
        raise InvalidRecordError(
            f"record must be an object keyed by feature name or an array of {self.count} "
            f"values in schema order, got {_type_name(data)}",
            details={"record": 0, "expected_features": list(self.names)},
        )

    # fast paths -----------------------------------------------------------------
    def _rows(self, records: list[Any]) -> list[Any] | None:
        """Values in schema order per record, or ``None`` if any record is unusual."""
        if len(records) == 1:
            return self._one_row(records)
        kinds = set(map(type, records))
        if kinds == {dict}:
            if set(map(len, records)) != {self.count}:
                return None
            try:
                return list(map(self._get, records))
            except KeyError:
                return None
        if kinds == {list} and set(map(len, records)) == {self.count}:
            return records
        return None

    def _one_row(self, records: list[Any]) -> list[Any] | None:
        """:meth:`_rows` of one record (/stream), without building sets."""
        record = records[0]
        kind = type(record)
        if kind is dict and len(record) == self.count:
            try:
                return [self._get(record)]
            except KeyError:
                return None
        return records if kind is list and len(record) == self.count else None

    def _numeric_fast(self, records: list[Any]) -> npt.NDArray[np.float32] | None:
        rows = self._rows(records)
        if rows is None:
            return None
        if len(rows) <= SMALL_ROWS:
            return _small_numeric(rows)
        try:
            array = np.array(rows)
        except (ValueError, TypeError, OverflowError):
            return None
        # Only plain numbers give an int/float array; None gives object, strings unicode.
        if array.dtype.kind not in "fi" or array.ndim != 2:
            return None
        with np.errstate(over="ignore"):
            matrix = array.astype(np.float32)
        if not np.isfinite(matrix).all():
            return None  # overflowed float32: let the exact path name the value
        return matrix

    def _columns_fast(self, records: list[Any]) -> list[list[Any]] | None:
        rows = self._rows(records)
        if rows is None:
            return None
        columns = [list(column) for column in zip(*rows, strict=True)]
        for spec, column in zip(self.features, columns, strict=True):
            allowed = _NUMERIC_TYPES if spec.kind == "numeric" else _CATEGORY_TYPES
            if not set(map(type, column)) <= allowed:
                return None
            if spec.kind == "numeric" and not all(map(_finite_float32, column)):
                return None
        return columns

    # exact path -----------------------------------------------------------------
    def _columns_exact(self, records: list[Any]) -> list[list[Any]]:
        columns: list[list[Any]] = [[] for _ in self.features]
        for index, record in enumerate(records):
            for position, value in enumerate(self._record_values(index, record)):
                spec = self.features[position]
                columns[position].append(self._checked(index, spec, value))
        return columns

    def _record_values(self, index: int, record: Any) -> Sequence[Any]:
        if isinstance(record, dict):
            unknown = [key for key in record if key not in self._index]
            if unknown:
                raise UnknownFeatureError(
                    f"record {index}: unknown feature {preview(unknown[0])}; the model's "
                    f"features are {', '.join(self.names)}",
                    details={"record": index, "feature": preview_text(unknown[0])},
                )
            for name in self.names:
                if name not in record:
                    raise MissingFeatureError(
                        f"record {index}: feature {name!r} is missing (send null for a "
                        "missing value)",
                        details={"record": index, "feature": name},
                    )
            return [record[name] for name in self.names]
        if isinstance(record, list):
            if len(record) != self.count:
                raise InvalidRecordError(
                    f"record {index}: has {len(record)} values; the model expects "
                    f"{self.count} in this order: {', '.join(self.names)}",
                    details={"record": index, "expected_features": list(self.names)},
                )
            return record
        if self.count == 1:
            return [record]
        raise InvalidRecordError(
            f"record {index}: must be an object keyed by feature name or an array of "
            f"{self.count} values, got {_type_name(record)}",
            details={"record": index, "expected_features": list(self.names)},
        )

    @staticmethod
    def _checked(index: int, spec: FeatureSpec, value: Any) -> Any:
        if value is None:
            return None
        if type(value) is OutOfRangeInteger:
            raise NonFiniteNumberError(
                f"record {index}: feature {spec.name!r} value {value!r} is outside the "
                "float32 range",
                details={"record": index, "feature": spec.name},
            )
        if spec.kind == "numeric":
            if type(value) not in _NUMERIC_TYPES:
                raise InvalidTypeError(
                    f"record {index}: feature {spec.name!r} is numeric; got "
                    f"{_type_name(value)} {preview(value)}",
                    details={"record": index, "feature": spec.name, "expected": "number"},
                )
            if not _finite_float32(value):
                raise NonFiniteNumberError(
                    f"record {index}: feature {spec.name!r} value {preview(value)} is outside "
                    "the float32 range",
                    details={"record": index, "feature": spec.name},
                )
            return value
        if type(value) not in _CATEGORY_TYPES:
            raise InvalidTypeError(
                f"record {index}: feature {spec.name!r} is categorical; got {_type_name(value)}",
                details={"record": index, "feature": spec.name, "expected": "string"},
            )
        return value


SMALL_ROWS = 16
"""Up to this many records, plain Python checks beat numpy's per-call overheads
(an ``errstate`` block and ``isfinite`` each cost about a microsecond)."""
_PLAIN_NUMBERS = frozenset({int, float})


def _small_numeric(rows: list[Any]) -> npt.NDArray[np.float32] | None:
    """The float32 matrix of a few rows of plain numbers within float32's range, or
    ``None`` (a bool, a null, a string, an overflow: the exact path names it)."""
    for row in rows:
        if not set(map(type, row)) <= _PLAIN_NUMBERS:
            return None
        if max(row) > FLOAT32_MAX or min(row) < -FLOAT32_MAX:
            return None
    return np.array(rows, dtype=np.float32)


_NUMERIC_TYPES = frozenset({int, float, type(None)})
_CATEGORY_TYPES = frozenset({str, int, float, bool, type(None)})


def _finite_float32(value: Any) -> bool:
    return value is None or (-FLOAT32_MAX <= value <= FLOAT32_MAX)
