"""The alarm topic every alarm and the training-failure rule notify."""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from infra.common import acknowledge

# Services that publish to the topic and therefore need the key.
_PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")


class Alerts(Construct):
    """KMS-encrypted, TLS-only SNS topic with an optional e-mail subscription."""

    def __init__(
        self, scope: Construct, construct_id: str, *, email: str, encrypted: bool = True
    ) -> None:
        super().__init__(scope, construct_id)
        if not encrypted:
            # minimal_idle_cost: the key is USD 1 a month; the messages carry alarm names
            # and training job ids, no request data.
            self.key: kms.Key | None = None
            self.topic = sns.Topic(self, "Topic", enforce_ssl=True)
            acknowledge(
                self.topic.node.find_child("Resource"),
                "AwsSolutions-SNS2",
                "minimal_idle_cost=true drops the customer-managed key (USD 1/month); the "
                "topic carries alarm names and training job ids, never request data.",
            )
            self._finish(email)
            return
        # A customer-managed key, because the AWS-managed SNS key cannot be granted to
        # CloudWatch alarms or EventBridge, which would then fail to publish.
        # Deleted with the stack (after KMS's shortest waiting period): it only encrypts
        # messages in flight, so nothing needs it once the topic is gone, and a retained
        # key would bill USD 1 a month forever (CDK's default keeps keys).
        self.key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="mlsys alarm topic encryption",
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmPublishers",
                principals=[iam.ServicePrincipal(service) for service in _PUBLISHERS],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy "*" means this key
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(self, "Topic", master_key=self.key, enforce_ssl=True)
        self._finish(email)

    def _finish(self, email: str) -> None:
        # Both publishers only on behalf of this account (no confused deputy: another
        # account's alarm or rule cannot publish here through the service principal).
        for sid, service in zip(
            ("AllowCloudWatchAlarms", "AllowEventBridgeRules"), _PUBLISHERS, strict=True
        ):
            self.topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=["sns:Publish"],
                    resources=[self.topic.topic_arn],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )
        if email:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


@jsii.implements(events.IRuleTarget)
class TopicTarget:
    """An EventBridge rule target publishing ``message`` to the alarm topic.

    Instead of ``aws_events_targets.SnsTopic``, which adds a topic-policy statement letting
    ``events.amazonaws.com`` publish with no condition: the topic's own
    ``AllowEventBridgeRules`` statement (with ``aws:SourceAccount``) authorises the rule.
    """

    def __init__(self, topic: sns.ITopic, *, message: events.RuleTargetInput) -> None:
        self._topic = topic
        self._message = message

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        del rule, id
        return events.RuleTargetConfig(arn=self._topic.topic_arn, input=self._message)

    def __repr__(self) -> str:
        return f"TopicTarget({self._topic!r})"
