"""Small readers for synthesised CloudFormation templates (plain dicts)."""

from __future__ import annotations

import json
from typing import Any


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def one(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def mentions(value: Any, logical_id: str) -> bool:
    """Whether a (possibly intrinsic) value references ``logical_id``."""
    text = json.dumps(value)
    return f'"Ref": "{logical_id}"' in text or f'["{logical_id}", ' in text


def routes(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> the Method's properties."""
    paths = {
        logical_id: "/" + resource["Properties"]["PathPart"]
        for logical_id, resource in of_type(template, "AWS::ApiGateway::Resource").items()
    }
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for method in of_type(template, "AWS::ApiGateway::Method").values():
        properties = method["Properties"]
        found[(properties["HttpMethod"], paths[properties["ResourceId"]["Ref"]])] = properties
    return found


def role_statements(template: dict[str, Any], role_logical_id: str) -> list[dict[str, Any]]:
    """Every statement of every AWS::IAM::Policy attached to the role."""
    statements: list[dict[str, Any]] = []
    for policy in of_type(template, "AWS::IAM::Policy").values():
        if any(role == {"Ref": role_logical_id} for role in policy["Properties"]["Roles"]):
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def resources(statement: dict[str, Any]) -> list[Any]:
    value = statement["Resource"]
    return value if isinstance(value, list) else [value]


def logical_id(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    """The logical ID of the one resource of ``resource_type`` whose ID starts with ``prefix``."""
    matches = [name for name in of_type(template, resource_type) if name.startswith(prefix)]
    assert len(matches) == 1, f"{resource_type} {prefix}*: {matches}"
    return matches[0]
