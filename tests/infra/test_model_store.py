"""ModelStore and SystemLog: the stateful resources."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra.model_store import (
    ACCESS_LOG_BUCKET_LOGICAL_ID,
    BUCKET_LOGICAL_ID,
    REPOSITORY_LOGICAL_ID,
)
from infra.system_log import TABLE_LOGICAL_ID
from tests.infra.templates import of_type

# Changing one of these makes CloudFormation replace (delete) the resource and its data.
PINNED = {
    "ModelStoreBucket": "AWS::S3::Bucket",
    "ModelStoreAccessLogs": "AWS::S3::Bucket",
    "TrainingImageRepository": "AWS::ECR::Repository",
    "SystemLogTable": "AWS::DynamoDB::Table",
}

# Properties that would give a resource a fixed physical name (breaks multi-stage deploys
# and replacement). RestApi's Name is a label, not an identifier.
PHYSICAL_NAME_PROPERTIES = {
    "BucketName",
    "TableName",
    "FunctionName",
    "RoleName",
    "RepositoryName",
    "TopicName",
    "LogGroupName",
    "DashboardName",
    "AlarmName",
    "JobQueueName",
    "JobDefinitionName",
    "ComputeEnvironmentName",
    "ManagedPolicyName",
    "KeyAlias",
}


def test_logical_ids_of_stateful_resources_are_pinned(main_template: dict[str, Any]) -> None:
    assert tuple(PINNED) == (
        BUCKET_LOGICAL_ID,
        ACCESS_LOG_BUCKET_LOGICAL_ID,
        REPOSITORY_LOGICAL_ID,
        TABLE_LOGICAL_ID,
    )
    for logical_id, resource_type in PINNED.items():
        resource = main_template["Resources"][logical_id]
        assert resource["Type"] == resource_type
        assert resource["DeletionPolicy"] == "Retain", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id


def test_no_resource_has_a_physical_name(
    main_template: dict[str, Any], ci_template: dict[str, Any]
) -> None:
    # A literal string is a fixed name; a Ref/GetAtt merely points at another resource.
    named = [
        (resource["Type"], key, value)
        for template in (main_template, ci_template)
        for resource in template["Resources"].values()
        for key, value in resource.get("Properties", {}).items()
        if key in PHYSICAL_NAME_PROPERTIES and isinstance(value, str)
    ]
    # One exception, the contract between a stage's two stacks: the policy the system
    # stack writes for the deploy role, which the CI stack attaches by its name.
    assert named == [("AWS::IAM::ManagedPolicy", "ManagedPolicyName", "mlsys-dev-deploy-access")]


def test_model_bucket_is_versioned_encrypted_private_logged_and_expires_old_versions(
    main_template: dict[str, Any],
) -> None:
    bucket = main_template["Resources"][BUCKET_LOGICAL_ID]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": ACCESS_LOG_BUCKET_LOGICAL_ID
    }
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert rule["Status"] == "Enabled"
    # Object-created events feed the retraining rule without a custom resource.
    assert bucket["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert of_type(main_template, "Custom::S3BucketNotifications") == {}


@pytest.mark.parametrize("bucket", [BUCKET_LOGICAL_ID, ACCESS_LOG_BUCKET_LOGICAL_ID])
def test_buckets_deny_plain_http(main: Template, bucket: str) -> None:
    main.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_image_repository_scans_on_push_keeps_tags_immutable_and_expires_images(
    main_template: dict[str, Any],
) -> None:
    Template.from_json(main_template).has_resource_properties(
        "AWS::ECR::Repository",
        {"ImageScanningConfiguration": {"ScanOnPush": True}, "ImageTagMutability": "IMMUTABLE"},
    )
    repository = main_template["Resources"][REPOSITORY_LOGICAL_ID]["Properties"]
    rules = json.loads(repository["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert [rule["selection"]["tagStatus"] for rule in rules] == ["untagged", "any"]
    assert rules[1]["selection"]["countType"] == "imageCountMoreThan"


def test_system_log_table_layout_matches_the_event_log_contract(main: Template) -> None:
    main.resource_count_is("AWS::DynamoDB::Table", 1)
    main.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
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
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
                "SSESpecification": {"SSEEnabled": True},
                "DeletionProtectionEnabled": True,
            },
        },
    )
