"""The one place where domain errors become HTTP statuses and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from lambda_inference.errors import (
    ForbiddenError,
    MethodNotAllowedError,
    ModelUnavailableError,
    PayloadTooLargeError,
    PredictionNotFiniteError,
    RouteNotFoundError,
    TooManyRecordsError,
    UnsupportedMediaTypeError,
)
from mlsys.errors import (
    ConfigError,
    MlsysError,
    NoChampionError,
    RegistryError,
    ValidationError,
)
from mlsys.eventlog import EventLogError, InvalidPageTokenError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

# First match wins, so subclasses come before their bases.
_STATUS_BY_ERROR: tuple[tuple[type[MlsysError], int], ...] = (
    (ValidationError, 400),
    (InvalidPageTokenError, 400),
    (ForbiddenError, 403),
    (RouteNotFoundError, 404),
    (MethodNotAllowedError, 405),
    (TooManyRecordsError, 413),
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (PredictionNotFiniteError, 422),
    (NoChampionError, 503),
    (ModelUnavailableError, 503),
    (RegistryError, 503),
    (EventLogError, 503),
    (ConfigError, 503),  # the function's environment, not the request, is wrong
)
INTERNAL_ERROR = 500


def status_for(error: MlsysError) -> int:
    for error_type, status in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return INTERNAL_ERROR


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def to_json(payload: Any) -> str:
    return orjson.dumps(payload, option=JSON_OPTIONS).decode()
