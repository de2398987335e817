"""The DynamoDB system-log table behind ``GET /log`` (layout in mlsys/eventlog/dynamodb.py)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.common import pin_logical_id

TABLE_LOGICAL_ID = "SystemLogTable"
TTL_ATTRIBUTE = "expires_at"


class SystemLog(Construct):
    """On-demand table keyed ``pk``/``sk``, TTL on ``expires_at``, PITR, encrypted."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            # Traffic follows predictions, which are spiky; on-demand idles at zero cost.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        pin_logical_id(self.table, TABLE_LOGICAL_ID)

    @property
    def uri(self) -> str:
        """``MLSYS_LOG_URI`` for every component."""
        return f"dynamodb://{self.table.table_name}"

    def write_statement(self) -> iam.PolicyStatement:
        """Append events (single and batched writes); no reads, no deletes."""
        return iam.PolicyStatement(
            sid="WriteSystemLog",
            actions=["dynamodb:PutItem", "dynamodb:BatchWriteItem"],
            resources=[self.table.table_arn],
        )

    def read_write_statement(self) -> iam.PolicyStatement:
        """Serve ``GET /log`` (Query/GetItem) and clear it (PutItem of the cut-off marker)."""
        return iam.PolicyStatement(
            sid="ReadWriteSystemLog",
            actions=[
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:BatchWriteItem",
            ],
            resources=[self.table.table_arn],
        )
