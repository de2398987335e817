"""Small helpers shared by the constructs."""

from __future__ import annotations

from typing import cast

from aws_cdk import Acknowledgment, CfnResource, Validations
from aws_cdk import aws_logs as logs
from constructs import IConstruct

from mlsys.names import METRICS_NAMESPACE

__all__ = ["METRICS_NAMESPACE", "acknowledge", "pin_logical_id", "retention"]

STAGE_TAG = "mlsys:stage"
"""Tag on the resources a stage's deploy role acts on; its IAM policy matches it
(``aws:ResourceTag``), so the role needs no cross-stack reference to them."""


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention enum for ``days`` (validated in infra.config)."""
    return _RETENTION[days]


def pin_logical_id(construct: IConstruct, logical_id: str) -> None:
    """Keep a stateful resource's logical ID stable across refactors of the construct tree.

    CloudFormation replaces (i.e. deletes) a resource whose logical ID changes, which for
    a bucket or table means data loss; a fixed ID makes moving constructs around safe.
    """
    cast(CfnResource, construct.node.default_child).override_logical_id(logical_id)


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on exactly this construct, with the reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
