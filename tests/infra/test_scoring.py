"""Scoring on AWS: a file under score/ starts a Batch job running `mlsys predict`."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from infra.model_store import BUCKET_LOGICAL_ID, REPOSITORY_LOGICAL_ID
from infra.system_log import TABLE_LOGICAL_ID
from tests.infra.conftest import MINIMAL_STACK, Assembly
from tests.infra.templates import actions, logical_id, of_type, resources, role_statements


def scoring_rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in of_type(template, "AWS::Events::Rule").items()
        if name.startswith("Scoring")
    }


def test_the_job_runs_predict_with_the_training_image_on_the_training_queue(
    main_template: dict[str, Any], main: Template
) -> None:
    role = logical_id(main_template, "AWS::IAM::Role", "ScoringJobRole")
    main.has_resource_properties(
        "AWS::Batch::JobDefinition",
        {
            "Type": "container",
            "PlatformCapabilities": ["EC2"],
            "ContainerProperties": Match.object_like(
                {
                    "Command": ["predict", "--json", "--data", "Ref::data"],
                    "JobRoleArn": {"Fn::GetAtt": [role, "Arn"]},
                }
            ),
        },
    )
    name = logical_id(main_template, "AWS::Batch::JobDefinition", "ScoringJobDefinition")
    container = main_template["Resources"][name]["Properties"]["ContainerProperties"]
    assert f'"Ref": "{REPOSITORY_LOGICAL_ID}"' in json.dumps(container["Image"])
    training = logical_id(main_template, "AWS::Batch::JobDefinition", "TrainingJobDefinition")
    training_image = main_template["Resources"][training]["Properties"]["ContainerProperties"]
    assert container["Image"] == training_image["Image"]  # one image, two commands
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert json.dumps(environment["MLSYS_LOG_URI"]).count(TABLE_LOGICAL_ID) == 1
    assert environment["MLSYS_MODEL_NAME"] == "default"
    assert f'"Ref": "{BUCKET_LOGICAL_ID}"' in json.dumps(environment["MLSYS_REGISTRY_URI"])


def test_an_upload_under_score_submits_the_scoring_job_with_its_uri(
    main_template: dict[str, Any],
) -> None:
    queue = logical_id(main_template, "AWS::Batch::JobQueue", "TrainingJobQueue")
    definition = logical_id(main_template, "AWS::Batch::JobDefinition", "ScoringJobDefinition")
    upload = next(
        r
        for r in scoring_rules(main_template).values()
        if r["EventPattern"]["source"] == ["aws.s3"]
    )
    assert upload["EventPattern"]["detail"] == {
        "bucket": {"name": [{"Ref": BUCKET_LOGICAL_ID}]},
        "object": {
            "key": [
                {"wildcard": "score/*.csv"},
                {"wildcard": "score/*.csv.gz"},
                {"wildcard": "score/*.parquet"},
                {"wildcard": "score/*.pq"},
            ]
        },
    }
    (target,) = upload["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [queue, "JobQueueArn"]}
    assert target["BatchParameters"]["JobDefinition"] == {"Ref": definition}
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {"detail-object-key": "$.detail.object.key"}
    assert transformer["InputTemplate"] == {
        "Fn::Join": [
            "",
            ['{"Parameters":{"data":"s3://', {"Ref": BUCKET_LOGICAL_ID}, '/<detail-object-key>"}}'],
        ]
    }


def test_the_job_reads_score_and_models_and_writes_only_scores_and_the_log(
    main_template: dict[str, Any],
) -> None:
    role = logical_id(main_template, "AWS::IAM::Role", "ScoringJobRole")
    statements = {s["Sid"]: s for s in role_statements(main_template, role)}
    assert set(statements) == {
        "ReadFilesToScore",
        "WriteScores",
        "ReadModels",
        "ListModels",
        "WriteSystemLog",
    }
    writes = [
        (sid, json.dumps(resources(s)))
        for sid, s in statements.items()
        if any(a.startswith("s3:Put") for a in actions(s))
    ]
    assert [(sid, "/scores/*" in where) for sid, where in writes] == [("WriteScores", True)]
    assert "/score/*" in json.dumps(resources(statements["ReadFilesToScore"]))
    assert actions(statements["ReadModels"]) == ["s3:GetObject"]


def test_a_failed_scoring_job_notifies_and_alarms_like_a_failed_training_job(
    main_template: dict[str, Any], main: Template
) -> None:
    topic = logical_id(main_template, "AWS::SNS::Topic", "AlertsTopic")
    queue = logical_id(main_template, "AWS::Batch::JobQueue", "TrainingJobQueue")
    failed_name, failed = next(
        (name, r)
        for name, r in scoring_rules(main_template).items()
        if r["EventPattern"]["source"] == ["aws.batch"]
    )
    assert failed["EventPattern"]["detail"] == {
        "status": ["FAILED"],
        "jobQueue": [{"Fn::GetAtt": [queue, "JobQueueArn"]}],
        "container": {"command": ["predict"]},
    }
    (target,) = failed["Targets"]
    assert target["Arn"] == {"Ref": topic}
    assert "scoring job" in json.dumps(target["InputTransformer"])
    main.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "TriggeredRules",
            "Namespace": "AWS/Events",
            "Dimensions": [{"Name": "RuleName", "Value": {"Ref": failed_name}}],
            "Threshold": 1,
        },
    )


def test_minimal_idle_cost_keeps_the_scoring_trigger_but_not_its_alarm(minimal: Assembly) -> None:
    template = minimal.templates[MINIMAL_STACK]
    assert len(scoring_rules(template)) == 2
    alarms = json.dumps(of_type(template, "AWS::CloudWatch::Alarm"))
    assert "ScoringJobFailed" not in alarms
