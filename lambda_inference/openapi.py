"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the champion's feature schema.

The document is exactly what the server accepts and answers (checked by
schemathesis with every check in ``make test``): request bodies admit no
other members (``additionalProperties: false``), numeric features are bounded
to float32, ``limit`` to the page size, every query parameter that is present
needs a value, and each operation lists every status it can answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lambda_inference.routes import ROUTES
from mlsys.contract import FeatureSpec, ModelCard
from mlsys.eventlog import EVENT_TYPES

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_REQUEST_ID_CHARS = 200
"""As :mod:`lambda_inference.feedback` checks it (not imported: it is heavier)."""


def _feature_schema(spec: FeatureSpec) -> dict[str, Any]:
    if spec.kind == "numeric":
        return {
            "type": ["number", "null"],
            "minimum": -FLOAT32_MAX,
            "maximum": FLOAT32_MAX,
            "description": "numeric (float32 range); null = missing (imputed)",
        }
    schema: dict[str, Any] = {
        "type": ["string", "number", "boolean", "null"],
        "description": "categorical; unknown categories are accepted, null = missing",
    }
    if spec.categories:
        schema["example"] = spec.categories[0]
        schema["examples"] = list(spec.categories[:20])
    return schema


def record_schemas(card: ModelCard) -> dict[str, Any]:
    """``Record`` (any accepted form) plus its ``RecordObject`` and ``RecordArray`` forms."""
    names = [f.name for f in card.features]
    variants: list[dict[str, Any]] = [
        {"$ref": "#/components/schemas/RecordObject"},
        {"$ref": "#/components/schemas/RecordArray"},
    ]
    if len(names) == 1:
        variants.append(_feature_schema(card.features[0]))
    return {
        "Record": {"oneOf": variants},
        "RecordObject": {
            "type": "object",
            "properties": {f.name: _feature_schema(f) for f in card.features},
            "required": names,
            "additionalProperties": False,
        },
        "RecordArray": {
            "type": "array",
            "description": f"values in schema order: {', '.join(names)}",
            "prefixItems": [_feature_schema(f) for f in card.features],
            "minItems": len(names),
            "maxItems": len(names),
        },
    }


def _prediction_schema(card: ModelCard) -> dict[str, Any]:
    if card.is_classifier:
        return {"enum": list(card.classes or ())}
    return {"type": "number"}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


NOT_ALLOWED = _error_response("method_not_allowed: the route does not serve this method (Allow)")
UNAVAILABLE = _error_response(
    "no champion model, it failed to load, the system log is unavailable, or the "
    "function's configuration is invalid"
)
BAD_REQUEST_LOCAL = "; locally also an HTTP request the server cannot parse"
LOG_EMPTIED = _ok(_object({"result": {"const": "log emptied"}, "request_id": {"type": "string"}}))


def _predict_operation(
    summary: str, data: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    return {
        "summary": summary,
        "requestBody": _json_body(_object({"data": data})),
        "responses": {
            "200": _ok(_object(result, required=["result", "model_version", "request_id"])),
            "400": _error_response(
                "invalid JSON (malformed_json, duplicate_key), request, record or feature "
                "value" + BAD_REQUEST_LOCAL
            ),
            "405": NOT_ALLOWED,
            "408": _error_response("request_timeout: the body did not arrive in time (local)"),
            "413": _error_response("too many records, or the body is too large"),
            "415": _error_response(
                "Content-Type is not application/json, or Content-Encoding is not gzip"
            ),
            "422": _error_response(
                "prediction_not_finite: the model's output for a record overflowed"
            ),
            "503": UNAVAILABLE,
        },
    }


def _log_parameters(max_log_page: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "limit",
            "in": "query",
            "description": "events per page (ASCII decimal digits)",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_log_page},
        },
        {"name": "type", "in": "query", "schema": {"enum": list(EVENT_TYPES)}},
        {
            "name": "since",
            "in": "query",
            "description": "oldest event time, RFC 3339 with an offset (years 1-9999 in UTC)",
            "schema": {"type": "string", "format": "date-time"},
        },
        {
            "name": "next",
            "in": "query",
            "description": "the previous page's next token",
            "schema": {"type": "string", "minLength": 1},
        },
    ]


def _admin_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``GET /log`` page and the ``GET /health`` answer."""
    event = _object(
        {
            "id": {"type": "string"},
            "type": {"enum": list(EVENT_TYPES)},
            "time": {"type": "string", "format": "date-time"},
            "request_id": {"type": ["string", "null"]},
            "model_version": {"type": ["string", "null"]},
            "data": {"type": "object"},
        }
    )
    page = _object(
        {"result": {"type": "array", "items": event}, "next": {"type": ["string", "null"]}}
    )
    health = _object(
        {
            "status": {"const": "ok"},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "task": {"enum": ["regression", "classification"]},
            "features": {"type": "array", "items": {"type": "string"}},
            "log": {"type": "object"},
            "rollout": _object(
                {
                    "state": {"enum": ["none", "canary", "shadow"]},
                    "candidate": {"type": "string"},
                    "fraction": {"type": ["number", "null"]},
                    "started": {"type": "string"},
                    "candidate_loaded": {"type": "boolean"},
                    "evidence": {
                        "type": "object",
                        "description": "traffic, errors, p99 latency and live quality "
                        "of the champion and the candidate since the rollout started",
                    },
                },
                required=["state"],
            ),
        }
    )
    return page, health


def _admin_paths(max_log_page: int) -> dict[str, Any]:
    page, health = _admin_schemas()
    return {
        "/log": {
            "get": {
                "summary": "System log, newest first",
                "parameters": _log_parameters(max_log_page),
                "responses": {
                    "200": _ok(page),
                    "400": _error_response("invalid query or page token"),
                    "405": NOT_ALLOWED,
                    "503": UNAVAILABLE,
                },
            },
            "delete": {
                "summary": "Empty the log",
                "responses": {"200": LOG_EMPTIED, "405": NOT_ALLOWED, "503": UNAVAILABLE},
            },
        },
        "/emptyLog": {
            "get": {
                "summary": "Empty the log",
                "responses": {"200": LOG_EMPTIED, "405": NOT_ALLOWED, "503": UNAVAILABLE},
            }
        },
        "/health": {
            "get": {
                "summary": "Status and champion version",
                "responses": {"200": _ok(health), "405": NOT_ALLOWED, "503": UNAVAILABLE},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": _ok({"type": "object", "required": ["openapi", "paths"]}),
                    "405": NOT_ALLOWED,
                    "503": UNAVAILABLE,
                },
            }
        },
    }


def _paths(operations: dict[str, Any]) -> dict[str, Any]:
    """The document's paths: exactly the route table's (path, method) pairs, in its order.

    A route with no detailed operation above still appears, with its summary.
    """
    paths: dict[str, Any] = {}
    for route in ROUTES:
        method = route.method.lower()
        operation = operations.get(route.path, {}).get(method) or {
            "summary": route.summary,
            "responses": {"200": {"description": "OK"}, "405": NOT_ALLOWED},
        }
        paths.setdefault(route.path, {})[method] = operation
    return paths


def _predict_paths(card: ModelCard, *, max_batch_records: int) -> dict[str, Any]:
    """``{path: {method: operation}}`` of the predict routes."""
    prediction = {"$ref": "#/components/schemas/Prediction"}
    probabilities = {"type": "object", "additionalProperties": {"type": "number"}}
    stream_result: dict[str, Any] = {
        "result": prediction,
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
    }
    batch_result: dict[str, Any] = {
        "result": {"type": "array", "items": prediction},
        "model_version": {"type": "string"},
        "request_id": {"type": "string"},
    }
    if card.is_classifier:
        stream_result["probabilities"] = probabilities
        batch_result["probabilities"] = {"type": "array", "items": probabilities}
    record = {"$ref": "#/components/schemas/Record"}
    records = {"type": "array", "items": record, "minItems": 1, "maxItems": max_batch_records}
    return {
        "/stream": {"post": _predict_operation("Predict one record", record, stream_result)},
        "/batch": {
            "post": _predict_operation(
                f"Predict up to {max_batch_records} records", records, batch_result
            )
        },
    }


def _feedback_paths(card: ModelCard, *, max_items: int) -> dict[str, Any]:
    """``POST /feedback``: one item or a list; ``actual`` typed by the champion's task."""
    if card.is_classifier:
        actual: dict[str, Any] = {"enum": list(card.classes or ())}
    else:
        # Unbounded: orjson reads an integer beyond 64 bits as the nearest double, so a
        # bound at the largest double could not be enforced exactly.
        actual = {"type": "number"}
    item = _object(
        {
            "request_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_REQUEST_ID_CHARS,
                "description": "request_id of the prediction",
            },
            "index": {
                "type": "integer",
                "minimum": 0,
                "maximum": 2**53 - 1,
                "default": 0,
                "description": "the record's position in a /batch request",
            },
            "actual": {**actual, "description": "the true value"},
        },
        required=["request_id", "actual"],
    )
    items = {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}
    accepted = _object(
        {"result": _object({"accepted": {"type": "integer"}}), "request_id": {"type": "string"}}
    )
    operation = {
        "summary": "Ground truth for earlier predictions (monitoring)",
        "requestBody": _json_body(_object({"data": {"oneOf": [item, items]}})),
        "responses": {
            "200": _ok(accepted),
            "400": _error_response(
                "invalid JSON (malformed_json, duplicate_key) or feedback item (named in the "
                "error)" + BAD_REQUEST_LOCAL
            ),
            "405": NOT_ALLOWED,
            "408": _error_response("request_timeout: the body did not arrive in time (local)"),
            "413": _error_response("too many items, or the body is too large"),
            "415": _error_response(
                "Content-Type is not application/json, or Content-Encoding is not gzip"
            ),
            "503": UNAVAILABLE,
        },
    }
    return {"/feedback": {"post": operation}}


def openapi_document(
    card: ModelCard, *, max_batch_records: int, max_log_page: int = 1000
) -> dict[str, Any]:
    error = _object({"code": {"type": "string"}, "message": {"type": "string"}, "details": {}})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlsys prediction API: {card.model_name}",
            "version": card.version,
            "description": f"{card.task} model predicting {card.target!r} ({card.metric}).",
        },
        "paths": _paths(
            {
                **_predict_paths(card, max_batch_records=max_batch_records),
                **_feedback_paths(card, max_items=max_batch_records),
                **_admin_paths(max_log_page),
            }
        ),
        "components": {
            "schemas": {
                **record_schemas(card),
                "Prediction": _prediction_schema(card),
                "Error": _object({"error": error}),
            }
        },
    }
