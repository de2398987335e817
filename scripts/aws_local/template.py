"""The synthesized system stack, read and rewritten for AWS SAM CLI's local emulator.

Everything here is derived from the template ``cdk synth`` wrote; nothing is written by
hand. :func:`find_wiring` finds which function plays which part from the template's own
wiring (the API's methods, the log subscription, the schedules), so handler names and
logical IDs are never assumed. :func:`derive_sam_template` keeps what SAM emulates (the
functions and the REST API) and applies the few rewrites a local run needs, each one
listed in :data:`REWRITES` and printed by the harness.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlsys import names

Template = dict[str, Any]

FUNCTION = "AWS::Lambda::Function"
ALIAS = "AWS::Lambda::Alias"
REST_API = "AWS::ApiGateway::RestApi"
API_TYPES = (
    REST_API,
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Stage",
)
SUBSCRIPTION_FILTER = "AWS::Logs::SubscriptionFilter"
RULE = "AWS::Events::Rule"
METHOD_KEYS = ("HttpMethod", "ResourceId", "RestApiId", "Integration", "AuthorizationType")
FUNCTION_KEYS = ("Handler", "Runtime", "MemorySize", "Timeout", "Description", "TracingConfig")

REWRITES = (
    "functions: Code -> the local bundle built by the same recipe for the emulated architecture",
    "functions: Architectures -> the machine's own (x86_64 here; arm64 on an arm64 machine)",
    "functions: intrinsic values in Environment resolved to the local resources' names",
    "functions: AWS_ENDPOINT_URL added (the moto server), plus the harness's setting overrides",
    "API methods on the predict alias -> the predict function (SAM has no alias versions)",
    "RestApi BinaryMediaTypes also given as a Swagger Body extension (SAM reads them only there)",
    "dropped: everything SAM does not emulate (IAM, alarms, usage plan, validators, ...)",
)
"""What :func:`derive_sam_template` changes, in the order it does it."""


class TemplateError(ValueError):
    """The template lacks something the harness needs, or uses what it cannot resolve."""


@dataclass(frozen=True, kw_only=True)
class Wiring:
    """Logical IDs of the parts the harness drives, found from the template's wiring."""

    predict: str
    """The function behind the predict routes' alias, whose log group is subscribed."""
    ingest: str
    """The subscription's destination."""
    api: str
    filter_pattern: str
    """The subscription filter's pattern: which predict log lines reach ``ingest``."""
    schedules: Mapping[str, str]
    """Scheduled function -> its rule."""
    services: Mapping[str, str]
    """Function -> POWERTOOLS_SERVICE_NAME (how the monitor and the evaluator differ)."""

    def scheduled(self, service: str) -> tuple[str, str]:
        """(function, rule) of the scheduled function of ``service``."""
        found = [(f, r) for f, r in self.schedules.items() if self.services.get(f) == service]
        if len(found) != 1:
            raise TemplateError(f"expected one scheduled {service!r} function, found {found}")
        return found[0]

    @property
    def monitor(self) -> tuple[str, str]:
        return self.scheduled(names.MONITOR_SERVICE)

    @property
    def evaluator(self) -> tuple[str, str]:
        return self.scheduled(names.ROLLOUT_SERVICE)


def of_type(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def _one(template: Template, resource_type: str) -> tuple[str, dict[str, Any]]:
    found = of_type(template, resource_type)
    if len(found) != 1:
        raise TemplateError(f"expected one {resource_type}, found {sorted(found)}")
    return next(iter(found.items()))


def _target_of(value: Any) -> str | None:
    """The logical ID an ``Fn::GetAtt [id, Arn]`` or ``Ref`` names."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def find_wiring(template: Template) -> Wiring:
    """Which function is which, from the subscription, the API and the schedules."""
    functions = of_type(template, FUNCTION)
    _, subscription = _one(template, SUBSCRIPTION_FILTER)
    properties = subscription["Properties"]
    ingest = _target_of(properties["DestinationArn"])
    log_group = _target_of(properties["LogGroupName"])
    writers = [
        logical_id
        for logical_id, function in functions.items()
        if _target_of(function["Properties"].get("LoggingConfig", {}).get("LogGroup")) == log_group
    ]
    if ingest not in functions or len(writers) != 1:
        raise TemplateError(
            f"the log subscription must link one function's log group to a function; "
            f"found writers {writers} and destination {ingest}"
        )
    schedules = {}
    for rule_id, rule in of_type(template, RULE).items():
        rule_properties = rule["Properties"]
        for target in rule_properties.get("Targets", []):
            function = _target_of(target.get("Arn"))
            if "ScheduleExpression" in rule_properties and function in functions:
                schedules[function] = rule_id
    api, _ = _one(template, REST_API)
    return Wiring(
        predict=writers[0],
        ingest=ingest,
        api=api,
        filter_pattern=str(properties["FilterPattern"]),
        schedules=schedules,
        services={
            logical_id: str(_environment(function).get(names.POWERTOOLS_SERVICE_NAME, ""))
            for logical_id, function in functions.items()
        },
    )


def _environment(resource: Mapping[str, Any]) -> dict[str, Any]:
    return dict(resource.get("Properties", {}).get("Environment", {}).get("Variables", {}))


def references(value: Any) -> Iterator[str]:
    """Every logical ID or pseudo parameter a (possibly intrinsic) value refers to."""
    if isinstance(value, dict):
        if "Ref" in value:
            yield str(value["Ref"])
        elif "Fn::GetAtt" in value:
            yield str(value["Fn::GetAtt"][0])
        elif "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            yield from re.findall(r"\$\{([^}.!]+)[^}]*\}", value["Fn::Sub"])
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


@dataclass(frozen=True, kw_only=True)
class Names:
    """What intrinsic functions resolve to locally: ``Ref`` values (physical names and
    pseudo parameters) and ``Fn::GetAtt`` values (``"Id.Attribute"``)."""

    refs: Mapping[str, str]
    attributes: Mapping[str, str]

    def resolve(self, value: Any, *, where: str) -> Any:
        """``value`` with Ref, Fn::GetAtt, Fn::Join and Fn::Sub replaced by strings."""
        if isinstance(value, list):
            return [self.resolve(item, where=where) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, argument, where)
        return {key: self.resolve(item, where=where) for key, item in value.items()}

    def _intrinsic(self, key: str, argument: Any, where: str) -> str:
        if key == "Ref":
            return self._lookup(self.refs, str(argument), where)
        if key == "Fn::GetAtt":
            return self._lookup(self.attributes, ".".join(argument), where)
        if key == "Fn::Join":
            separator, parts = argument
            return str(separator).join(str(p) for p in self.resolve(parts, where=where))
        if key == "Fn::Sub" and isinstance(argument, str):
            return re.sub(
                r"\$\{([^}]+)\}", lambda match: self._sub(match.group(1), where), argument
            )
        raise TemplateError(f"{where}: {key} is not resolved locally")

    def _sub(self, name: str, where: str) -> str:
        if "." in name:
            return self._lookup(self.attributes, name, where)
        return self._lookup(self.refs, name, where)

    @staticmethod
    def _lookup(table: Mapping[str, str], key: str, where: str) -> str:
        if key not in table:
            raise TemplateError(f"{where}: {key} has no local value")
        return table[key]


def derive_sam_template(
    template: Template,
    *,
    local_names: Names,
    code_dir: str,
    architecture: str,
    environment: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> Template:
    """The template SAM CLI runs: the synthesized functions and REST API, rewritten as
    :data:`REWRITES` says. ``environment`` is added to every function's variables,
    ``overrides`` per function (logical ID -> variables)."""
    overrides = overrides or {}
    resources: dict[str, Any] = {}
    for logical_id, function in of_type(template, FUNCTION).items():
        resources[logical_id] = _local_function(
            logical_id,
            function,
            local_names=local_names,
            code_dir=code_dir,
            architecture=architecture,
            environment={**environment, **overrides.get(logical_id, {})},
        )
    aliases = {
        logical_id: _target_of(alias["Properties"]["FunctionName"])
        for logical_id, alias in of_type(template, ALIAS).items()
    }
    for resource_type in API_TYPES:
        for logical_id, resource in of_type(template, resource_type).items():
            resources[logical_id] = _local_api_resource(resource, aliases=aliases)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"derived for the local emulator from: {template.get('Description', '')}",
        "Resources": resources,
    }


def _local_function(
    logical_id: str,
    function: Mapping[str, Any],
    *,
    local_names: Names,
    code_dir: str,
    architecture: str,
    environment: Mapping[str, str],
) -> dict[str, Any]:
    properties = function["Properties"]
    variables = local_names.resolve(_environment(function), where=f"{logical_id} Environment")
    local = {key: copy.deepcopy(properties[key]) for key in FUNCTION_KEYS if key in properties}
    local.update(
        Code=code_dir,
        Architectures=[architecture],
        Environment={"Variables": {**variables, **environment}},
    )
    # No asset metadata: SAM would swap Code back to the synthesized (arm64) asset.
    return {"Type": FUNCTION, "Properties": local}


def _local_api_resource(resource: Mapping[str, Any], *, aliases: Mapping[str, str | None]) -> Any:
    local = copy.deepcopy(dict(resource))
    local.pop("Metadata", None)
    properties = local.setdefault("Properties", {})
    if local["Type"] == REST_API and properties.get("BinaryMediaTypes"):
        properties["Body"] = {
            "swagger": "2.0",
            "info": {"title": str(properties.get("Name", "api")), "version": "1"},
            "paths": {},
            "x-amazon-apigateway-binary-media-types": list(properties["BinaryMediaTypes"]),
        }
    if local["Type"] == "AWS::ApiGateway::Method":
        local["Properties"] = {key: properties[key] for key in METHOD_KEYS if key in properties}
        local["Properties"]["Integration"] = _to_functions(properties["Integration"], aliases)
    if local["Type"] == "AWS::ApiGateway::Stage":
        local["Properties"] = {k: properties[k] for k in ("StageName", "RestApiId")}
    local.pop("DependsOn", None)
    return local


def _to_functions(value: Any, aliases: Mapping[str, str | None]) -> Any:
    """An integration URI naming an alias, naming its function instead."""
    if isinstance(value, list):
        return [_to_functions(item, aliases) for item in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in aliases:
            return {"Fn::GetAtt": [aliases[value["Ref"]], "Arn"]}
        return {key: _to_functions(item, aliases) for key, item in value.items()}
    return value


def stateful_references(template: Template, wiring: Wiring) -> dict[str, str]:
    """Logical ID -> type of the resources the functions' environments and the schedules'
    inputs name: what must exist locally before they run."""
    resources = template.get("Resources", {})
    values: list[Any] = [_environment(f) for f in of_type(template, FUNCTION).values()]
    values.extend(resources[rule]["Properties"] for rule in wiring.schedules.values())
    found: dict[str, str] = {}
    for value in values:
        for name in references(value):
            if name in resources and resources[name]["Type"] not in (FUNCTION, RULE):
                found[name] = str(resources[name]["Type"])
    return found


def dumps(template: Template) -> str:
    return json.dumps(template, indent=1, sort_keys=True)
