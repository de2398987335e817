"""After `cdk deploy --all` onto LocalStack: which resources exist and which were only mocked.

    python -m scripts.deploy_localstack.report --localstack-python VENV/bin/python \\
        --stack mlsys-dev --stack mlsys-dev-ci

Each resource of each stack is put in one class, by what LocalStack has for its type (read
from the LocalStack virtualenv's plugin registry) and, where a check is known, by asking
the service for the resource itself:

* ``created``: LocalStack has a provider for the type and the service returns the resource;
* ``created, not checked``: LocalStack has a provider; no check is known for the type;
* ``recorded only``: a provider reported success but the service does not know the resource
  (or has no API in the community edition);
* ``mocked``: a record-only stand-in of scripts/deploy_localstack/plugins (no such service in
  the community edition);
* ``skipped``: no provider at all; LocalStack stores the resource without creating anything
  (``CFN_IGNORE_UNSUPPORTED_RESOURCE_TYPES``).

Prints one line per class and type, then the totals; exits 1 when a stack is not complete.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3

COMPLETE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")
REGISTRY = (
    "import json\n"
    "from importlib.metadata import entry_points\n"
    "import mlsys_localstack\n"
    "group = 'localstack.cloudformation.resource_providers'\n"
    "print(json.dumps({'providers': sorted(e.name for e in entry_points(group=group)),\n"
    "                  'mocked': sorted(mlsys_localstack.MOCKED)}))\n"
)

Check = Callable[[Any, str], object]


def _one_alarm(client: Any, name: str) -> object:
    if not client.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
        raise LookupError(name)
    return name


def _one_log_group(client: Any, name: str) -> object:
    groups = client.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    if not any(group["logGroupName"] == name for group in groups):
        raise LookupError(name)
    return name


CHECKS: Mapping[str, tuple[str, Check]] = {
    "AWS::S3::Bucket": ("s3", lambda c, p: c.head_bucket(Bucket=p)),
    "AWS::DynamoDB::Table": ("dynamodb", lambda c, p: c.describe_table(TableName=p)),
    "AWS::Lambda::Function": ("lambda", lambda c, p: c.get_function(FunctionName=p)),
    "AWS::ApiGateway::RestApi": ("apigateway", lambda c, p: c.get_rest_api(restApiId=p)),
    "AWS::SNS::Topic": ("sns", lambda c, p: c.get_topic_attributes(TopicArn=p)),
    "AWS::SQS::Queue": ("sqs", lambda c, p: c.get_queue_attributes(QueueUrl=p)),
    "AWS::IAM::Role": ("iam", lambda c, p: c.get_role(RoleName=p)),
    "AWS::IAM::ManagedPolicy": ("iam", lambda c, p: c.get_policy(PolicyArn=p)),
    "AWS::KMS::Key": ("kms", lambda c, p: c.describe_key(KeyId=p)),
    "AWS::Events::Rule": ("events", lambda c, p: c.describe_rule(Name=p.split("|")[-1])),
    "AWS::CloudWatch::Alarm": ("cloudwatch", _one_alarm),
    "AWS::Logs::LogGroup": ("logs", _one_log_group),
    "AWS::ECR::Repository": ("ecr", lambda c, p: c.describe_repositories(repositoryNames=[p])),
    "AWS::EC2::VPC": ("ec2", lambda c, p: c.describe_vpcs(VpcIds=[p])),
    "AWS::EC2::Subnet": ("ec2", lambda c, p: c.describe_subnets(SubnetIds=[p])),
    "AWS::EC2::SecurityGroup": ("ec2", lambda c, p: c.describe_security_groups(GroupIds=[p])),
}
"""How to ask each service for a resource, by type (the argument is the physical id)."""


def registry(localstack_python: str) -> tuple[set[str], set[str]]:
    """(types with a LocalStack resource provider, types mocked by our plugins)."""
    output = subprocess.run(  # noqa: S603 - the LocalStack virtualenv's interpreter
        [localstack_python, "-c", REGISTRY], capture_output=True, text=True, check=True
    ).stdout
    found = json.loads(output)
    return {name.lower() for name in found["providers"]}, set(found["mocked"])


def classify(
    resource: Mapping[str, Any],
    *,
    providers: set[str],
    mocked: set[str],
    exists: Callable[[str, str], bool | None],
) -> str:
    """One resource's class (see the module docstring); ``exists(type, physical id)`` asks
    its service, None when no check is known."""
    kind = str(resource["ResourceType"])
    if kind in mocked:
        return "mocked"
    if kind.lower() not in providers:
        return "skipped"
    found = exists(kind, str(resource.get("PhysicalResourceId") or ""))
    if found is None:
        return "created, not checked"
    return "created" if found else "recorded only"


def service_check(session: Any) -> Callable[[str, str], bool | None]:
    clients: dict[str, Any] = {}

    def exists(kind: str, physical_id: str) -> bool | None:
        if kind not in CHECKS:
            return None
        service, check = CHECKS[kind]
        client = clients.setdefault(service, session.client(service))
        try:
            check(client, physical_id)
        except Exception:  # any refusal means "not there"
            return False
        return True

    return exists


def report(
    stacks: Sequence[str], *, cloudformation: Any, classify_one: Callable[[dict[str, Any]], str]
) -> tuple[bool, Counter[tuple[str, str]]]:
    """(every stack complete, count by (class, type)) and one line per stack."""
    complete = True
    counts: Counter[tuple[str, str]] = Counter()
    for stack in stacks:
        status = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        paginator = cloudformation.get_paginator("list_stack_resources")
        resources = [r for page in paginator.paginate(StackName=stack)
                     for r in page["StackResourceSummaries"]]  # fmt: skip
        print(f"{stack}: {status}, {len(resources)} resources")
        complete = complete and status in COMPLETE
        for resource in resources:
            counts[(classify_one(resource), resource["ResourceType"])] += 1
    return complete, counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy_localstack.report", description=__doc__)
    parser.add_argument("--localstack-python", required=True)
    parser.add_argument("--stack", action="append", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    providers, mocked = registry(args.localstack_python)
    session = boto3.Session()
    exists = service_check(session)
    complete, counts = report(
        args.stack,
        cloudformation=session.client("cloudformation"),
        classify_one=lambda r: classify(r, providers=providers, mocked=mocked, exists=exists),
    )
    for (kind, resource_type), count in sorted(counts.items()):
        print(f"  {kind:22} {count:3} {resource_type}")
    totals = Counter[str]()
    for (kind, _), count in counts.items():
        totals[kind] += count
    print("in all: " + ", ".join(f"{count} {kind}" for kind, count in sorted(totals.items())))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
