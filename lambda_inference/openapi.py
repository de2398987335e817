"""``GET /openapi.json``: an OpenAPI 3.1 document generated from the champion's feature schema."""

from __future__ import annotations

from typing import Any

from lambda_inference.routes import ROUTES
from mlsys.contract import FeatureSpec, ModelCard
from mlsys.eventlog import EVENT_TYPES


def _feature_schema(spec: FeatureSpec) -> dict[str, Any]:
    if spec.kind == "numeric":
        return {"type": ["number", "null"], "description": "numeric; null = missing (imputed)"}
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


def _predict_operations(card: ModelCard, *, max_batch_records: int) -> dict[str, Any]:
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
    errors = {
        "400": _error_response("invalid JSON, record or feature value"),
        "413": _error_response("too many records or body too large"),
        "415": _error_response(
            "Content-Type is not application/json, or Content-Encoding is not gzip"
        ),
        "422": _error_response("prediction_not_finite: the model's output for a record overflowed"),
        "503": _error_response("no champion model, or it failed to load"),
    }
    record = {"$ref": "#/components/schemas/Record"}
    return {
        "/stream": {
            "post": {
                "summary": "Predict one record",
                "requestBody": _json_body(
                    {"type": "object", "properties": {"data": record}, "required": ["data"]}
                ),
                "responses": {
                    "200": _ok({"type": "object", "properties": stream_result}),
                    **errors,
                },
            }
        },
        "/batch": {
            "post": {
                "summary": f"Predict up to {max_batch_records} records",
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "properties": {
                            "data": {
                                "type": "array",
                                "items": record,
                                "minItems": 1,
                                "maxItems": max_batch_records,
                            }
                        },
                        "required": ["data"],
                    }
                ),
                "responses": {
                    "200": _ok({"type": "object", "properties": batch_result}),
                    **errors,
                },
            }
        },
    }


def _feedback_operations(card: ModelCard, *, max_items: int) -> dict[str, Any]:
    """``POST /feedback``: one item or a list; ``actual`` typed by the champion's task."""
    actual = {"enum": list(card.classes or ())} if card.is_classifier else {"type": "number"}
    item = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "description": "request_id of the prediction"},
            "index": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "the record's position in a /batch request",
            },
            "actual": {**actual, "description": "the true value"},
        },
        "required": ["request_id", "actual"],
        "additionalProperties": False,
    }
    data = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}]}
    accepted = {
        "type": "object",
        "properties": {
            "result": {"type": "object", "properties": {"accepted": {"type": "integer"}}},
            "request_id": {"type": "string"},
        },
    }
    body = {"type": "object", "properties": {"data": data}, "required": ["data"]}
    operation = {
        "summary": "Ground truth for earlier predictions (monitoring)",
        "requestBody": _json_body(body),
        "responses": {
            "200": _ok(accepted),
            "400": _error_response("invalid JSON or feedback item (named in the error)"),
            "413": _error_response("too many items or body too large"),
            "415": _error_response("Content-Type is not application/json"),
            "503": _error_response("no champion model, or it failed to load"),
        },
    }
    return {"/feedback": {"post": operation}}


def _admin_operations() -> dict[str, Any]:
    """``{path: {method: operation}}`` of the admin routes."""
    return {
        "/log": {
            "get": {
                "summary": "System log, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {
                        "name": "type",
                        "in": "query",
                        "schema": {"enum": list(EVENT_TYPES)},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {"name": "next", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "OK"},
                    "400": _error_response("invalid query"),
                },
            },
            "delete": {"summary": "Empty the log", "responses": {"200": {"description": "OK"}}},
        },
        "/emptyLog": {
            "get": {"summary": "Empty the log", "responses": {"200": {"description": "OK"}}}
        },
        "/health": {
            "get": {
                "summary": "Status and champion version",
                "responses": {"200": {"description": "OK"}},
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
            "responses": {"200": {"description": "OK"}},
        }
        paths.setdefault(route.path, {})[method] = operation
    return paths


def openapi_document(card: ModelCard, *, max_batch_records: int) -> dict[str, Any]:
    operations = {
        **_predict_operations(card, max_batch_records=max_batch_records),
        **_feedback_operations(card, max_items=max_batch_records),
        **_admin_operations(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlsys prediction API: {card.model_name}",
            "version": card.version,
            "description": f"{card.task} model predicting {card.target!r} ({card.metric}).",
        },
        "paths": _paths(operations),
        "components": {
            "schemas": {
                **record_schemas(card),
                "Prediction": _prediction_schema(card),
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {},
                            },
                            "required": ["code", "message"],
                        }
                    },
                },
            }
        },
    }
