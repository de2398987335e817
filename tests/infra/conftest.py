"""Synthesise the CDK app once per test run and share the result across xdist workers.

CDK synthesis goes through jsii (a Node.js process) and takes several seconds on a
2-core machine, so every infrastructure test reads the same cloud assembly: the first
worker synthesises under a file lock, the others wait and read the files it wrote.
The app is built by ``app.configure`` -- the code ``cdk synth`` runs -- with the real
Lambda bundle from ``make lambda-package``.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

# jsii warns on every start when the host's Node.js major version is past end-of-life;
# the warning is about the machine, not the app, and would flood the test output. Set
# before any test module imports aws_cdk (which starts jsii).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

ROOT = Path(__file__).resolve().parents[2]
MAIN_STACK = "mlsys-dev"
CI_STACK = "mlsys-dev-ci"
TEST_REPOSITORY = "mlsys-example/mlsys"
"""What a user puts in cdk.json's github_repository (the placeholder there is refused)."""

# A second configuration exercising the other branch of every context switch.
VARIANT_CONTEXT: Mapping[str, object] = {
    "stage": "prod",
    "account": "123456789012",
    "region": "eu-west-1",
    "predict_auth": "iam",
    # A quota-raised account: a warm pool, autoscaled, under a reserved cap; an autoscaled
    # pool deploys all at once (Lambda refuses pool changes while a canary weights the alias).
    "provisioned_concurrency_min": 2,
    "reserved_concurrency": 20,
    "predict_deployment": "LambdaAllAtOnce",
    "log_inputs": "digest",
    "training_image_tag": "v1.2.3",
    "training_schedule": "",
    "training_on_upload": False,
    "training_spot": False,
    "training_target": "price in EUR",
    "training_job_vcpus": 8,
    "training_job_memory_mib": 30720,
    "training_max_fit_rows": 20_000_000,
    "alarm_email": "ops@example.com",
    "monitor_retrain_on_alarm": True,
    "monitor_schedule": "rate(6 hours)",
    "monitor_window_minutes": 360,
    "github_oidc_provider": (
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    ),
}
VARIANT_STACK = "mlsys-prod"
VARIANT_CI_STACK = "mlsys-prod-ci"

# The idle-cost option, on a second stage of an account that already has the provider.
MINIMAL_CONTEXT: Mapping[str, object] = {
    "stage": "sandbox",
    "minimal_idle_cost": True,
    "github_oidc_provider": "existing",
}
MINIMAL_STACK = "mlsys-sandbox"
MINIMAL_CI_STACK = "mlsys-sandbox-ci"


@dataclass(frozen=True)
class Assembly:
    """What one synthesis produced, as plain data."""

    outdir: Path
    templates: Mapping[str, dict[str, Any]]
    synth_error: str | None
    nag_violations: list[dict[str, Any]]
    annotations: list[str]
    infos: list[str]
    acknowledgments: list[tuple[str, str, str]]  # (construct path, rule id, reason)
    missing_context: list[Any]
    seconds: float

    def resources(self, stack: str, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.templates[stack]["Resources"].items()
            if resource["Type"] == resource_type
        }


def _synthesize(outdir: Path, overrides: Mapping[str, object]) -> None:
    # Imported here: importing aws_cdk starts jsii (a Node.js process).
    from aws_cdk import App  # noqa: PLC0415

    import app as cdk_app  # noqa: PLC0415

    started = time.perf_counter()
    context = {
        **cdk_app.cdk_json_context(),
        # Reference the Lambda bundle in place instead of copying ~120 MB into every
        # assembly; the asset hash, and so the template, is the same.
        "aws:cdk:disable-asset-staging": True,
        "github_repository": TEST_REPOSITORY,
        **overrides,
    }
    app = App(context=context, outdir=str(outdir))
    cdk_app.configure(app)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag failures surface as jsii RuntimeErrors
        error = str(exc)
    result = {"synth_error": error, "seconds": time.perf_counter() - started}
    (outdir / "result.json").write_text(json.dumps(result))


def _load(outdir: Path) -> Assembly:
    result = json.loads((outdir / "result.json").read_text())
    manifest = json.loads((outdir / "manifest.json").read_text())
    templates: dict[str, dict[str, Any]] = {}
    annotations: list[str] = []
    infos: list[str] = []
    acknowledgments: list[tuple[str, str, str]] = []
    missing = list(manifest.get("missing", []))
    for name, artifact in manifest["artifacts"].items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        templates[name] = json.loads((outdir / f"{name}.template.json").read_text())
        metadata = dict(artifact.get("metadata", {}))
        metadata_file = outdir / f"{name}.metadata.json"
        if metadata_file.exists():
            metadata.update(json.loads(metadata_file.read_text()))
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] in ("aws:cdk:warning", "aws:cdk:error"):
                    annotations.append(f"{entry['type']} at {path}: {entry['data']}")
                elif entry["type"] == "aws:cdk:info":
                    infos.append(f"{path}: {entry['data']}")
                elif entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        acknowledgments.append((path, rule, reason))
    report_file = outdir / "validation-report.json"
    violations: list[dict[str, Any]] = []
    if report_file.exists():
        for plugin in json.loads(report_file.read_text()).get("pluginReports", []):
            violations.extend(plugin.get("violations", []))
    return Assembly(
        outdir=outdir,
        templates=templates,
        synth_error=result["synth_error"],
        nag_violations=violations,
        annotations=annotations,
        infos=infos,
        acknowledgments=acknowledgments,
        missing_context=missing,
        seconds=result["seconds"],
    )


def _shared_assembly(
    tmp_path_factory: pytest.TempPathFactory, name: str, overrides: Mapping[str, object]
) -> Assembly:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:  # no xdist: nothing to share
        outdir = tmp_path_factory.mktemp(name)
        _synthesize(outdir, overrides)
        return _load(outdir)
    # Under xdist every worker of this run sees the same directory (keyed by run id,
    # so a stale assembly from an earlier run is never reused).
    shared = tmp_path_factory.getbasetemp().parent / f"mlsys-infra-{run_id}"
    shared.mkdir(exist_ok=True)
    outdir = shared / name
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (outdir / "result.json").exists():
                outdir.mkdir(exist_ok=True)
                _synthesize(outdir, overrides)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _load(outdir)


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The app synthesised with cdk.json's defaults."""
    return _shared_assembly(tmp_path_factory, "default", {})


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The app synthesised with :data:`VARIANT_CONTEXT`."""
    return _shared_assembly(tmp_path_factory, "variant", VARIANT_CONTEXT)


@pytest.fixture(scope="session")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    """The app synthesised with :data:`MINIMAL_CONTEXT`."""
    return _shared_assembly(tmp_path_factory, "minimal", MINIMAL_CONTEXT)


@pytest.fixture(scope="session")
def main_template(assembly: Assembly) -> dict[str, Any]:
    return assembly.templates[MAIN_STACK]


@pytest.fixture(scope="session")
def ci_template(assembly: Assembly) -> dict[str, Any]:
    return assembly.templates[CI_STACK]


@pytest.fixture(scope="session")
def main(main_template: dict[str, Any]) -> Template:
    """``aws_cdk.assertions.Template`` over the system stack."""
    from aws_cdk.assertions import Template  # noqa: PLC0415 (starts jsii)

    return Template.from_json(main_template)


@pytest.fixture(scope="session")
def ci(ci_template: dict[str, Any]) -> Template:
    """``aws_cdk.assertions.Template`` over the CI-access stack."""
    from aws_cdk.assertions import Template  # noqa: PLC0415 (starts jsii)

    return Template.from_json(ci_template)
