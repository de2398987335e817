"""What the deploy workflow needs to know about a stage before and after ``cdk deploy``.

python scripts/stage_state.py stack-output STACK OUTPUT_KEY
    Print the stack's output value. Exit 3 when the stack does not exist (a first
    deploy), 1 on any other error (AccessDenied, throttling, no network...): a failed
    lookup must never be mistaken for a new stage.

python scripts/stage_state.py code-deploy-failure STACK
    Print why the last update of the predict function's ``live`` alias failed, when
    CodeDeploy rolled a code deploy back; exit 1 if it did, 0 if not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STACK_ABSENT = 3


class StackAbsentError(Exception):
    pass


def stack_output(cloudformation: CloudFormationClient, stack: str, key: str) -> str | None:
    """The output's value (None if the stack has no such output).

    Raises :class:`StackAbsentError` only for CloudFormation's "does not exist" answer;
    every other error propagates.
    """
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise StackAbsentError(stack) from None
        raise
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == key:
            return output["OutputValue"]
    return None


def code_deploy_failure(cloudformation: CloudFormationClient, stack: str) -> str | None:
    """Why CodeDeploy rolled back the last update of the stack, if it did."""
    events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
    return rollback_reason(stack, [dict(event) for event in events])


def rollback_reason(stack: str, events: Sequence[Mapping[str, Any]]) -> str | None:
    """The reason of a failed ``AWS::Lambda::Alias`` update in the stack's last operation.

    ``events`` are newest first, as DescribeStackEvents returns them; the operation starts
    at the stack's own ``UPDATE_IN_PROGRESS``/``CREATE_IN_PROGRESS`` event.
    """
    for event in events:
        if (
            event.get("ResourceType") == "AWS::Lambda::Alias"
            and event.get("ResourceStatus") == "UPDATE_FAILED"
        ):
            return str(event.get("ResourceStatusReason") or "no reason given")
        if event.get("LogicalResourceId") == stack and event.get("ResourceStatus") in (
            "UPDATE_IN_PROGRESS",
            "CREATE_IN_PROGRESS",
        ):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stage_state.py", description=__doc__.split("\n")[0])
    parser.add_argument("--region", default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    output = commands.add_parser("stack-output")
    output.add_argument("stack")
    output.add_argument("key")
    failure = commands.add_parser("code-deploy-failure")
    failure.add_argument("stack")
    args = parser.parse_args(argv)
    try:
        if args.command == "stack-output":
            value = stack_output(
                boto3.client("cloudformation", region_name=args.region), args.stack, args.key
            )
            if value is None:
                print(f"stage_state: stack {args.stack} has no output {args.key}", file=sys.stderr)
                return 1
            print(value)
        else:
            reason = code_deploy_failure(
                boto3.client("cloudformation", region_name=args.region), args.stack
            )
            if reason is not None:
                print(f"the code deploy of the predict function was rolled back: {reason}")
                return 1
    except StackAbsentError as exc:
        print(f"stage_state: stack {exc} does not exist", file=sys.stderr)
        return STACK_ABSENT
    except (ClientError, BotoCoreError) as exc:
        print(f"stage_state: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
