"""One local run of the stack: the moto server, the emulated API and the steps over them
(:mod:`scripts.aws_local.harness` orders the steps and reports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from mlsys import names
from scripts.aws_local import events, template
from scripts.aws_local.processes import (
    HarnessError,
    Processes,
    container_of,
    container_output,
    docker_bridge_address,
    free_port,
    run_json,
    tool_environment,
    wait_until_answering,
)
from scripts.aws_local.resources import ACCOUNT, Created, create_resources, physical_name
from scripts.smoke_test import ApiClient, record_from_openapi, sigv4_signer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
"""moto accepts any credentials; SigV4 signing and boto3 need some."""
API_KEY = "local-api-key"
"""Sent as x-api-key like a client would; SAM does not check API keys (nor IAM)."""
CANARY_FRACTION = 0.5
CANARY_REQUESTS = 120
"""Requests per canary: ~60 per side, over the policy's 30 per side before it may judge."""
REFRESH_SECONDS = 10.0
SETTING_OVERRIDES = {
    "serving": {names.MODEL_REFRESH_SECONDS: f"{REFRESH_SECONDS:g}"},
    "evaluator": {names.ROLLOUT_MIN_BAKE_SECONDS: "0", names.ROLLOUT_MIN_REQUESTS: "30"},
}
"""Runtime settings the local run lowers, so that a promoted canary reaches the warm
containers within seconds (not 30 s) and may complete without a 15-minute bake; every
other setting is the synthesized template's.

Why not a 1-second refresh: a request that re-reads the champion pointer (and loads the
candidate) counts that time in its ``latency_ms``, and the policy's p99 rule compares the
two versions' latencies; over a canary of ~60 requests per side, the few requests that
pay for a refresh would decide p99 for whichever side they landed on. So each canary
waits out one refresh interval, primes the refresh with a ``POST /feedback`` (no
prediction or error event), and sends its traffic within the next interval."""


@dataclass
class Versions:
    champion: str = ""
    healthy: str = ""
    """Same schema as the champion: a canary of it has clean evidence."""
    failing: str = ""
    """Trained on other columns: every request it answers fails (400), so it errors."""


@dataclass
class LocalSession:
    synthesized: template.Template
    template_path: Path
    wiring: template.Wiring
    processes: Processes
    bundle: Path
    architecture: str
    tools_python: Path
    mlsys: Path
    work: Path
    region: str
    versions: Versions = field(default_factory=Versions)
    moto_url: str = ""
    created: Created | None = None
    derived: template.Template = field(default_factory=dict)
    api_url: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    shipped_lines: int = 0
    invocations: int = 0

    @classmethod
    @contextmanager
    def open(cls, *, template_path: Path, **options: Any) -> Iterator[LocalSession]:
        synthesized = json.loads(template_path.read_text())
        with Processes(options["work"]) as processes:
            yield cls(
                synthesized=synthesized,
                template_path=template_path,
                wiring=template.find_wiring(synthesized),
                processes=processes,
                **options,
            )

    # --- environments ----------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        return tool_environment(
            os.environ,
            **CREDENTIALS,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_EC2_METADATA_DISABLED="true",
            **extra,
        )

    def aws_env(self) -> dict[str, str]:
        """For the mlsys CLI and boto3 here: every AWS call goes to the moto server."""
        return self.env(AWS_ENDPOINT_URL=self.moto_url)

    def sam_env(self) -> dict[str, str]:
        # SAM asks STS for the account id; unanswered, that costs ~5 s per command.
        return self.env(AWS_ENDPOINT_URL_STS=self.moto_url, SAM_CLI_TELEMETRY="0")

    def client(self, service: str) -> Any:
        session = _session(self.region)
        return session.client(service, endpoint_url=self.moto_url)  # type: ignore[call-overload]

    # --- step 1 ----------------------------------------------------------------------
    def start_moto(self) -> None:
        host = docker_bridge_address()
        port = free_port(host)
        self.moto_url = f"http://{host}:{port}"
        moto = self.tools_python.with_name("moto_server")
        self.processes.start("moto", [str(moto), "-H", host, "-p", str(port)], env=self.env())
        wait_until_answering(
            f"{self.moto_url}/moto-api/", seconds=30, processes=self.processes, name="moto"
        )
        wanted = template.stateful_references(self.synthesized, self.wiring)
        self.created = create_resources(
            self.synthesized,
            wanted,
            stack=self.stack_name,
            region=self.region,
            session=_session(),
            endpoint_url=self.moto_url,
        )
        print(f"   moto server at {self.moto_url} (the docker bridge address)")
        for logical_id, name in self.created.physical.items():
            print(f"   {wanted[logical_id]} {logical_id}: {name}")

    @property
    def stack_name(self) -> str:
        """``mlsys-dev`` for ``mlsys-dev.template.json``, as ``cdk synth`` names it."""
        return self.template_path.name.removesuffix(".template.json")

    # --- step 2 ----------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """The predict function's resolved MLSYS_* settings: where training must write."""
        assert self.created is not None
        variables = template.Names.resolve(
            self.created.names,
            self.synthesized["Resources"][self.wiring.predict]["Properties"]["Environment"],
            where="predict Environment",
        )["Variables"]
        return {k: v for k, v in variables.items() if k.startswith(names.ENV_PREFIX)}

    def mlsys_command(self, *arguments: str) -> list[str]:
        settings = self.settings()
        return [
            str(self.mlsys),
            *arguments,
            "--registry",
            settings[names.REGISTRY_URI],
            "--log",
            settings[names.LOG_URI],
            "--model-name",
            settings[names.MODEL_NAME],
        ]

    def train(self, *options: str, what: str) -> dict[str, Any]:
        command = self.mlsys_command("train", "--models", "linear", "--json", *options)
        summary: dict[str, Any] = run_json(command, env=self.aws_env(), what=what)
        print(f"   {what}: {summary['version']} ({summary['code']}: {summary['reason'][:70]})")
        return summary

    def train_versions(self) -> None:
        champion = self.train(what="champion")
        if not champion.get("promoted"):
            raise HarnessError(f"the first training run was not promoted: {champion['reason']}")
        self.versions.champion = champion["version"]
        never = ("--min-improvement", "1000000")  # register only; rollouts start by hand
        self.versions.healthy = self.train("--seed", "1", *never, what="healthy candidate")[
            "version"
        ]
        data = self.work / "other-columns.csv"
        _write_other_columns(data)
        self.versions.failing = self.train(
            "--data", str(data), "--target", "progression", *never, what="failing candidate"
        )["version"]

    # --- step 3 ----------------------------------------------------------------------
    def derive(self) -> Path:
        assert self.created is not None
        serving = SETTING_OVERRIDES["serving"]
        evaluator, _ = self.wiring.evaluator
        overrides = {
            **{fn: serving for fn, svc in self.wiring.services.items() if svc == "inference"},
            evaluator: SETTING_OVERRIDES["evaluator"],
        }
        self.derived = template.derive_sam_template(
            self.synthesized,
            local_names=self.created.names,
            code_dir=str(self.bundle),
            architecture=self.architecture,
            environment={"AWS_ENDPOINT_URL": self.moto_url},
            overrides=overrides,
        )
        path = self.work / "template.json"
        path.write_text(template.dumps(self.derived))
        for rewrite in template.REWRITES:
            print(f"   derived: {rewrite}")
        print(f"   settings lowered for a quick run: {json.dumps(SETTING_OVERRIDES)}")
        return path

    def sam(self, *arguments: str) -> list[str]:
        return [str(self.tools_python), str(HERE / "sam_cli.py"), *arguments]

    def start_api(self) -> None:
        path = self.derive()
        port = free_port("127.0.0.1")
        self.api_url = f"http://127.0.0.1:{port}"
        command = self.sam(
            "local", "start-api", "-t", str(path), "--skip-pull-image",
            "--warm-containers", "LAZY", "--host", "127.0.0.1", "--port", str(port),
        )  # fmt: skip
        log = self.processes.start("sam-start-api", command, env=self.sam_env())
        # An unknown path is answered by the emulated gateway itself (403), no function.
        wait_until_answering(
            f"{self.api_url}/not-a-route", seconds=120, processes=self.processes,
            name="sam-start-api",
        )  # fmt: skip
        mounted = [line for line in log.read_text().splitlines() if line.startswith("Mounting")]
        for line in mounted:
            print(f"   {line}")
        self.record = record_from_openapi(self.api().call("GET", "/openapi.json", signed=True).body)

    def api(self) -> ApiClient:
        credentials = _session().get_credentials()
        assert credentials is not None
        signer = sigv4_signer(credentials.get_frozen_credentials(), self.region)
        return ApiClient(api_url=self.api_url, api_key=API_KEY, signer=signer)

    # --- steps 4 and 5 ---------------------------------------------------------------
    def smoke_test(self) -> None:
        command = [
            sys.executable,
            str(ROOT / "scripts" / "smoke_test.py"),
            "--api-url", self.api_url, "--api-key", API_KEY, "--region", self.region,
        ]  # fmt: skip
        result = subprocess.run(  # noqa: S603 - this repository's script
            command, env=self.env(), text=True, capture_output=True, check=False
        )
        for line in result.stdout.splitlines():
            print(f"   {line}")
        if result.returncode != 0:
            raise HarnessError(result.stderr.strip() or f"smoke test exited {result.returncode}")

    def invoke(self, function: str, event: Any, *, what: str) -> Any:
        """``sam local invoke`` of one function with ``event``; its JSON result."""
        self.invocations += 1
        path = self.work / f"event-{self.invocations:02d}-{what.replace(' ', '-')}.json"
        path.write_text(json.dumps(event))
        command = self.sam(
            "local", "invoke", function, "-t", str(self.work / "template.json"),
            "--skip-pull-image", "-e", str(path),
        )  # fmt: skip
        return run_json(command, env=self.sam_env(), what=f"sam local invoke {what}")

    def ship_predict_logs(self) -> list[dict[str, Any]]:
        """Deliver the predict function's new log lines that pass the subscription filter
        to the ingest function, as CloudWatch Logs would; the events they carried."""
        container = container_of(self.wiring.predict)
        lines = container_output(container)
        new, self.shipped_lines = lines[self.shipped_lines :], len(lines)
        selected = events.filtered(self.wiring.filter_pattern, new)
        if not selected:
            raise HarnessError("the predict function printed no line the subscription passes")
        subscription = _one_of(self.synthesized, template.SUBSCRIPTION_FILTER)
        event = events.subscription_event(
            selected,
            log_group=physical_name(self.stack_name, self._predict_log_group()),
            log_stream=f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{container[:32]}",
            filter_name=physical_name(self.stack_name, subscription),
            owner=ACCOUNT,
        )
        result = self.invoke(self.wiring.ingest, event, what="log ingest")
        carried = [json.loads(message)["mlsys_event"] for _, message in selected]
        if result != {"ingested": len(carried)}:
            raise HarnessError(f"log ingest answered {result}, expected {len(carried)} events")
        print(f"   {len(new)} new predict log lines, {len(selected)} pass "
              f"{self.wiring.filter_pattern}: ingested {result['ingested']}")  # fmt: skip
        return carried

    def _predict_log_group(self) -> str:
        properties = self.synthesized["Resources"][self.wiring.predict]["Properties"]
        return str(properties["LoggingConfig"]["LogGroup"]["Ref"])

    def ship_and_check_log(self) -> None:
        carried = self.ship_predict_logs()
        wanted = {e["request_id"] for e in carried if e["type"] == "prediction"}
        listed = self.logged_request_ids("prediction")
        missing = wanted - listed
        if not wanted or missing:
            raise HarnessError(f"GET /log misses predictions {sorted(missing)}")
        print(f"   GET /log?type=prediction lists all {len(wanted)} predictions shipped")

    def logged_request_ids(self, event_type: str) -> set[str]:
        query = {"type": event_type, "limit": "1000"}
        page = self.api().call("GET", "/log", query=query, signed=True).body
        return {str(e.get("request_id")) for e in page["result"]}

    # --- step 6 ----------------------------------------------------------------------
    def scheduled_event(self, function: str, rule: str) -> Any:
        assert self.created is not None
        local = self.created.names

        def resolve(value: Any) -> Any:
            return _resolve_with_functions(local, value, self.derived)

        return events.scheduled_event(
            self.synthesized["Resources"][rule]["Properties"],
            target_arn=_function_arn(function, self.region),
            resolve=resolve,
            account=ACCOUNT,
            region=self.region,
            rule_arn=f"arn:aws:events:{self.region}:{ACCOUNT}:rule/"
            + physical_name(self.stack_name, rule),
            now=datetime.now(UTC),
        )

    def run_monitor(self) -> None:
        function, rule = self.wiring.monitor
        result = self.invoke(function, self.scheduled_event(function, rule), what="monitor")
        report = str(result.get("report") or "")
        bucket, _, key = report.removeprefix("s3://").partition("/")
        try:
            head = self.client("s3").head_object(Bucket=bucket, Key=key)
        except Exception as error:
            raise HarnessError(
                f"the monitor's report {report!r} is not in the bucket: {error}"
            ) from None
        versions = [v["version"] for v in result.get("versions", [])]
        print(
            f"   monitor: {len(versions)} version(s) {versions}, champion {result.get('champion')}"
        )
        print(f"   report {report} ({head['ContentLength']} bytes, {head['ContentType']})")

    # --- steps 7 and 8 ---------------------------------------------------------------
    def canary(self, candidate: str, *, expect: str) -> None:
        before = self.champion()
        force = ("--force",) if candidate == self.versions.failing else ()
        promote = self.mlsys_command(
            "models", "promote", candidate, "--canary", str(CANARY_FRACTION),
            "--reason", f"aws-local-test: expect {expect}", *force, "--json",
        )  # fmt: skip
        run_json(promote, env=self.aws_env(), what="mlsys models promote --canary")
        time.sleep(REFRESH_SECONDS + 0.5)  # past the containers' refresh deadline
        self.prime_refresh()
        started = time.monotonic()
        tally = self.send_traffic(CANARY_REQUESTS)
        seconds = time.monotonic() - started
        answered = json.dumps(tally, sort_keys=True)
        print(f"   {CANARY_REQUESTS} POST /stream in {seconds:.1f} s: {answered}")
        if seconds >= REFRESH_SECONDS:
            print(f"   note: traffic outlasted the {REFRESH_SECONDS:g} s refresh interval")
        self.ship_predict_logs()
        function, rule = self.wiring.evaluator
        result = self.invoke(function, self.scheduled_event(function, rule), what="evaluator")
        self.check_verdict(result, expect=expect, before=before, candidate=candidate)

    def check_verdict(
        self, result: Mapping[str, Any], *, expect: str, before: str, candidate: str
    ) -> None:
        evidence = result.get("evidence") or {}
        for side in ("champion", "candidate"):
            print(f"   evidence, {side}: {json.dumps(evidence.get(side))}")
        print(f"   verdict: {result.get('action')}: {(result.get('verdict') or {}).get('reason')}")
        if result.get("action") != expect or not result.get("applied"):
            raise HarnessError(
                f"the evaluator decided {result.get('action')!r}, expected {expect!r}"
            )
        now = self.champion()
        wanted = candidate if expect == "complete" else before
        if now != wanted:
            raise HarnessError(f"champion is {now} after {expect}, expected {wanted}")
        print(f"   champion now {now}; alarm topic said: {self.notification(expect)}")

    def champion(self) -> str:
        shown = run_json(
            self.mlsys_command("models", "show", "champion", "--json"),
            env=self.aws_env(),
            what="mlsys models show champion",
        )
        return str(shown["card"]["version"])

    def prime_refresh(self) -> None:
        """One ``POST /feedback``: the predict container re-reads the pointer and loads
        the candidate now, in a request that is neither a prediction nor an error."""
        item = {"request_id": "aws-local-test-refresh", "actual": 0.0}
        reply = self.api().call("POST", "/feedback", payload={"data": [item]}, signed=False)
        if reply.body.get("result") != {"accepted": 1}:
            raise HarnessError(f"POST /feedback answered {reply.body}")

    def send_traffic(self, count: int) -> dict[str, int]:
        """``count`` POST /stream requests with a record of the champion's schema:
        {"<status> <model_version or error code>": requests}."""
        tally: dict[str, int] = {}
        body = json.dumps({"data": self.record}).encode()
        for _ in range(count):
            request = urllib.request.Request(  # noqa: S310 - the local emulated API
                f"{self.api_url}/stream",
                data=body,
                headers={"Content-Type": "application/json", "x-api-key": API_KEY},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
                    status, answer = reply.status, json.loads(reply.read())
            except urllib.error.HTTPError as error:
                status, answer = error.code, json.loads(error.read())
            label = answer.get("model_version") or answer.get("error", {}).get("code")
            key = f"{status} {label}"
            tally[key] = tally.get(key, 0) + 1
        return tally

    def notification(self, action: str) -> str:
        """The subject of the alarm topic's message about ``action`` (via its queue)."""
        assert self.created is not None
        assert self.created.notifications_queue_url is not None
        sqs = self.client("sqs")
        reply = sqs.receive_message(
            QueueUrl=self.created.notifications_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2
        )
        subjects = [
            str(json.loads(m["Body"]).get("Subject", "")) for m in reply.get("Messages", [])
        ]
        for message in reply.get("Messages", []):
            sqs.delete_message(
                QueueUrl=self.created.notifications_queue_url,
                ReceiptHandle=message["ReceiptHandle"],
            )
        found = [s for s in subjects if action in s]
        if not found:
            raise HarnessError(f"no {action} notification on the alarm topic (got {subjects})")
        return found[0]


def _session(region: str | None = None) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


def _function_arn(function: str, region: str) -> str:
    """SAM names each function by its logical ID."""
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function}"


def _resolve_with_functions(local: template.Names, value: Any, derived: template.Template) -> Any:
    functions = template.of_type(derived, template.FUNCTION)
    region = local.refs["AWS::Region"]
    attributes = {f"{fn}.Arn": _function_arn(fn, region) for fn in functions}
    return template.Names(refs=local.refs, attributes=attributes).resolve(value, where="schedule")


def _one_of(synthesized: template.Template, resource_type: str) -> str:
    (logical_id,) = template.of_type(synthesized, resource_type)
    return logical_id


def _write_other_columns(path: Path) -> None:
    """The diabetes data with half its feature columns: a model of it cannot answer a
    request made for the champion's schema."""
    from sklearn.datasets import load_diabetes  # noqa: PLC0415 - training dependency

    frame = load_diabetes(as_frame=True).frame
    frame = frame.rename(columns={"target": "progression"})
    frame[["age", "sex", "bmi", "bp", "s1", "progression"]].to_csv(path, index=False)
