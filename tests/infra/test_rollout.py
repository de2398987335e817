"""The scheduled rollout evaluator: function, schedule, permissions, dashboard, context."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from lambda_inference.routes import ROLLOUT_EVALUATOR_ENTRY_POINT as HANDLER
from tests.infra.templates import actions, logical_id, of_type, one, resources, role_statements
from tests.infra.test_monitoring import dashboard_body


def evaluator(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (name, fn)
        for name, fn in of_type(template, "AWS::Lambda::Function").items()
        if fn["Properties"]["Handler"] == HANDLER
    ]
    return found


def test_an_eventbridge_schedule_runs_the_evaluator_every_five_minutes(main: Template) -> None:
    main.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": HANDLER,
            "ReservedConcurrentExecutions": Match.absent(),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "MLSYS_REGISTRY_URI": Match.any_value(),
                        "MLSYS_LOG_URI": Match.any_value(),
                        "MLSYS_ALARM_TOPIC_ARN": Match.any_value(),
                        "MLSYS_ROLLOUT_EVIDENCE": "metrics",
                    }
                )
            },
        },
    )
    main.has_resource_properties(
        "AWS::Events::Rule",
        {"ScheduleExpression": "rate(5 minutes)", "State": "ENABLED"},
    )


def test_the_schedule_targets_the_evaluator(main_template: dict[str, Any]) -> None:
    name, _ = evaluator(main_template)
    rule = of_type(main_template, "AWS::Events::Rule")[
        logical_id(main_template, "AWS::Events::Rule", "RolloutSchedule")
    ]
    targets = rule["Properties"]["Targets"]
    assert [t["Arn"] for t in targets] == [{"Fn::GetAtt": [name, "Arn"]}]
    permissions = [
        p["Properties"]
        for p in of_type(main_template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [name, "Arn"]}
    ]
    assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]


def test_the_evaluator_may_swap_the_pointer_read_the_log_and_notify(
    main_template: dict[str, Any],
) -> None:
    _, function = evaluator(main_template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = {s.get("Sid", ""): s for s in role_statements(main_template, role)}
    assert actions(statements["ReadWriteChampionPointer"]) == ["s3:GetObject", "s3:PutObject"]
    assert "dynamodb:Query" in actions(statements["ReadWriteSystemLog"])
    topic = one(main_template, "AWS::SNS::Topic")[0]
    assert actions(statements["NotifyAlarmTopic"]) == ["sns:Publish"]
    assert resources(statements["NotifyAlarmTopic"]) == [{"Ref": topic}]
    key = one(main_template, "AWS::KMS::Key")[0]
    assert resources(statements["UseAlarmTopicKey"]) == [{"Fn::GetAtt": [key, "Arn"]}]
    # Error rate and latency come from the serving metrics (no resource-level permissions).
    assert actions(statements["ReadServingMetrics"]) == ["cloudwatch:GetMetricData"]
    assert resources(statements["ReadServingMetrics"]) == ["*"]
    # Nothing beyond that: no Batch, no data/ prefix, no metric writes of its own (those are
    # EMF log lines).
    everything = [a for s in statements.values() for a in actions(s)]
    assert not [a for a in everything if a.startswith("batch:")]
    assert not [a for a in everything if a == "cloudwatch:PutMetricData"]


def test_the_dashboard_shows_the_rollout_state(main_template: dict[str, Any]) -> None:
    body = dashboard_body(main_template)
    assert "Rollout state (0 none, 1 canary, 2 shadow)" in body
    assert "RolloutState" in body
    assert "RolloutCandidateRequests" in body


def test_training_jobs_roll_out_as_a_canary_by_default(main_template: dict[str, Any]) -> None:
    name = logical_id(main_template, "AWS::Batch::JobDefinition", "TrainingJobDefinition")
    definition = main_template["Resources"][name]
    environment = {
        item["Name"]: item["Value"]
        for item in definition["Properties"]["ContainerProperties"]["Environment"]
    }
    assert (environment["MLSYS_ROLLOUT"], environment["MLSYS_CANARY_FRACTION"]) == ("canary", "0.1")
