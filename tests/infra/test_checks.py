"""Whole-app checks: cdk-nag (AWS Solutions), CDK annotations, cfn-lint.

(hadolint on training_job/Dockerfile runs in tests/unit/test_training_dockerfile.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.conftest import Assembly
from tests.infra.templates import actions, of_type

# W3005 (redundant DependsOn): CDK adds an explicit DependsOn on a function's role next
# to the Fn::GetAtt that already implies it; the duplicate ordering is harmless.
CFN_LINT_IGNORED = ("W3005",)


def describe(violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{v['ruleName']} at {r.get('constructPath')}"
        for v in violations
        for r in v.get("violatingConstructs", v.get("violatingResources", []))
    ]


def test_cdk_nag_aws_solutions_reports_no_unacknowledged_findings(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    for synthesized in (assembly, variant, minimal):
        assert describe(synthesized.nag_violations) == []
        assert synthesized.synth_error is None


def test_synthesis_raises_no_cdk_warnings_or_errors(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    assert assembly.annotations == []
    assert variant.annotations == []
    assert minimal.annotations == []


def test_synthesis_needs_no_aws_lookups_even_for_a_pinned_environment(
    assembly: Assembly, variant: Assembly
) -> None:
    # A missing context entry is a lookup the CDK CLI would make against AWS.
    assert assembly.missing_context == []
    assert variant.missing_context == []


def test_every_acknowledgment_is_one_finding_on_one_construct_with_a_reason(
    assembly: Assembly, minimal: Assembly
) -> None:
    # CDK acknowledges a few of its own template checks (e.g. on VPC flow logs); ours are
    # the AWS Solutions ones.
    ours = [
        a
        for synthesized in (assembly, minimal)
        for a in synthesized.acknowledgments
        if "AwsSolutions-" in a[1]
    ]
    assert ours
    for path, rule, reason in ours:
        # Never on a stack or a top-level construct, where it would cover everything below.
        assert path.count("/") >= 3, f"{rule} acknowledged too broadly at {path}"
        assert len(reason) >= 60, f"{rule} at {path} needs a specific reason"


def test_no_iam_policy_grants_wildcard_actions(assembly: Assembly) -> None:
    wildcards = [
        (stack, name, action)
        for stack, template in assembly.templates.items()
        for name, policy in of_type(template, "AWS::IAM::Policy").items()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in actions(statement)
        if "*" in action
    ]
    assert wildcards == []


def test_cfn_lint_finds_nothing_in_any_template(
    assembly: Assembly, variant: Assembly, minimal: Assembly
) -> None:
    templates = sorted(
        str(path)
        for synthesized in (assembly, variant, minimal)
        for path in synthesized.outdir.glob("*.template.json")
    )
    assert len(templates) == 6
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "json",
            "--ignore-checks",
            *CFN_LINT_IGNORED,
            "--",
            *templates,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert [
        f"{f['Level']} {f['Rule']['Id']} {f['Filename']}: {f['Message']}" for f in findings
    ] == []
    assert result.returncode == 0, result.stderr
