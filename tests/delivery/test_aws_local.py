"""The pure parts of `make aws-local-test` (scripts/aws_local/), offline and without Docker:
the events it hands the functions, the resources it creates in moto, the SAM fixes, and
that `make test` never needs Docker while CI runs the target."""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts.aws_local import events, processes, resources, sam_cli
from scripts.aws_local.template import Names

ROOT = Path(__file__).resolve().parents[2]
PATTERN = '{ $.mlsys_event.type = "*" }'
EVENT_LINE = json.dumps(
    {"service": "inference", "mlsys_event": {"id": "1", "type": "prediction", "request_id": "r"}}
)
POWERTOOLS_LINE = json.dumps({"level": "INFO", "message": "model loaded", "service": "inference"})


def test_the_subscription_filter_passes_event_lines_only() -> None:
    assert events.matches_filter_pattern(PATTERN, EVENT_LINE)
    assert not events.matches_filter_pattern(PATTERN, POWERTOOLS_LINE)
    assert not events.matches_filter_pattern(PATTERN, "START RequestId: 1 Version: $LATEST")
    assert not events.matches_filter_pattern(PATTERN, '{"mlsys_event": {"type": 3}}')
    assert events.matches_filter_pattern('{ $.mlsys_event.type = "pred*" }', EVENT_LINE)
    assert not events.matches_filter_pattern('{ $.mlsys_event.type = "error" }', EVENT_LINE)
    assert events.matches_filter_pattern('{ $.mlsys_event.type != "error" }', EVENT_LINE)
    stamped = [(1, "START"), (2, EVENT_LINE), (3, POWERTOOLS_LINE)]
    assert events.filtered(PATTERN, stamped) == [(2, EVENT_LINE)]


@pytest.mark.parametrize(
    "pattern",
    ['{ $.a = "x" && $.b = "y" }', "ERROR", "{ $.latency > 5 }", "[ip, user, ...]"],
)
def test_a_filter_pattern_it_cannot_evaluate_is_refused(pattern: str) -> None:
    with pytest.raises(events.FilterPatternError):
        events.matches_filter_pattern(pattern, EVENT_LINE)


def test_the_subscription_event_is_what_cloudwatch_logs_sends() -> None:
    event = events.subscription_event(
        [(1764387000000, EVENT_LINE), (1764387000005, "second")],
        log_group="mlsys-dev-servingpredictlogs-abc",
        log_stream="2026/12/03/[$LATEST]0123",
        filter_name="mlsys-dev-servingpredictevents-def",
        owner="123456789012",
    )
    assert set(event) == {"awslogs"}
    message = events.read_subscription_event(event)
    assert message["messageType"] == "DATA_MESSAGE"
    assert message["subscriptionFilters"] == ["mlsys-dev-servingpredictevents-def"]
    assert [e["message"] for e in message["logEvents"]] == [EVENT_LINE, "second"]
    assert [e["timestamp"] for e in message["logEvents"]] == [1764387000000, 1764387000005]
    ids = [e["id"] for e in message["logEvents"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 2
    assert all(i.isdigit() for i in ids)


def test_scheduled_events_follow_the_rule_target() -> None:
    names = Names(refs={"Bucket": "b"}, attributes={"Fn.Arn": "arn:fn"})

    def resolve(value: Any) -> Any:
        return names.resolve(value, where="rule")

    now = datetime(2026, 12, 3, 1, 2, 3, tzinfo=UTC)
    with_input = {
        "Targets": [
            {
                "Arn": {"Fn::GetAtt": ["Fn", "Arn"]},
                "Input": {"Fn::Join": ["", ['{"reports_uri": "s3://', {"Ref": "Bucket"}, '"}']]},
            }
        ]
    }
    common = {"account": "1", "region": "eu-west-1", "rule_arn": "arn:rule", "now": now}
    assert events.scheduled_event(with_input, target_arn="arn:fn", resolve=resolve, **common) == {
        "reports_uri": "s3://b"
    }
    plain = {"Targets": [{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}}]}
    envelope = events.scheduled_event(plain, target_arn="arn:fn", resolve=resolve, **common)
    assert envelope["detail-type"] == "Scheduled Event"
    assert envelope["source"] == "aws.events"
    assert envelope["resources"] == ["arn:rule"]
    assert envelope["time"] == "2026-12-03T01:02:03Z"
    assert (envelope["account"], envelope["region"], envelope["detail"]) == ("1", "eu-west-1", {})
    transformed = {"Targets": [{"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "InputTransformer": {}}]}
    with pytest.raises(ValueError, match="InputTransformer"):
        events.scheduled_event(transformed, target_arn="arn:fn", resolve=resolve, **common)
    with pytest.raises(ValueError, match="0 targets"):
        events.scheduled_event(plain, target_arn="arn:other", resolve=resolve, **common)


def test_docker_log_timestamps_become_log_event_times() -> None:
    assert processes._stamped('2026-12-03T01:19:11.368072824Z {"a": 1}') == (
        1796260751368,
        '{"a": 1}',
    )
    assert processes._stamped("2026-12-03T01:19:11Z START") == (1796260751000, "START")


class FrozenContext:
    """Shaped like SAM's RequestContext: defaults evaluated once, at definition."""

    def __init__(
        self,
        request_id: str = str(uuid.uuid4()),
        request_time_epoch: int = 1,
        request_time: str = "01/Jan/1970:00:00:00 +0000",
    ) -> None:
        self.request_id = request_id
        self.request_time_epoch = request_time_epoch
        self.request_time = request_time


def test_each_emulated_request_gets_its_own_id_and_time() -> None:
    frozen = FrozenContext().request_id
    assert FrozenContext().request_id == frozen  # the emulator's bug, reproduced
    sam_cli.fresh_request_context(FrozenContext)
    first, second = FrozenContext(), FrozenContext()
    assert len({first.request_id, second.request_id, frozen}) == 3
    assert first.request_time_epoch > 1_700_000_000_000
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000", first.request_time)
    assert FrozenContext(request_id="given").request_id == "given"


class Container:
    seen: list[bytes] = []

    @staticmethod
    def _handle_data_writing(output_stream: Any, output_data: bytes, event: Any) -> None:
        Container.seen.append(output_data)
        if re.match(rb"(.*\s)?REPORT RequestId:", output_data) and event:
            event.set()  # SAM's check: at most one line before REPORT


def test_the_end_of_an_invocation_is_seen_wherever_report_is_in_the_chunk() -> None:
    chunk = b'{"mlsys_event": {}}\nEND RequestId: 1\nREPORT RequestId: 1\tDuration: 1 ms\n'
    before = threading.Event()
    Container._handle_data_writing(None, chunk, before)
    assert not before.is_set()  # SAM alone would now wait a second
    sam_cli.report_anywhere(Container)
    after = threading.Event()
    Container._handle_data_writing(None, chunk, after)
    assert after.is_set()
    assert Container.seen == [chunk, chunk]
    quiet = threading.Event()
    Container._handle_data_writing(None, b"START RequestId: 2\n", quiet)
    assert not quiet.is_set()


def test_physical_names_are_shaped_like_cloudformations() -> None:
    name = resources.physical_name("mlsys-dev", "ModelStoreBucket")
    assert re.fullmatch(r"mlsys-dev-modelstorebucket-[0-9a-f]{12}", name)
    assert resources.physical_name("mlsys-dev", "ModelStoreBucket") == name
    assert len(resources.physical_name("s" * 80, "L" * 80)) == 63


STACK_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "DeletionProtectionEnabled": True,
            },
        },
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
    }
}


@mock_aws
def test_the_stacks_resources_are_created_as_declared(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    wanted = {
        "Bucket": "AWS::S3::Bucket",
        "Table": "AWS::DynamoDB::Table",
        "Topic": "AWS::SNS::Topic",
    }
    created = resources.create_resources(
        STACK_TEMPLATE, wanted, stack="mlsys-dev", region="us-east-1",
        session=boto3.Session(), endpoint_url=None,
    )  # fmt: skip
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = created.physical["Bucket"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = dynamodb.describe_table(TableName=created.physical["Table"])["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    ttl = dynamodb.describe_time_to_live(TableName=created.physical["Table"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert created.names.refs["Topic"].startswith("arn:aws:sns:us-east-1:123456789012:")
    assert created.names.resolve({"Ref": "Bucket"}, where="t") == bucket
    sns = boto3.client("sns", region_name="us-east-1")
    sns.publish(TopicArn=created.names.refs["Topic"], Subject="mlsys rollout abort", Message="m")
    sqs = boto3.client("sqs", region_name="us-east-1")
    received = sqs.receive_message(QueueUrl=created.notifications_queue_url)["Messages"]
    assert json.loads(received[0]["Body"])["Subject"] == "mlsys rollout abort"
    with pytest.raises(ValueError, match=r"no local stand-in for Key \(AWS::KMS::Key\)"):
        resources.create_resources(
            STACK_TEMPLATE, {"Key": "AWS::KMS::Key"}, stack="s", region="us-east-1",
            session=boto3.Session(), endpoint_url=None,
        )  # fmt: skip


def prerequisites(makefile: str, target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}:([^\n]*)$", makefile, flags=re.MULTILINE)
    assert match is not None, target
    return match.group(1).split()


def test_make_test_needs_no_docker_and_ci_runs_the_emulator() -> None:
    makefile = (ROOT / "Makefile").read_text()
    reachable: set[str] = set()
    pending = ["test"]
    while pending:
        target = pending.pop()
        if target in reachable or not re.search(rf"^{re.escape(target)}:", makefile, re.M):
            continue
        reachable.add(target)
        pending.extend(prerequisites(makefile, target))
    assert "aws-local-test" not in reachable
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line.strip() for line in ci if line.strip().startswith("make ")]
    assert commands.index("make test") < commands.index("make aws-local-test")
    recipe = makefile.split("\naws-local-test:", 1)[1].split("\n\n", 1)[0]
    assert "cdk synth" in recipe
    assert "--no-staging" in recipe
    assert "scripts/aws_local_test.sh" in recipe
