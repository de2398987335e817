"""Monitoring: alarms on the metrics that matter, the alarm topic, the dashboard."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from infra.serving import DEAD_LETTER_QUEUE_LOGICAL_ID
from tests.infra.conftest import VARIANT_STACK, Assembly
from tests.infra.templates import logical_id, mentions, of_type, one


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name.removeprefix("Monitoring"): alarm["Properties"]
        for name, alarm in of_type(template, "AWS::CloudWatch::Alarm").items()
    }


def alarm(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    (found,) = [a for name, a in alarms(template).items() if name.startswith(prefix)]
    return found


def test_every_alarm_notifies_the_topic_except_the_training_failure_duplicate(
    main_template: dict[str, Any],
) -> None:
    topic = one(main_template, "AWS::SNS::Topic")[0]
    found = alarms(main_template)
    assert len(found) == 16  # 12 service alarms + 4 of the model monitor
    for name, properties in found.items():
        if name.startswith("TrainingJobFailed"):
            # The failure rule already e-mails the job id and reason.
            assert "AlarmActions" not in properties
        else:
            assert properties["AlarmActions"] == [{"Ref": topic}], name
            assert properties["TreatMissingData"] == "notBreaching", name


def test_api_alarms_watch_the_stage_5xx_rate_and_p99_latency(
    main_template: dict[str, Any], main: Template
) -> None:
    main.resource_count_is("AWS::CloudWatch::Alarm", 16)
    main.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/ApiGateway",
            "MetricName": "Latency",
            "ExtendedStatistic": "p99",
            "Threshold": 1000,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        },
    )
    stage = one(main_template, "AWS::ApiGateway::Stage")[0]
    rate = alarm(main_template, "Api5xxRate")
    metrics = {m["Id"]: m for m in rate["Metrics"]}
    assert (
        "100 * errors / requests" in metrics[next(k for k in metrics if "expr" in k)]["Expression"]
    )
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    assert rate["Threshold"] == 1
    latency = alarm(main_template, "ApiLatencyP99")
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p99")
    assert latency["Threshold"] == 1000
    assert {"Name": "Stage", "Value": {"Ref": stage}} in latency["Dimensions"]


def test_lambda_errors_throttles_and_spillover_alarms(main_template: dict[str, Any]) -> None:
    for name in ("Predict", "Admin", "LogIngest"):
        function = logical_id(main_template, "AWS::Lambda::Function", f"Serving{name}Function")
        for metric in ("Errors", "Throttles"):
            found = alarm(main_template, f"{name}{metric}")
            assert found["MetricName"] == metric
            assert found["Namespace"] == "AWS/Lambda"
            assert found["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    spillover = alarm(main_template, "ProvisionedConcurrencySpillover")
    assert spillover["MetricName"] == "ProvisionedConcurrencySpilloverInvocations"
    resource = next(d for d in spillover["Dimensions"] if d["Name"] == "Resource")
    assert json.dumps(resource["Value"]).endswith(':live"]]}')


def test_a_log_batch_waiting_in_the_dead_letter_queue_raises_an_alarm(
    main_template: dict[str, Any], main: Template
) -> None:
    topic = one(main_template, "AWS::SNS::Topic")[0]
    main.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [
                {
                    "Name": "QueueName",
                    "Value": {"Fn::GetAtt": [DEAD_LETTER_QUEUE_LOGICAL_ID, "QueueName"]},
                }
            ],
            # >= 1 message, i.e. > 0: a single failed batch is enough.
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1,
            "Statistic": "Maximum",
            "AlarmActions": [{"Ref": topic}],
            "OKActions": [{"Ref": topic}],
        },
    )


def test_no_spillover_alarm_without_provisioned_concurrency(variant: Assembly) -> None:
    names = alarms(variant.templates[VARIANT_STACK])
    assert not [n for n in names if n.startswith("ProvisionedConcurrencySpillover")]


def test_table_throttling_and_training_failure_alarms(main_template: dict[str, Any]) -> None:
    throttles = alarm(main_template, "SystemLogThrottles")
    names = {
        m["MetricStat"]["Metric"]["MetricName"] for m in throttles["Metrics"] if "MetricStat" in m
    }
    assert names == {"ReadThrottleEvents", "WriteThrottleEvents"}
    failed = alarm(main_template, "TrainingJobFailed")
    rule = logical_id(main_template, "AWS::Events::Rule", "TrainingJobFailed")
    assert (failed["Namespace"], failed["MetricName"]) == ("AWS/Events", "TriggeredRules")
    assert failed["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": rule}}]


def test_alarm_topic_is_encrypted_tls_only_and_subscribes_the_optional_email(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    topic_id, topic = one(main_template, "AWS::SNS::Topic")
    key = one(main_template, "AWS::KMS::Key")[0]
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key, "Arn"]}
    assert main_template["Resources"][key]["Properties"]["EnableKeyRotation"] is True
    policy = one(main_template, "AWS::SNS::TopicPolicy")[1]["Properties"]["PolicyDocument"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]
    )
    assert of_type(main_template, "AWS::SNS::Subscription") == {}
    (subscription,) = of_type(variant.templates[VARIANT_STACK], "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    del topic_id


def dashboard_body(template: dict[str, Any]) -> str:
    body = one(template, "AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardBody"]
    return json.dumps(body)


def test_dashboard_shows_traffic_latency_errors_concurrency_and_training(
    main_template: dict[str, Any],
) -> None:
    body = dashboard_body(main_template)
    for title in (
        "Requests",
        "Latency (ms)",
        "Errors",
        "Concurrency (predict)",
        "Predictions per model version",
        "Prediction distribution per model version",
        "Training outcomes",
        "System-log ingest",
    ):
        assert f'\\"title\\":\\"{title}' in body, title
    assert '\\"p50\\"' in body
    assert '\\"p99\\"' in body
    assert "ProvisionedConcurrencyUtilization" in body


def test_dashboard_searches_model_metrics_per_model_version(main_template: dict[str, Any]) -> None:
    body = dashboard_body(main_template).replace('\\\\\\"', '"')
    per_version = '{mlsys,ModelVersion,service} service="inference"'
    assert f"SEARCH('{per_version} MetricName=\"Records\"', 'Sum', 300)" in body
    for stat in ("p10", "p50", "p90"):
        assert f"SEARCH('{per_version} MetricName=\"PredictionValue\"', '{stat}', 300)" in body
    assert (
        'SEARCH(\'{mlsys,Class,ModelVersion,service} service="inference" '
        'MetricName="PredictedClass"\'' in body
    )
    for name in ("TrainingRuns", "Promotions", "GuardrailFailures"):
        assert (
            f"SEARCH('{{mlsys,service}} service=\"training\" MetricName=\"{name}\"', 'Sum', 86400)"
            in body
        )


def test_dashboard_refers_to_this_stacks_resources(main_template: dict[str, Any]) -> None:
    body = one(main_template, "AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardBody"]
    predict = logical_id(main_template, "AWS::Lambda::Function", "ServingPredictFunction")
    assert mentions(body, predict)
    # The ingest widget plots this stack's DLQ depth next to the function's failures.
    assert DEAD_LETTER_QUEUE_LOGICAL_ID in json.dumps(body)
    assert "DestinationDeliveryFailures" in json.dumps(body)
