"""Training: Batch on EC2 without a NAT gateway, the job definition, its role, triggers."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match, Template

from infra.model_store import BUCKET_LOGICAL_ID, REPOSITORY_LOGICAL_ID
from infra.system_log import TABLE_LOGICAL_ID
from infra.training import DATA_SUFFIXES, IMAGE_TAG_PARAMETER
from tests.infra.conftest import VARIANT_STACK, Assembly
from tests.infra.templates import actions, logical_id, of_type, one, resources, role_statements
from training_job.data import _FORMATS


def job_definition(template: dict[str, Any]) -> dict[str, Any]:
    name = logical_id(template, "AWS::Batch::JobDefinition", "TrainingJobDefinition")
    properties: dict[str, Any] = template["Resources"][name]["Properties"]
    return properties


def test_compute_environment_uses_context_instance_types_vcpus_and_spot(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    resources_ = one(main_template, "AWS::Batch::ComputeEnvironment")[1]["Properties"][
        "ComputeResources"
    ]
    assert resources_["Type"] == "SPOT"
    assert resources_["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resources_["InstanceTypes"] == ["c6i.xlarge", "m6i.xlarge", "c5.xlarge"]
    assert (resources_["MinvCpus"], resources_["MaxvCpus"]) == (0, 16)
    on_demand = one(variant.templates[VARIANT_STACK], "AWS::Batch::ComputeEnvironment")[1]
    assert on_demand["Properties"]["ComputeResources"]["Type"] == "EC2"


def test_network_has_no_nat_gateway_no_inbound_rules_and_free_gateway_endpoints(
    main_template: dict[str, Any], main: Template
) -> None:
    main.resource_count_is("AWS::EC2::NatGateway", 0)
    subnets = of_type(main_template, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert all(s["Properties"]["MapPublicIpOnLaunch"] for s in subnets.values())
    endpoints = of_type(main_template, "AWS::EC2::VPCEndpoint").values()
    assert {e["Properties"]["VpcEndpointType"] for e in endpoints} == {"Gateway"}
    assert len(endpoints) == 2  # S3 and DynamoDB
    (group,) = of_type(main_template, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    assert [rule["FromPort"] for rule in group["Properties"]["SecurityGroupEgress"]] == [443]
    launch_template = one(main_template, "AWS::EC2::LaunchTemplate")[1]["Properties"]
    assert launch_template["LaunchTemplateData"]["MetadataOptions"]["HttpTokens"] == "required"


def test_job_definition_runs_the_ecr_image_at_the_context_tag_with_the_job_role(
    main_template: dict[str, Any], main: Template
) -> None:
    job_role = logical_id(main_template, "AWS::IAM::Role", "TrainingJobRole")
    main.has_resource_properties(
        "AWS::Batch::JobDefinition",
        {
            "Type": "container",
            "PlatformCapabilities": ["EC2"],
            "ContainerProperties": Match.object_like(
                {
                    "Image": Match.any_value(),
                    "JobRoleArn": {"Fn::GetAtt": [job_role, "Arn"]},
                    "Command": ["train", "--emf", "--data", "Ref::data"],
                }
            ),
        },
    )
    definition = job_definition(main_template)
    container = definition["ContainerProperties"]
    image = json.dumps(container["Image"])
    assert f'"Ref": "{REPOSITORY_LOGICAL_ID}"' in image
    assert container["JobRoleArn"] == {"Fn::GetAtt": [job_role, "Arn"]}
    trust = main_template["Resources"][job_role]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert container["Command"] == ["train", "--emf", "--data", "Ref::data"]
    assert definition["Parameters"]["data"] == {
        "Fn::Join": ["", ["s3://", {"Ref": BUCKET_LOGICAL_ID}, "/data/"]]
    }
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert environment["MLSYS_REGISTRY_URI"] == {
        "Fn::Join": ["", ["s3://", {"Ref": BUCKET_LOGICAL_ID}]]
    }
    assert environment["MLSYS_LOG_URI"] == {
        "Fn::Join": ["", ["dynamodb://", {"Ref": TABLE_LOGICAL_ID}]]
    }
    assert environment["MLSYS_MODEL_NAME"] == "default"
    assert environment["MLSYS_TIME_BUDGET_SECONDS"] == "1800"
    # The TTL of the events the job writes follows log_retention_days like everyone's.
    assert environment["MLSYS_LOG_RETENTION_DAYS"] == "30"
    assert "MLSYS_TARGET" not in environment  # default: the data's last column
    assert "MLSYS_MAX_FIT_ROWS" not in environment  # default: every training row
    memory = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert memory == {"MEMORY": "6144", "VCPU": "2"}
    assert definition["Timeout"] == {"AttemptDurationSeconds": 7200}
    # Only Spot reclamation is retried; a failing run exits.
    assert [rule["Action"] for rule in definition["RetryStrategy"]["EvaluateOnExit"]] == [
        "RETRY",
        "EXIT",
    ]


def test_job_role_reads_data_reads_and_writes_models_writes_the_log_and_nothing_else(
    main_template: dict[str, Any],
) -> None:
    role = logical_id(main_template, "AWS::IAM::Role", "TrainingJobRole")
    granted = {
        (action, json.dumps(resource, sort_keys=True))
        for statement in role_statements(main_template, role)
        for action in actions(statement)
        for resource in resources(statement)
    }
    bucket_arn = {"Fn::GetAtt": [BUCKET_LOGICAL_ID, "Arn"]}

    def objects(prefix: str) -> str:
        return json.dumps({"Fn::Join": ["", [bucket_arn, f"/{prefix}*"]]}, sort_keys=True)

    table = json.dumps({"Fn::GetAtt": [TABLE_LOGICAL_ID, "Arn"]}, sort_keys=True)
    assert granted == {
        ("s3:GetObject", objects("data/")),
        ("s3:GetObject", objects("models/")),
        ("s3:PutObject", objects("models/")),
        ("s3:ListBucket", json.dumps(bucket_arn, sort_keys=True)),
        ("dynamodb:PutItem", table),
        ("dynamodb:BatchWriteItem", table),
    }
    (listing,) = [s for s in role_statements(main_template, role) if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["data/*", "models/*"]}}


def rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The training construct's rules (the rollout evaluator has its own schedule)."""
    return {
        name: r["Properties"]
        for name, r in of_type(template, "AWS::Events::Rule").items()
        if name.startswith("Training")
    }


def test_schedule_and_new_data_submit_the_training_job(main_template: dict[str, Any]) -> None:
    found = rules(main_template)
    queue = logical_id(main_template, "AWS::Batch::JobQueue", "TrainingJobQueue")
    definition = logical_id(main_template, "AWS::Batch::JobDefinition", "TrainingJobDefinition")
    schedule = next(r for r in found.values() if "ScheduleExpression" in r)
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * SUN *)"
    upload = next(
        r
        for r in found.values()
        if r.get("EventPattern", {}).get("source") == ["aws.s3"]
        and r["Description"].startswith("retrain")
    )
    # Data files only: a folder placeholder ("data/") or a README under data/ starts nothing.
    assert upload["EventPattern"]["detail"] == {
        "bucket": {"name": [{"Ref": BUCKET_LOGICAL_ID}]},
        "object": {
            "key": [
                {"wildcard": "data/*.csv"},
                {"wildcard": "data/*.csv.gz"},
                {"wildcard": "data/*.parquet"},
                {"wildcard": "data/*.pq"},
            ]
        },
    }
    for rule in (schedule, upload):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue, "JobQueueArn"]}
        assert target["BatchParameters"]["JobDefinition"] == {"Ref": definition}
    # The uploaded object's URI replaces Ref::data in the job's command.
    transformer = upload["Targets"][0]["InputTransformer"]
    assert transformer["InputPathsMap"] == {"detail-object-key": "$.detail.object.key"}
    assert transformer["InputTemplate"] == {
        "Fn::Join": [
            "",
            ['{"Parameters":{"data":"s3://', {"Ref": BUCKET_LOGICAL_ID}, '/<detail-object-key>"}}'],
        ]
    }


def test_failed_training_job_notifies_the_alarm_topic(main_template: dict[str, Any]) -> None:
    topic = one(main_template, "AWS::SNS::Topic")[0]
    queue = logical_id(main_template, "AWS::Batch::JobQueue", "TrainingJobQueue")
    failed = next(
        r
        for r in rules(main_template).values()
        if r.get("EventPattern", {}).get("source") == ["aws.batch"]
        and "training" in r["Description"]
    )
    assert failed["EventPattern"]["detail-type"] == ["Batch Job State Change"]
    assert failed["EventPattern"]["detail"] == {
        "status": ["FAILED"],
        "jobQueue": [{"Fn::GetAtt": [queue, "JobQueueArn"]}],
        "container": {"command": ["train"]},  # scoring jobs on the queue alert apart
    }
    assert failed["Targets"][0]["Arn"] == {"Ref": topic}


def test_triggers_can_be_switched_off(variant: Assembly) -> None:
    remaining = rules(variant.templates[VARIANT_STACK]).values()
    assert [r["EventPattern"]["source"] for r in remaining] == [["aws.batch"]]


def test_training_target_context_sets_the_jobs_target_column(variant: Assembly) -> None:
    container = job_definition(variant.templates[VARIANT_STACK])["ContainerProperties"]
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    # Uploads and the schedule submit the definition as is, so they train on this column too.
    assert environment["MLSYS_TARGET"] == "price in EUR"


def test_job_size_and_row_cap_come_from_context(variant: Assembly) -> None:
    # docs/training.md "Sizing on AWS": bigger data, bigger job (or a stated sample).
    container = job_definition(variant.templates[VARIANT_STACK])["ContainerProperties"]
    resources = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert resources == {"MEMORY": "30720", "VCPU": "8"}
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert environment["MLSYS_MAX_FIT_ROWS"] == "20000000"


def test_the_upload_filter_covers_exactly_the_formats_training_reads() -> None:
    assert set(DATA_SUFFIXES) == set(_FORMATS)


def test_the_image_tag_is_a_stack_parameter_that_a_deploy_without_it_keeps(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    # The workflow passes --parameters mlsys-<stage>:TrainingImageTag=<sha> after pushing;
    # a hand-run `cdk deploy` reuses the previous value (no ":bootstrap" reset), and
    # nothing is read from SSM at deploy time (the bootstrap deploy role could not).
    image = json.dumps(job_definition(main_template)["ContainerProperties"]["Image"])
    parameter = main_template["Parameters"][IMAGE_TAG_PARAMETER]
    assert parameter["Type"] == "String"
    assert parameter["Default"] == "bootstrap"
    assert re.fullmatch(parameter["AllowedPattern"], "0123abcdef" * 4)
    assert not re.fullmatch(parameter["AllowedPattern"], "-bad tag")
    assert image.endswith(f'":", {{"Ref": "{IMAGE_TAG_PARAMETER}"}}]]}}')
    variant_template = variant.templates[VARIANT_STACK]
    pinned = json.dumps(job_definition(variant_template)["ContainerProperties"]["Image"])
    assert pinned.endswith(':v1.2.3"]]}')
    assert IMAGE_TAG_PARAMETER not in variant_template.get("Parameters", {})


def test_batch_pins_amazon_linux_2023_and_the_launch_templates_current_version(
    main_template: dict[str, Any],
) -> None:
    compute = one(main_template, "AWS::Batch::ComputeEnvironment")[1]["Properties"][
        "ComputeResources"
    ]
    assert compute["Ec2Configuration"] == [{"ImageType": "ECS_AL2023"}]
    template_id = one(main_template, "AWS::EC2::LaunchTemplate")[0]
    # A version number, not "$Latest" (which Batch resolves once, at creation).
    assert compute["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": template_id},
        "Version": {"Fn::GetAtt": [template_id, "LatestVersionNumber"]},
    }


def test_the_queue_and_job_definition_carry_the_stage_tag(main_template: dict[str, Any]) -> None:
    # The deploy role may submit only with resources tagged with its stage.
    queue = one(main_template, "AWS::Batch::JobQueue")[1]["Properties"]
    assert queue["Tags"] == {"mlsys:stage": "dev"}
    assert job_definition(main_template)["Tags"] == {"mlsys:stage": "dev"}
