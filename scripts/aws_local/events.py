"""The events AWS would deliver to the functions, built from the template and real output.

* :func:`subscription_event`: what CloudWatch Logs hands a subscription's destination
  function -- ``{"awslogs": {"data": base64(gzip(DATA_MESSAGE JSON))}}`` -- for the log
  lines that pass the subscription's filter (:func:`matches_filter_pattern`).
* :func:`scheduled_event`: what an EventBridge schedule rule hands its target: the
  target's constant ``Input`` when it has one, else the ``Scheduled Event`` envelope.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

_JSON_PATTERN = re.compile(r"^\{\s*(\$(?:\.[A-Za-z0-9_]+)+)\s*(=|!=)\s*(\"[^\"]*\"|[^\s}]+)\s*\}$")


class FilterPatternError(ValueError):
    """A filter pattern this harness does not evaluate (it says so instead of guessing)."""


def matches_filter_pattern(pattern: str, message: str) -> bool:
    """CloudWatch Logs' JSON filter semantics for one ``{ $.a.b = "value" }`` condition.

    The message must be a JSON object holding the selector; ``*`` in a quoted value
    matches any characters, so ``"*"`` matches any string value. Other pattern forms
    (``&&``, ``||``, numeric comparisons, space-delimited or plain-term patterns) raise
    :class:`FilterPatternError`.
    """
    match = _JSON_PATTERN.match(pattern.strip())
    if match is None:
        raise FilterPatternError(f"filter pattern not supported by the harness: {pattern!r}")
    selector, operator, raw_value = match.groups()
    if not raw_value.startswith('"'):
        raise FilterPatternError(f"only quoted string values are supported: {pattern!r}")
    try:
        document = json.loads(message)
    except ValueError:
        return False
    value: Any = document
    for key in selector.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    if not isinstance(value, str):
        return False
    wanted = re.escape(raw_value[1:-1]).replace(r"\*", ".*")
    equal = re.fullmatch(wanted, value) is not None
    return equal if operator == "=" else not equal


def subscription_event(
    log_events: Sequence[tuple[int, str]],
    *,
    log_group: str,
    log_stream: str,
    filter_name: str,
    owner: str,
) -> dict[str, Any]:
    """The Lambda event of a subscription delivering ``log_events`` ((epoch ms, message))."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [
            {"id": _event_id(timestamp, index), "timestamp": timestamp, "message": message}
            for index, (timestamp, message) in enumerate(log_events)
        ],
    }
    packed = base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()
    return {"awslogs": {"data": packed}}


def _event_id(timestamp: int, index: int) -> str:
    # CloudWatch ids are 56-digit strings that sort by time; the shape is what matters.
    return f"{timestamp:020d}{index:036d}"


def read_subscription_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """The DATA_MESSAGE inside a subscription event (tests, and the harness's report)."""
    raw = gzip.decompress(base64.b64decode(event["awslogs"]["data"]))
    message: dict[str, Any] = json.loads(raw)
    return message


def filtered(pattern: str, log_events: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """The log events a subscription with ``pattern`` delivers."""
    return [event for event in log_events if matches_filter_pattern(pattern, event[1])]


def scheduled_event(
    rule_properties: Mapping[str, Any],
    *,
    target_arn: str,
    resolve: Callable[[Any], Any],
    account: str,
    region: str,
    rule_arn: str,
    now: datetime,
) -> Any:
    """What the schedule rule delivers to the target ``target_arn`` (already resolved).

    ``resolve`` turns the template's intrinsic values into local strings. An ``Input``
    replaces the event (EventBridge passes it as is); ``InputPath`` and
    ``InputTransformer`` on a schedule are not used by the stack and are refused.
    """
    targets = [t for t in rule_properties.get("Targets", []) if resolve(t["Arn"]) == target_arn]
    if len(targets) != 1:
        raise ValueError(f"the rule has {len(targets)} targets for {target_arn}")
    (target,) = targets
    if "InputPath" in target or "InputTransformer" in target:
        raise ValueError("InputPath/InputTransformer on a schedule target is not supported")
    if "Input" in target:
        return json.loads(resolve(target["Input"]))
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
