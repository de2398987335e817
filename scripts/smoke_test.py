"""Smoke-test a deployed (or local) mlsys API: the checks the deploy workflow runs.

    python scripts/smoke_test.py --api-url URL [--api-key KEY] [--region REGION]

1. ``GET /health`` (SigV4-signed): the API answers and names a champion.
2. ``GET /openapi.json`` (signed): the champion's record schema, from which a
   valid record is built (or pass ``--record '{"age": 0.1, ...}'``).
3. ``POST /stream`` and ``POST /batch`` with the API key (signed instead when no
   key is given, for stages whose predict routes use IAM), and ``POST /batch``
   again gzip-compressed as ``Content-Type: application/gzip``, the way large
   batches pass API Gateway (its ``binaryMediaTypes``).
4. ``GET /log`` (signed): answers a page of events; with ``--log-wait-seconds``
   it polls until the ``/stream`` request shows up, which proves the
   asynchronous CloudWatch Logs -> DynamoDB ingestion end to end.

Prints one line per check. On the first failure prints one line naming the
route and the API's error to stderr and exits 1 (2 for bad arguments), so a
workflow log says what broke without a stack trace.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

SIGV4_SERVICE = "execute-api"
GZIP_MEDIA_TYPE = "application/gzip"
"""How a gzip-compressed body passes API Gateway intact (lambda_inference.handler)."""
PREDICTION_EVENT = "prediction"
LOG_PAGE = 100
MAX_LOG_PAGES = 5


class SmokeTestError(Exception):
    """A check failed; ``str()`` is the one-line message for the workflow log."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    elapsed_ms: float


Signer = Callable[[str, str, bytes | None, Mapping[str, str]], dict[str, str]]
"""(method, final url, body, headers) -> headers with authentication added."""


def sigv4_signer(credentials: ReadOnlyCredentials, region: str) -> Signer:
    """Sign requests with SigV4 for API Gateway (``execute-api``) in ``region``."""

    def sign(
        method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, str]:
        # The query string is part of the signature, so ``url`` must be final.
        request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
        SigV4Auth(credentials, SIGV4_SERVICE, region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    return sign


class ApiClient:
    """Calls one API: IAM routes signed by ``signer`` (unsigned when it is None, as
    for a local ``mlsys serve``), the others with the API key when there is one."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str | None,
        signer: Signer | None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._api_key = api_key
        self._signer = signer
        self._timeout = timeout_seconds

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        payload: Any = None,
        signed: bool,
        compress: bool = False,
    ) -> Response:
        route = f"{method} {path}" + (" (gzip)" if compress else "")
        url = self._base + path
        if query:
            url += "?" + urllib.parse.urlencode(sorted(query.items()))
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = GZIP_MEDIA_TYPE if compress else "application/json"
            body = gzip.compress(body) if compress else body
        if signed and self._signer is not None:
            headers = self._signer(method, url, body, headers)
        elif not signed and self._api_key is not None:
            headers["x-api-key"] = self._api_key
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310 - URL scheme checked in parse_args
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as reply:  # noqa: S310
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SmokeTestError(f"{route}: cannot reach {self._base}: {reason}") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            snippet = raw[:200].decode(errors="replace")
            raise SmokeTestError(f"{route}: HTTP {status}, not JSON: {snippet!r}") from None
        if status != 200:
            raise SmokeTestError(f"{route}: HTTP {status}: {describe_error(parsed)}")
        return Response(status=status, body=parsed, elapsed_ms=elapsed_ms)


def describe_error(body: Any) -> str:
    """One line from the API's ``{"error": {...}}`` body (or API Gateway's ``message``)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code, message = error.get("code", "?"), error.get("message", "")
            return f"{code}: {message}"
        if "message" in body:  # API Gateway's own errors (403 missing key, 429 throttled)
            return str(body["message"])
    return json.dumps(body)[:200]


def example_value(prop: Mapping[str, Any]) -> Any:
    """A value the schema accepts: its example, first enum member, or a neutral one."""
    if "example" in prop:
        return prop["example"]
    if prop.get("enum"):
        return next((v for v in prop["enum"] if v is not None), None)
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        if isinstance(option, Mapping) and option.get("type") != "null":
            return example_value(option)
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return {"number": 0.0, "integer": 0, "string": "", "boolean": False}.get(str(kind))


def record_from_openapi(document: Mapping[str, Any]) -> dict[str, Any]:
    """Build one valid object record from the champion's OpenAPI record schema."""
    schemas = document.get("components", {}).get("schemas", {})
    candidates = [
        schema
        for name, schema in schemas.items()
        if "record" in name.lower() and schema.get("type") == "object" and schema.get("properties")
    ]
    if not candidates:
        raise SmokeTestError("GET /openapi.json: no object record schema under components.schemas")
    properties: Mapping[str, Mapping[str, Any]] = candidates[0]["properties"]
    return {name: example_value(prop) for name, prop in properties.items()}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SmokeTestError(message)


def run_checks(
    client: ApiClient,
    *,
    record: Mapping[str, Any] | None,
    predict_signed: bool,
    log_wait_seconds: float,
    report: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Run every check in order; raise :class:`SmokeTestError` on the first failure."""
    health = client.call("GET", "/health", signed=True)
    _require(isinstance(health.body, dict), "GET /health: expected a JSON object")
    report(f"ok GET /health ({health.elapsed_ms:.0f} ms): {json.dumps(health.body)}")

    if record is None:
        spec = client.call("GET", "/openapi.json", signed=True)
        _require(isinstance(spec.body, dict), "GET /openapi.json: expected a JSON object")
        record = record_from_openapi(spec.body)
        report(f"ok GET /openapi.json ({spec.elapsed_ms:.0f} ms): record {json.dumps(record)}")

    # Clock skew between this machine and AWS is tolerated by looking a few minutes back.
    since = (now() - timedelta(minutes=5)).isoformat(timespec="seconds").replace("+00:00", "Z")
    stream = client.call("POST", "/stream", payload={"data": record}, signed=predict_signed)
    body = stream.body
    _require(
        isinstance(body, dict) and "result" in body and bool(body.get("model_version")),
        f"POST /stream: expected result and model_version, got {json.dumps(body)[:200]}",
    )
    report(
        f"ok POST /stream ({stream.elapsed_ms:.0f} ms): result {json.dumps(body['result'])} "
        f"from model {body['model_version']}"
    )

    batch = client.call("POST", "/batch", payload={"data": [record, record]}, signed=predict_signed)
    results = batch.body.get("result") if isinstance(batch.body, dict) else None
    _require(
        isinstance(results, list) and len(results) == 2,
        f"POST /batch: expected 2 results, got {json.dumps(batch.body)[:200]}",
    )
    report(f"ok POST /batch ({batch.elapsed_ms:.0f} ms): 2 records")
    _check_gzip_batch(client, record=record, signed=predict_signed, report=report)

    wanted = body.get("request_id")
    deadline = clock() + log_wait_seconds
    while True:
        found, events, elapsed_ms = find_in_log(client, wanted, since=since)
        if log_wait_seconds <= 0 or found:
            break
        if clock() >= deadline:
            raise SmokeTestError(
                f"GET /log: the POST /stream request {wanted} was not logged within "
                f"{log_wait_seconds:g} s (is log ingestion working?)"
            )
        sleep(min(5.0, max(0.5, log_wait_seconds / 20)))
    found_text = "" if log_wait_seconds <= 0 else f", including request {wanted}"
    report(f"ok GET /log ({elapsed_ms:.0f} ms): {events} events{found_text}")


def _check_gzip_batch(
    client: ApiClient,
    *,
    record: Mapping[str, Any],
    signed: bool,
    report: Callable[[str], None],
) -> None:
    batch = client.call(
        "POST", "/batch", payload={"data": [record] * 3}, signed=signed, compress=True
    )
    results = batch.body.get("result") if isinstance(batch.body, dict) else None
    _require(
        isinstance(results, list) and len(results) == 3,
        f"POST /batch (gzip): expected 3 results, got {json.dumps(batch.body)[:200]}",
    )
    report(f"ok POST /batch gzip ({batch.elapsed_ms:.0f} ms): 3 records")


def find_in_log(client: ApiClient, request_id: Any, *, since: str) -> tuple[bool, int, float]:
    """Page through recent prediction events looking for ``request_id``.

    Returns (found, events on the first page, first page latency). ``since``
    keeps a busy log from burying the request under newer traffic.
    """
    query = {"limit": str(LOG_PAGE), "type": PREDICTION_EVENT, "since": since}
    first_count, first_ms = 0, 0.0
    for page in range(MAX_LOG_PAGES):
        log = client.call("GET", "/log", query=query, signed=True)
        events = log.body.get("result") if isinstance(log.body, dict) else None
        if not isinstance(events, list):
            raise SmokeTestError(
                f"GET /log: expected a list of events, got {json.dumps(log.body)[:200]}"
            )
        if page == 0:
            first_count, first_ms = len(events), log.elapsed_ms
        if any(isinstance(e, dict) and e.get("request_id") == request_id for e in events):
            return True, first_count, first_ms
        token = log.body.get("next")
        if not token:
            break
        query = {**query, "next": str(token)}
    return False, first_count, first_ms


def aws_credentials(region: str) -> ReadOnlyCredentials | None:
    """The default AWS credential chain (env, profile, OIDC web identity, instance role)."""
    import boto3  # noqa: PLC0415 - only needed against a real deployment

    found = boto3.Session(region_name=region).get_credentials()
    return None if found is None else found.get_frozen_credentials()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smoke_test", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--api-url", required=True, help="stage URL, e.g. https://...amazonaws.com/prod"
    )
    parser.add_argument("--api-key", help="API key for POST /stream and /batch (omit: SigV4)")
    parser.add_argument("--region", default="us-east-1", help="region for SigV4 signing")
    parser.add_argument("--record", help="JSON object record to predict (default: from OpenAPI)")
    parser.add_argument(
        "--log-wait-seconds",
        type=float,
        default=0.0,
        help="poll GET /log until the /stream request appears (async ingestion lag)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument(
        "--unsigned",
        action="store_true",
        help="send no SigV4 signature (a local `mlsys serve`, which has no IAM)",
    )
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.api_url).scheme not in {"http", "https"}:
        parser.error(f"--api-url must be an http(s) URL, got {args.api_url!r}")
    if args.record is not None:
        try:
            args.record = json.loads(args.record)
        except ValueError as exc:
            parser.error(f"--record is not JSON: {exc}")
        if not isinstance(args.record, dict):
            parser.error("--record must be a JSON object keyed by feature name")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        signer = None
        if not args.unsigned:
            credentials = aws_credentials(args.region)
            if credentials is None:
                raise SmokeTestError("no AWS credentials found to sign IAM-authorised requests")
            signer = sigv4_signer(credentials, args.region)
        client = ApiClient(
            api_url=args.api_url, api_key=args.api_key, signer=signer, timeout_seconds=args.timeout
        )
        run_checks(
            client,
            record=args.record,
            predict_signed=args.api_key is None,
            log_wait_seconds=args.log_wait_seconds,
            report=print,
        )
    except SmokeTestError as exc:
        print(f"smoke test failed: {exc}", file=sys.stderr)
        return 1
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
