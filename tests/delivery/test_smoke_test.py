"""scripts/smoke_test.py: what the deploy workflow sends, and how it reports failures.

The signed requests are checked the way API Gateway checks them: the SigV4
signature is recomputed here, independently of botocore, from the request the
server actually received.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.credentials import ReadOnlyCredentials

from scripts import smoke_test
from scripts.smoke_test import ApiClient, SmokeTestError, record_from_openapi, sigv4_signer

REGION = "eu-west-1"
CREDENTIALS = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
API_KEY = "k3y-for-predict-routes"
RECORD_SCHEMA = {
    "type": "object",
    "properties": {
        "age": {"type": "number"},
        "sex": {"type": "string", "enum": ["F", "M"]},
        "bmi": {"type": ["number", "null"]},
    },
}


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """Answers like the mlsys API and records every request it gets."""

    requests: list[Received] = field(default_factory=list)
    overrides: dict[str, tuple[int, Any]] = field(default_factory=dict)
    logged_request_ids: list[str] = field(default_factory=list)
    newer_traffic: int = 0
    """Prediction events logged after the smoke test's own (a busy API)."""
    url: str = ""

    def answer(self, method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        route = f"{method} {path}"
        if route in self.overrides:
            return self.overrides[route]
        if route == "GET /health":
            return 200, {"status": "ok", "model_version": "v1"}
        if route == "GET /openapi.json":
            return 200, {"openapi": "3.0.3", "components": {"schemas": {"Record": RECORD_SCHEMA}}}
        if route == "POST /stream":
            self.logged_request_ids.append("req-stream-1")
            return 200, {"result": 151.2, "model_version": "v1", "request_id": "req-stream-1"}
        if route == "POST /batch":
            # A gzip body (Content-Type application/gzip) starts with gzip's magic bytes.
            n = len(json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)["data"])
            return 200, {"result": [1.0] * n, "model_version": "v1", "request_id": "req-batch"}
        if route == "GET /log":
            ids = [f"other-{i}" for i in range(self.newer_traffic)] + self.logged_request_ids
            params = dict(parse_qsl(query))
            start = int(params.get("next", "0"))
            end = start + int(params["limit"])
            events = [{"type": "prediction", "request_id": r} for r in ids[start:end]]
            return 200, {"result": events, "next": str(end) if end < len(ids) else None}
        return 404, {"error": {"code": "not_found", "message": route, "details": None}}


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            fake.requests.append(
                Received(
                    self.command,
                    parts.path,
                    parts.query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            status, payload = fake.answer(
                self.command, parts.path.removeprefix("/prod"), parts.query, body
            )
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _serve  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/prod"
    yield fake
    server.shutdown()
    server.server_close()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def expected_signature(request: Received, *, secret: str, region: str) -> str:
    """SigV4 for execute-api, written from the AWS spec rather than with botocore."""
    signed_names = request.headers["authorization"].split("SignedHeaders=")[1]
    signed_names = signed_names.split(",")[0].split(";")
    amz_date = request.headers["x-amz-date"]
    pairs = sorted(parse_qsl(request.query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
    canonical_request = "\n".join(
        [
            request.method,
            quote(request.path, safe="/-_.~"),
            canonical_query,
            "".join(f"{name}:{request.headers[name].strip()}\n" for name in signed_names),
            ";".join(signed_names),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/execute-api/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "execute-api", "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def run(api: FakeApi, **kwargs: Any) -> list[str]:
    lines: list[str] = []
    client = ApiClient(
        api_url=api.url,
        api_key=kwargs.pop("api_key", API_KEY),
        signer=kwargs.pop("signer", sigv4_signer(CREDENTIALS, REGION)),
    )
    options: dict[str, Any] = {"record": None, "predict_signed": False, "log_wait_seconds": 0}
    options.update(kwargs)
    smoke_test.run_checks(client, report=lines.append, sleep=lambda _: None, **options)
    return lines


def test_admin_routes_are_sigv4_signed_and_predict_routes_carry_the_api_key(
    api: FakeApi,
) -> None:
    lines = run(api)
    routes = [f"{r.method} {r.path}" for r in api.requests]
    assert routes == [
        "GET /prod/health",
        "GET /prod/openapi.json",
        "POST /prod/stream",
        "POST /prod/batch",
        "POST /prod/batch",
        "GET /prod/log",
    ]
    for request in api.requests:
        if request.path.endswith(("/stream", "/batch")):
            assert request.headers["x-api-key"] == API_KEY
            assert "authorization" not in request.headers
        else:
            assert "x-api-key" not in request.headers
            authorization = request.headers["authorization"]
            day = request.headers["x-amz-date"][:8]
            assert (
                f"Credential=AKIDEXAMPLE/{day}/{REGION}/execute-api/aws4_request" in authorization
            )
            signature = authorization.rsplit("Signature=", 1)[1]
            assert signature == expected_signature(
                request, secret=CREDENTIALS.secret_key, region=REGION
            )
    log_query = dict(parse_qsl(api.requests[-1].query))
    assert log_query.keys() == {"limit", "type", "since"}
    assert log_query["type"] == "prediction"
    assert [line.split(" (")[0] for line in lines] == [
        "ok GET /health",
        "ok GET /openapi.json",
        "ok POST /stream",
        "ok POST /batch",
        "ok POST /batch gzip",
        "ok GET /log",
    ]
    # Large batches pass API Gateway gzip-compressed, typed as a binary media type.
    plain, compressed = [r for r in api.requests if r.path.endswith("/batch")]
    assert plain.headers["content-type"] == "application/json"
    assert compressed.headers["content-type"] == "application/gzip"
    assert len(json.loads(gzip.decompress(compressed.body))["data"]) == 3


def test_predict_routes_are_signed_when_the_stage_uses_iam(api: FakeApi) -> None:
    run(api, api_key=None, predict_signed=True)
    stream = next(r for r in api.requests if r.path.endswith("/stream"))
    assert "x-api-key" not in stream.headers
    signature = stream.headers["authorization"].rsplit("Signature=", 1)[1]
    assert signature == expected_signature(stream, secret=CREDENTIALS.secret_key, region=REGION)


def test_the_record_comes_from_the_champions_openapi_schema(api: FakeApi) -> None:
    run(api)
    stream = next(r for r in api.requests if r.path.endswith("/stream"))
    assert json.loads(stream.body) == {"data": {"age": 0.0, "sex": "F", "bmi": 0.0}}
    batch = next(r for r in api.requests if r.path.endswith("/batch"))
    assert json.loads(batch.body) == {"data": [{"age": 0.0, "sex": "F", "bmi": 0.0}] * 2}


def test_a_given_record_skips_the_openapi_lookup(api: FakeApi) -> None:
    run(api, record={"x": 1})
    assert "GET /prod/openapi.json" not in [f"{r.method} {r.path}" for r in api.requests]


@pytest.mark.parametrize(
    ("route", "status", "payload", "message"),
    [
        (
            "POST /stream",
            503,
            {"error": {"code": "no_champion", "message": "no model yet", "details": None}},
            "POST /stream: HTTP 503: no_champion: no model yet",
        ),
        ("GET /health", 403, {"message": "Missing Authentication Token"}, "GET /health: HTTP 403"),
        ("POST /batch", 200, {"result": [1.0]}, "POST /batch: expected 2 results"),
        ("GET /log", 200, {"items": []}, "GET /log: expected a list of events"),
    ],
)
def test_failures_name_the_route(
    api: FakeApi, route: str, status: int, payload: Any, message: str
) -> None:
    api.overrides[route] = (status, payload)
    with pytest.raises(SmokeTestError, match=message):
        run(api)


def test_log_wait_passes_once_the_stream_request_is_logged(api: FakeApi) -> None:
    lines = run(api, log_wait_seconds=30)
    assert lines[-1].endswith("including request req-stream-1")


def test_log_wait_pages_past_newer_traffic(api: FakeApi) -> None:
    api.newer_traffic = 250  # the request is on the third page of 100
    lines = run(api, log_wait_seconds=30)
    assert lines[-1].endswith("including request req-stream-1")
    assert [dict(parse_qsl(r.query)).get("next") for r in api.requests[-3:]] == [None, "100", "200"]


def test_log_wait_fails_when_ingestion_never_delivers(api: FakeApi) -> None:
    api.overrides["GET /log"] = (200, {"result": [], "next": None})
    clock = iter(range(0, 10_000, 10))
    with pytest.raises(SmokeTestError, match="not logged within 30 s"):
        run(api, log_wait_seconds=30, clock=lambda: float(next(clock)))


def test_main_prints_one_line_and_exits_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.overrides["POST /stream"] = (415, {"error": {"code": "unsupported_media_type"}})
    code = smoke_test.main(["--api-url", api.url, "--unsigned", "--api-key", API_KEY])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == "smoke test failed: POST /stream: HTTP 415: unsupported_media_type: \n"
    assert "ok GET /health" in captured.out


def test_main_passes_against_a_healthy_api(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert smoke_test.main(["--api-url", api.url, "--unsigned", "--api-key", API_KEY]) == 0
    assert capsys.readouterr().out.strip().endswith("smoke test passed")


def test_unreachable_api_is_one_line() -> None:
    client = ApiClient(api_url="http://127.0.0.1:9/prod", api_key=None, signer=None)
    with pytest.raises(SmokeTestError, match="GET /health: cannot reach"):
        client.call("GET", "/health", signed=True)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--api-url", "ftp://x"], "must be an http(s) URL"),
        (["--api-url", "http://x", "--record", "[1, 2]"], "must be a JSON object"),
        (["--api-url", "http://x", "--record", "{"], "is not JSON"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        smoke_test.main(argv)
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_record_from_openapi_needs_a_record_schema() -> None:
    with pytest.raises(SmokeTestError, match="no object record schema"):
        record_from_openapi({"components": {"schemas": {}}})
