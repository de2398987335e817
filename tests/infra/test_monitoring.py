"""Monitoring: alarms on the metrics that matter, the alarm topic, the dashboard."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Template

from infra.serving import DEAD_LETTER_QUEUE_LOGICAL_ID
from tests.infra.conftest import MINIMAL_STACK, VARIANT_STACK, Assembly
from tests.infra.templates import logical_id, mentions, of_type, one


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name.removeprefix("Monitoring").removeprefix("PredictDeployment"): alarm["Properties"]
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
    # 11 service alarms (no spillover without provisioned concurrency), 3 rollback
    # alarms of code deploys, 4 of the model monitor, 1 of scoring jobs.
    assert len(found) == 19
    for name, properties in found.items():
        if name.startswith(("TrainingJobFailed", "ScoringJobFailed", "NewVersion")):
            # The failure rule already e-mails the job id and reason; a rolled-back code
            # deploy fails the deploy, and PredictErrors mails errors of the live version.
            assert "AlarmActions" not in properties
        else:
            assert properties["AlarmActions"] == [{"Ref": topic}], name
            assert properties["TreatMissingData"] == "notBreaching", name


def test_api_alarms_watch_the_stage_5xx_rate_and_p99_latency(
    main_template: dict[str, Any], main: Template
) -> None:
    main.resource_count_is("AWS::CloudWatch::Alarm", 19)
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
        "100 * FILL(errors, 0) / FILL(requests, 0)"
        in metrics[next(k for k in metrics if "expr" in k)]["Expression"]
    )
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert metrics["requests"]["MetricStat"]["Metric"]["MetricName"] == "Count"
    assert rate["Threshold"] == 1
    latency = alarm(main_template, "ApiLatencyP99")
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("Latency", "p99")
    assert latency["Threshold"] == 1000
    assert {"Name": "Stage", "Value": {"Ref": stage}} in latency["Dimensions"]


def test_lambda_errors_throttles_and_spillover_alarms(
    main_template: dict[str, Any], variant: Assembly
) -> None:
    for name in ("Predict", "Admin", "LogIngest"):
        function = logical_id(main_template, "AWS::Lambda::Function", f"Serving{name}Function")
        for metric in ("Errors", "Throttles"):
            found = alarm(main_template, f"{name}{metric}")
            assert found["MetricName"] == metric
            assert found["Namespace"] == "AWS/Lambda"
            assert found["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    spillover = alarm(variant.templates[VARIANT_STACK], "ProvisionedConcurrencySpillover")
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


def test_no_spillover_alarm_without_provisioned_concurrency(
    main_template: dict[str, Any],
) -> None:
    names = alarms(main_template)
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


def test_only_this_accounts_alarms_and_rules_may_publish_to_the_topic(
    assembly: Assembly, minimal: Assembly
) -> None:
    # Without aws:SourceAccount, the service principals would publish on behalf of any
    # account's alarm or rule (the confused deputy).
    for template in (assembly.templates["mlsys-dev"], minimal.templates[MINIMAL_STACK]):
        topic_id = one(template, "AWS::SNS::Topic")[0]
        policy = one(template, "AWS::SNS::TopicPolicy")[1]["Properties"]["PolicyDocument"]
        allowed = {
            s["Principal"]["Service"]: s
            for s in policy["Statement"]
            if s["Effect"] == "Allow" and "Service" in s.get("Principal", {})
        }
        assert set(allowed) == {"cloudwatch.amazonaws.com", "events.amazonaws.com"}
        for statement in allowed.values():
            assert statement["Condition"] == {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            }
            assert statement["Action"] == "sns:Publish"
            assert statement["Resource"] == {"Ref": topic_id}
        # The training-failure rule still publishes there, through that statement.
        failed = logical_id(template, "AWS::Events::Rule", "TrainingJobFailed")
        (target,) = template["Resources"][failed]["Properties"]["Targets"]
        assert target["Arn"] == {"Ref": topic_id}
        assert "RoleArn" not in target
        assert "failed: <detail-statusReason>" in target["InputTransformer"]["InputTemplate"]


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


def test_metric_math_alarms_fill_sparse_metrics_with_zero(
    assembly: Assembly, variant: Assembly
) -> None:
    # AWS/ApiGateway and AWS/DynamoDB publish nothing for a period without traffic or
    # throttling; "reads + writes" over a missing datapoint has no value and never alarms.
    checked = 0
    for synthesized in (assembly, variant):
        for template in synthesized.templates.values():
            for name, properties in alarms(template).items():
                metric_ids = [m["Id"] for m in properties.get("Metrics", []) if "MetricStat" in m]
                for expression in (
                    m["Expression"] for m in properties.get("Metrics", []) if "Expression" in m
                ):
                    checked += 1
                    for metric_id in metric_ids:
                        bare = re.sub(rf"FILL\({metric_id}, 0\)", "", expression)
                        assert not re.search(rf"\b{metric_id}\b", bare), (name, expression)
    assert checked == 4  # Api5xxRate and SystemLogThrottles, in both configurations


def rules(template: dict[str, Any]) -> list[str]:
    return list(of_type(template, "AWS::Events::Rule"))


def test_minimal_idle_cost_has_no_dashboard_no_key_and_only_the_rollback_alarms(
    minimal: Assembly,
) -> None:
    template = minimal.templates[MINIMAL_STACK]
    assert of_type(template, "AWS::CloudWatch::Dashboard") == {}
    assert of_type(template, "AWS::KMS::Key") == {}
    # No hourly model monitor either (its invocations, reads and metrics bill while idle).
    assert not [r for r in rules(template) if "ModelMonitor" in r]
    assert sorted(alarms(template)) == sorted(
        a
        for a in alarms(template)
        if a.startswith(("NewVersionErrors", "NewVersionLatencyP99", "NewVersionServerErrors"))
    )
    assert len(alarms(template)) == 3
    # No warm pool either (provisioned concurrency bills by the hour).
    assert (
        "ProvisionedConcurrencyConfig" not in one(template, "AWS::Lambda::Alias")[1]["Properties"]
    )
    # Training failures still reach the topic (an EventBridge rule costs nothing idle).
    topic = one(template, "AWS::SNS::Topic")[0]
    failed = logical_id(template, "AWS::Events::Rule", "TrainingJobFailed")
    assert template["Resources"][failed]["Properties"]["Targets"][0]["Arn"] == {"Ref": topic}
