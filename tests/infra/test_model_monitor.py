"""The scheduled model monitor: function, schedule, permissions, alarms, dashboard, retraining."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.infra.conftest import MAIN_STACK, VARIANT_STACK, Assembly
from tests.infra.templates import of_type

if TYPE_CHECKING:
    from aws_cdk.assertions import Template


def _function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (name, r["Properties"])
        for name, r in of_type(template, "AWS::Lambda::Function").items()
        if name.startswith("ModelMonitorFunction")
    ]
    return found


def _rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in of_type(template, "AWS::Events::Rule").items()
        if name.startswith("ModelMonitor")
    }


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in of_type(template, "AWS::CloudWatch::Alarm").items()
        if name.startswith("ModelMonitor")
    }


def test_monitor_function_runs_the_scheduled_handler_from_the_shared_bundle(
    main_template: dict[str, Any],
) -> None:
    _, function = _function(main_template)
    assert function["Handler"] == "lambda_inference.entrypoints.handle_monitor"
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == 900
    assert function["MemorySize"] == 1024
    assert "ReservedConcurrentExecutions" not in function
    env = function["Environment"]["Variables"]
    assert env["MLSYS_MODEL_NAME"] == "default"
    assert "Ref" in json.dumps(env["MLSYS_LOG_URI"])


def test_hourly_schedule_passes_window_threshold_and_reports_location(
    main_template: dict[str, Any],
) -> None:
    name, _ = _function(main_template)
    (schedule,) = [r for r in _rules(main_template).values() if "ScheduleExpression" in r]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    (target,) = schedule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [name, "Arn"]}
    payload = json.dumps(target["Input"])
    assert '\\"window_minutes\\":60' in payload
    assert '\\"threshold\\":0.2' in payload
    assert "/reports" in payload
    assert '\\"lookback_minutes\\":0' in payload


def test_monitor_may_read_models_and_log_write_reports_and_publish_metrics(
    main: Template,
) -> None:
    from aws_cdk.assertions import Match  # noqa: PLC0415

    main.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyName": Match.string_like_regexp("ModelMonitorRole"),
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Sid": "ReadModels"}),
                        Match.object_like({"Sid": "ReadWriteSystemLog"}),
                        Match.object_like(
                            {
                                "Sid": "WriteReports",
                                "Action": "s3:PutObject",
                                "Resource": {
                                    "Fn::Join": Match.array_with(
                                        [Match.array_with([Match.string_like_regexp("/reports/")])]
                                    )
                                },
                            }
                        ),
                        Match.object_like(
                            {
                                "Sid": "PublishMonitorMetrics",
                                "Action": "cloudwatch:PutMetricData",
                                "Condition": {"StringEquals": {"cloudwatch:namespace": "mlsys"}},
                            }
                        ),
                    ]
                )
            },
        },
    )


def test_alarms_watch_the_champions_drift_and_quality_and_notify(
    main_template: dict[str, Any],
) -> None:
    alarms = _alarms(main_template)
    by_metric = {a["MetricName"]: a for a in alarms.values()}
    assert set(by_metric) == {"FeatureDrift", "PredictionDrift", "LiveQuality", "Errors"}
    for metric in ("FeatureDrift", "PredictionDrift"):
        alarm = by_metric[metric]
        assert alarm["Namespace"] == "mlsys"
        assert alarm["Dimensions"] == [{"Name": "ModelName", "Value": "default"}]
        assert alarm["Statistic"] == "Maximum"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.2, "GreaterThanThreshold")
        assert alarm["Period"] == 3600
    quality = by_metric["LiveQuality"]
    assert (quality["Threshold"], quality["ComparisonOperator"]) == (0, "LessThanThreshold")
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"]
        assert alarm["OKActions"]


def test_retraining_on_alarm_is_off_by_default(main_template: dict[str, Any]) -> None:
    rules = _rules(main_template)
    assert not any("EventPattern" in r for r in rules.values())


def test_retraining_on_alarm_submits_the_training_job_like_the_schedule(
    variant: Assembly,
) -> None:
    template = variant.templates[VARIANT_STACK]
    (retrain,) = [r for r in _rules(template).values() if "EventPattern" in r]
    pattern = retrain["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    watched = json.dumps(pattern["resources"])
    assert "ModelMonitorFeatureDrift" in watched
    assert "ModelMonitorPredictionDrift" in watched
    assert "ModelMonitorLiveQuality" in watched
    (target,) = retrain["Targets"]
    assert "BatchParameters" in target
    assert "TrainingJobQueue" in json.dumps(target["Arn"])
    assert "TrainingJobDefinition" in json.dumps(target["BatchParameters"]["JobDefinition"])
    # The variant's window (6 hours) sets the alarm period.
    periods = {a["Period"] for a in _alarms(template).values() if a["MetricName"] != "Errors"}
    assert periods == {21600}


def test_dashboard_shows_drift_quality_and_where_the_reports_are(
    assembly: Assembly,
) -> None:
    (dashboard,) = of_type(assembly.templates[MAIN_STACK], "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for text in (
        "FeatureDrift",
        "PredictionDrift",
        "LiveQuality",
        "latest.html",
        "drift threshold",
    ):
        assert text in body
