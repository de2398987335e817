"""Create the stack's stateful resources in the moto server, as the template declares them.

Only what the functions and schedules refer to (:func:`template.stateful_references`): the
model-store bucket, the system-log table and the alarm topic. Each is created with the
template's own properties that change behaviour (key schema, TTL, versioning), under a
physical name shaped like CloudFormation's (``<stack>-<logicalid>-<suffix>``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scripts.aws_local.template import Names, Template

ACCOUNT = "123456789012"
"""moto's default account."""
PARTITION = "aws"
SUPPORTED = ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SNS::Topic")
TABLE_KEYS = (
    "KeySchema",
    "AttributeDefinitions",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)


@dataclass(frozen=True, kw_only=True)
class Created:
    """What :func:`create_resources` made: names for the template, and the queue that
    receives the alarm topic's notifications (so the harness can show them)."""

    names: Names
    physical: Mapping[str, str]
    notifications_queue_url: str | None


def physical_name(stack: str, logical_id: str, *, max_length: int = 63) -> str:
    """``<stack>-<logicalid>-<suffix>`` in lower case, as CloudFormation names buckets."""
    suffix = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12]
    head = f"{stack}-{logical_id}".lower()[: max_length - len(suffix) - 1]
    return f"{head}-{suffix}"


def create_resources(
    template: Template,
    wanted: Mapping[str, str],
    *,
    stack: str,
    region: str,
    session: Any,
    endpoint_url: str | None,
) -> Created:
    """Create each resource of ``wanted`` (logical ID -> type) in the moto server."""
    unsupported = sorted(f"{k} ({t})" for k, t in wanted.items() if t not in SUPPORTED)
    if unsupported:
        raise ValueError(f"no local stand-in for {', '.join(unsupported)}")

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url)

    refs = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": PARTITION,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack,
    }
    physical: dict[str, str] = {}
    queue_url = None
    for logical_id, resource_type in sorted(wanted.items()):
        properties = template["Resources"][logical_id].get("Properties", {})
        name = physical_name(stack, logical_id)
        if resource_type == "AWS::S3::Bucket":
            _bucket(client("s3"), name, properties)
            refs[logical_id] = physical[logical_id] = name
        elif resource_type == "AWS::DynamoDB::Table":
            _table(client("dynamodb"), name, properties)
            refs[logical_id] = physical[logical_id] = name
        else:
            arn, queue_url = _topic_with_queue(client("sns"), client("sqs"), name)
            refs[logical_id] = physical[logical_id] = arn
    return Created(
        names=Names(refs=refs, attributes={}), physical=physical, notifications_queue_url=queue_url
    )


def _bucket(s3: Any, name: str, properties: Mapping[str, Any]) -> None:
    s3.create_bucket(Bucket=name)
    status = properties.get("VersioningConfiguration", {}).get("Status")
    if status:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})


def _table(dynamodb: Any, name: str, properties: Mapping[str, Any]) -> None:
    arguments = {key: properties[key] for key in TABLE_KEYS if key in properties}
    dynamodb.create_table(TableName=name, **arguments)
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def _topic_with_queue(sns: Any, sqs: Any, name: str) -> tuple[str, str]:
    """The topic, and an SQS queue subscribed to it: moto keeps no record of what a topic
    published, a subscribed queue does."""
    arn = str(sns.create_topic(Name=name)["TopicArn"])
    queue_url = str(sqs.create_queue(QueueName=f"{name}-notifications")["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "false"},
    )
    return arn, queue_url
