"""Real ONNX models for inference tests, exported by training's own ``export_onnx``.

Models go into a real registry through ``ModelRegistry.register`` and
``promote`` exactly as training writes them, so the tests need no training
run; end-to-end tests use ``mlsys train`` instead.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlsys.contract import FeatureSpec, InputLayout, ModelCard, input_name_for
from mlsys.registry import ModelRegistry
from training_job.export import export_onnx

CLASSES = ("no", "yes", "maybe")


@dataclass(frozen=True)
class BuiltModel:
    card: ModelCard
    model_bytes: bytes
    frame: pd.DataFrame
    """Feature columns (real names) the model was fitted on."""
    expected: Any
    """The scikit-learn pipeline's predictions on ``frame`` (labels or floats)."""


def _exported_card(
    pipeline: Any, card: ModelCard, *, layout: InputLayout
) -> tuple[ModelCard, bytes]:
    """The model through training's own exporter (so a contract change breaks these
    tests too), and its card saying which input layout it has."""
    exported = export_onnx(
        pipeline,
        card.features,
        task=card.task,
        n_classes=len(card.classes) if card.classes is not None else None,
        layout=layout,
    )
    return replace(card, input_layout=exported.input_layout), exported.model_bytes


def build_regression(
    *,
    version: str,
    model_name: str = "default",
    alpha: float = 1.0,
    features: int = 10,
    layout: InputLayout = "tensor",
) -> BuiltModel:
    """Ridge on scikit-learn's diabetes data (the default model's data set)."""

    data = load_diabetes(as_frame=True)
    frame = data.data.iloc[:, :features].astype(np.float32)
    specs = [
        FeatureSpec(name=str(c), kind="numeric", input_name=input_name_for(i))
        for i, c in enumerate(frame.columns)
    ]
    renamed = frame.set_axis([s.input_name for s in specs], axis=1)
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    pipeline = Pipeline(
        [
            ("prep", ColumnTransformer([("num", numeric, [s.input_name for s in specs])])),
            ("model", Ridge(alpha=alpha)),
        ]
    )
    pipeline.fit(renamed, data.target)
    card = ModelCard(
        model_name=model_name,
        version=version,
        task="regression",
        target="progression",
        features=tuple(specs),
        metric="r2",
    )
    card, model_bytes = _exported_card(pipeline, card, layout=layout)
    return BuiltModel(card, model_bytes, frame, pipeline.predict(renamed))


def build_classifier(
    *, version: str, model_name: str = "default", layout: InputLayout = "tensor"
) -> BuiltModel:
    """Logistic regression on numeric + categorical features with missing values."""

    rng = np.random.default_rng(7)
    rows = 300
    age = rng.normal(40, 10, rows)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    income = rng.normal(50, 15, rows)
    label = (age > 40).astype(int) + (colour == "red").astype(int)
    age[rng.random(rows) < 0.1] = np.nan
    colour[rng.random(rows) < 0.1] = None
    frame = pd.DataFrame(
        {"age": age.astype(np.float32), "colour": colour, "income": income.astype(np.float32)}
    )
    specs = [
        FeatureSpec(name="age", kind="numeric", input_name="f0", had_missing=True),
        FeatureSpec(
            name="colour",
            kind="categorical",
            input_name="f1",
            categories=("blue", "green", "red"),
            had_missing=True,
        ),
        FeatureSpec(name="income", kind="numeric", input_name="f2"),
    ]
    renamed = frame.set_axis(["f0", "f1", "f2"], axis=1)
    renamed["f1"] = renamed["f1"].fillna("")
    pipeline = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
                            ["f0", "f2"],
                        ),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["f1"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    pipeline.fit(renamed, label)
    card = ModelCard(
        model_name=model_name,
        version=version,
        task="classification",
        target="label",
        features=tuple(specs),
        metric="f1_macro",
        classes=CLASSES,
    )
    expected = [CLASSES[i] for i in pipeline.predict(renamed)]
    card, model_bytes = _exported_card(pipeline, card, layout=layout)
    return BuiltModel(card, model_bytes, frame, expected)


def publish(registry: ModelRegistry, built: BuiltModel, *, reason: str = "test") -> None:
    """Register ``built`` and make it the champion, as a training run would."""
    registry.register(built.card, built.model_bytes)
    registry.promote(built.card.version, reason=reason, actor="tests", expected=registry.champion())


def fake_aws_credentials(monkeypatch: Any) -> None:
    """Credentials and region for boto3 under moto (never real ones)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def create_log_table(client: Any, table: str) -> None:
    """The system-log table as the infrastructure defines it: pk/sk strings, TTL expires_at."""
    client.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str = "req-1",
) -> dict[str, Any]:
    """An API Gateway REST (v1 proxy) event, as API Gateway sends it."""
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    all_headers = {"Content-Type": "application/json"} if raw_body is not None else {}
    all_headers.update(headers or {})
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "requestId": request_id,
            "stage": "prod",
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/prod{path}",
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def subscription_event(
    messages: list[str], *, message_type: str = "DATA_MESSAGE"
) -> dict[str, Any]:
    """A CloudWatch Logs subscription event (base64 of gzip of JSON) carrying ``messages``."""
    payload = {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "/aws/lambda/predict",
        "logStream": "2026/11/29/[$LATEST]abc",
        "subscriptionFilters": ["mlsys-events"],
        "logEvents": [
            {"id": str(i), "timestamp": 1764387000000 + i, "message": m}
            for i, m in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}
