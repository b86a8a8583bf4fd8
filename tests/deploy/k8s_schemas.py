"""Offline schemas for every kind deploy/kubernetes renders, unknown fields rejected.

Core kinds: the upstream Kubernetes schemas bundled by ``kubernetes-validate`` (strict
variant). Strimzi and Flink operator kinds: the ``openAPIV3Schema`` of the CRDs kept in
/work/shared/k8s-crds (see its README), tightened so an unknown field fails as the API server's
field validation would report it. Prometheus Operator kinds: no CRD is kept, so a strict schema
of the fields these manifests use (their meaning per the operator's API reference).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

#: The Kubernetes release the manifests are checked against (kubernetes-validate bundles
#: 1.25 to 1.37); a release current managed clusters offer.
KUBERNETES_VERSION = "1.33"
CRD_DIR = Path(__file__).resolve().parents[3] / "shared" / "k8s-crds"

Schema = dict[str, Any]
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
_ENDPOINT = {
    "type": "object", "additionalProperties": False, "required": ["port"],
    "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                   "interval": {"type": "string", "pattern": r"^(\d+(ms|s|m|h))+$"}},
}
_RULE = {
    "type": "object", "additionalProperties": False, "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {"alert": {"type": "string"}, "record": {"type": "string"},
                   "expr": {"type": "string"}, "for": {"type": "string"},
                   "labels": _STRING_MAP, "annotations": _STRING_MAP},
}


def _monitoring(spec: Schema) -> Schema:
    return {"type": "object", "additionalProperties": False,
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"},
                           "kind": {"type": "string"}, "metadata": {"type": "object"},
                           "spec": spec}}


MONITORING_SCHEMAS: dict[str, Schema] = {
    "ServiceMonitor": _monitoring({
        "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
        "properties": {"selector": _SELECTOR, "endpoints": {"type": "array", "items": _ENDPOINT,
                                                            "minItems": 1}}}),
    "PodMonitor": _monitoring({
        "type": "object", "additionalProperties": False,
        "required": ["selector", "podMetricsEndpoints"],
        "properties": {"selector": _SELECTOR,
                       "podMetricsEndpoints": {"type": "array", "items": _ENDPOINT,
                                               "minItems": 1}}}),
    "PrometheusRule": _monitoring({
        "type": "object", "additionalProperties": False, "required": ["groups"],
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "rules"],
            "properties": {"name": {"type": "string"}, "interval": {"type": "string"},
                           "rules": {"type": "array", "items": _RULE}}}}}}),
}


def strict(schema: Schema) -> Schema:
    """A copy of a CRD schema in which every object that lists its properties allows no other
    (unless it declares additionalProperties or preserves unknown fields itself)."""
    schema = copy.deepcopy(schema)

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    # The API server always accepts these at the root, whether the CRD lists them or not.
    for implicit in ("apiVersion", "kind"):
        schema["properties"].setdefault(implicit, {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object"})
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], Schema]:
    """(apiVersion, kind) -> strict schema, for every served version of every kept CRD."""
    schemas = {}
    for path in sorted([*CRD_DIR.glob("*.yaml"), *CRD_DIR.glob("*.yml")]):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(version["schema"]["openAPIV3Schema"])
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate(document: dict[str, Any]) -> None:
    """Raise if ``document`` does not validate against the schema of its kind, or its kind has
    no schema here."""
    kind, api_version = document["kind"], document["apiVersion"]
    if (api_version, kind) in crd_schemas():
        jsonschema.Draft7Validator(crd_schemas()[(api_version, kind)]).validate(document)
    elif api_version == "monitoring.coreos.com/v1" and kind in MONITORING_SCHEMAS:
        jsonschema.Draft7Validator(MONITORING_SCHEMAS[kind]).validate(document)
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def validate_pod_template(template: dict[str, Any]) -> None:
    """A FlinkDeployment's podTemplate against the core PodTemplateSpec schema, which checks
    what the CRD's copy of it does not (types of probes, quantities, ...)."""
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"},
         "template": template},
        KUBERNETES_VERSION, strict=True,
    )
