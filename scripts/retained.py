"""What `cdk destroy` leaves behind, and how to remove it (`make destroy` runs this twice).

    python scripts/retained.py record --template-dir DIR --stack mlsys-dev ... > retained.json
    python scripts/retained.py show retained.json

``record`` (before the destroy, while the stacks exist) reads the synthesized templates for
resources CloudFormation keeps on delete (``DeletionPolicy: Retain``: the model store and
its access-log bucket, the system-log table, the image repository, the API Gateway
logging role and account setting, the GitHub OIDC provider) and asks CloudFormation for
their physical ids. ``show`` prints each with the command that removes it, and what the
services create outside any template (API Gateway's execution log group). Data is never
deleted here: a retained bucket or table holds models and the system log, so removing it
is a decision for a person.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

RETAINED_POLICIES = ("Retain", "RetainExceptOnCreate")

REMOVAL: Mapping[str, str] = {
    "AWS::S3::Bucket": (
        "python -c \"import boto3; b = boto3.resource('s3').Bucket('{id}'); "
        'b.object_versions.delete(); b.delete()"  # every version of every object, then the bucket'
    ),
    "AWS::DynamoDB::Table": (
        "aws dynamodb update-table --table-name {id} --no-deletion-protection-enabled && "
        "aws dynamodb delete-table --table-name {id}"
    ),
    "AWS::ECR::Repository": "aws ecr delete-repository --repository-name {id} --force",
    "AWS::KMS::Key": "aws kms schedule-key-deletion --key-id {id} --pending-window-in-days 7",
    "AWS::IAM::Role": (
        "# shared by every REST API of the account and region: only if none logs any more\n"
        "    aws apigateway update-account --patch-operations "
        "op=replace,path=/cloudwatchRoleArn,value='' && "
        "aws iam detach-role-policy --role-name {id} --policy-arn "
        "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs && "
        "aws iam delete-role --role-name {id}"
    ),
    "AWS::ApiGateway::Account": "# an account-wide setting, not a resource: nothing to remove",
    "AWS::IAM::OIDCProvider": (
        "# shared by every stage (and any other project) of the account: only if none uses it\n"
        "    aws iam delete-open-id-connect-provider --open-id-connect-provider-arn {id}"
    ),
}
"""Per type, the command that removes a retained resource (``{id}``: its physical id)."""

OUTSIDE_TEMPLATES = (
    (
        "API Gateway's execution logs (created by API Gateway, in no template)",
        'aws logs delete-log-group --log-group-name "API-Gateway-Execution-Logs_<api id>/<stage>"',
    ),
    (
        "the CDK bootstrap stack, shared by every CDK app of the account and region",
        "aws cloudformation delete-stack --stack-name CDKToolkit  # only if no CDK app is left",
    ),
)


def retained_resources(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical ID -> type of the resources a stack delete leaves in place."""
    return {
        logical_id: str(resource["Type"])
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("DeletionPolicy") in RETAINED_POLICIES
    }


def record(
    template_dir: Path, stacks: Sequence[str], *, cloudformation: Any
) -> list[dict[str, str]]:
    """The retained resources of ``stacks`` with their physical ids (stacks that do not
    exist are skipped: nothing of theirs is left)."""
    found: list[dict[str, str]] = []
    for stack in stacks:
        template = json.loads((template_dir / f"{stack}.template.json").read_text())
        wanted = retained_resources(template)
        if not wanted:
            continue
        try:
            pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
            summaries = [r for page in pages for r in page["StackResourceSummaries"]]
        except ClientError as error:
            if "does not exist" in str(error):
                continue  # never deployed, or already gone: nothing of it is left
            raise
        for resource in summaries:
            if resource["LogicalResourceId"] in wanted and resource.get("PhysicalResourceId"):
                found.append(
                    {
                        "stack": stack,
                        "logical_id": resource["LogicalResourceId"],
                        "type": wanted[resource["LogicalResourceId"]],
                        "physical_id": resource["PhysicalResourceId"],
                    }
                )
    return found


def show(resources: Sequence[Mapping[str, str]]) -> list[str]:
    """The lines ``make destroy`` prints after the stacks are gone."""
    lines = ["Kept by the stacks' DeletionPolicy (data and shared settings):"]
    if not resources:
        lines.append("  nothing (no stack existed)")
    for resource in resources:
        command = REMOVAL.get(resource["type"], "# see the AWS console").format(
            id=resource["physical_id"]
        )
        lines.append(f"  {resource['type']} {resource['physical_id']} ({resource['stack']})")
        lines.append(f"    {command}")
    lines.append("Created by AWS outside the templates:")
    for what, command in OUTSIDE_TEMPLATES:
        lines.extend([f"  {what}", f"    {command}"])
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retained.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record")
    recording.add_argument("--template-dir", type=Path, required=True)
    recording.add_argument("--stack", action="append", required=True)
    showing = commands.add_parser("show")
    showing.add_argument("file", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "record":
        import boto3  # noqa: PLC0415 - only against a real deployment

        found = record(args.template_dir, args.stack, cloudformation=boto3.client("cloudformation"))
        print(json.dumps(found, indent=1))
        return 0
    print("\n".join(show(json.loads(args.file.read_text()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
