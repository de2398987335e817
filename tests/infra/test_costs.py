"""The idle cost the docs state (docs/deploy.md in full, the README in brief) is counted from
the synthesized template: what bills by the month
whether or not anything happens (alarm metrics, dashboards, KMS keys, the custom metric and
invocations of the scheduled functions), at us-east-1 list prices."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import MINIMAL_STACK, ROOT, Assembly
from tests.infra.templates import of_type

ALARM_METRIC = 0.10
"""USD per month per metric an alarm watches (a metric-math alarm bills each of them)."""
DASHBOARD = 3.00
KMS_KEY = 1.00
CUSTOM_METRIC = 0.30
SCHEDULED_RUNS = {"rate(5 minutes)": 0.05, "rate(1 hour)": 0.05}
"""A scheduled function's invocations, duration, log lines and reads over an idle month,
by schedule (docs/deploy.md: the rollout evaluator every 5 minutes, the model monitor hourly)."""
IDLE_CUSTOM_METRICS: dict[str, int] = {}
"""Custom metric series a scheduled function publishes while idle: none (the rollout
evaluator publishes RolloutState only while a rollout runs, the monitor nothing over an
empty window)."""


def alarm_metrics(template: dict[str, Any]) -> int:
    total = 0
    for alarm in of_type(template, "AWS::CloudWatch::Alarm").values():
        stats = [m for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]
        total += len(stats) or 1
    return total


def function_schedules(template: dict[str, Any]) -> list[str]:
    """Schedules of rules that invoke a Lambda function (not the Batch training schedule)."""
    functions = set(of_type(template, "AWS::Lambda::Function"))
    return [
        rule["Properties"]["ScheduleExpression"]
        for rule in of_type(template, "AWS::Events::Rule").values()
        if "ScheduleExpression" in rule["Properties"]
        and any(
            t["Arn"].get("Fn::GetAtt", [""])[0] in functions for t in rule["Properties"]["Targets"]
        )
    ]


def idle_cost(template: dict[str, Any]) -> float:
    schedules = function_schedules(template)
    return (
        alarm_metrics(template) * ALARM_METRIC
        + len(of_type(template, "AWS::CloudWatch::Dashboard")) * DASHBOARD
        + len(of_type(template, "AWS::KMS::Key")) * KMS_KEY
        + sum(IDLE_CUSTOM_METRICS.get(s, 0) for s in schedules) * CUSTOM_METRIC
        + sum(SCHEDULED_RUNS[s] for s in schedules)
    )


def stated_figure(pattern: str, document: str = "docs/deploy.md") -> float:
    match = re.search(pattern, (ROOT / document).read_text())
    assert match is not None, f"{document}: {pattern}"
    return float(match.group(1))


def test_the_docs_state_the_idle_cost_the_template_adds_up_to(
    main_template: dict[str, Any], minimal: Assembly
) -> None:
    assert alarm_metrics(main_template) == 21
    assert sorted(function_schedules(main_template)) == ["rate(1 hour)", "rate(5 minutes)"]
    minimal_template = minimal.templates[MINIMAL_STACK]
    for document in ("docs/deploy.md", "README.md"):
        stated = stated_figure(
            r"\*\*Idle \(no requests, no training\), with the defaults: about USD ([\d.]+) a month",
            document,
        )
        assert stated == pytest.approx(idle_cost(main_template), abs=0.005), document
        stated = stated_figure(
            r"\*\*`minimal_idle_cost=true` brings it to about USD ([\d.]+)\*\*", document
        )
        assert stated == pytest.approx(idle_cost(minimal_template), abs=0.005), document
    provisioned = stated_figure(
        r"With `provisioned_concurrency_min=1` add USD 8.76: about USD ([\d.]+)"
    )
    assert provisioned == pytest.approx(idle_cost(main_template) + 8.76, abs=0.005)
