"""Render a kustomization the way `kubectl kustomize` does, for the subset deploy/kubernetes uses.

Supported: ``resources`` (files and kustomization folders), ``namespace``, ``labels`` (pairs on
metadata only), ``images`` (containers' image, anywhere in a resource) and ``patches`` with a
``path`` to strategic-merge patches matched by kind and name. Anything else fails loudly, so the
kustomizations cannot drift into features this renderer would silently get wrong.

Strategic merge as kustomize applies it: maps merge, ``null`` deletes; lists of core kinds
merge by their Kubernetes merge key (containers by name, ...); lists in custom resources have
no schema there and are replaced whole.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
#: Kinds kustomize knows the schema of (core and apps API groups), whose lists merge by key.
SCHEMA_KINDS = {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service",
                "StatefulSet", "DaemonSet", "Job", "Pod"}
#: Kubernetes' patchMergeKey of the lists these manifests patch.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "envFrom": None,
              "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort"}
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "PersistentVolume", "StorageClass"}


class KustomizeError(ValueError):
    """A kustomization uses something this renderer does not support, or is inconsistent."""


def load_documents(path: Path) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(folder: Path) -> list[Document]:
    """Every resource of the kustomization in ``folder``, transformed, in kustomize's order."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{folder}: unsupported kustomization fields {sorted(unknown)}")
    documents: list[Document] = []
    for entry in kustomization.get("resources", []):
        target = (folder / entry).resolve()
        documents += render(target) if target.is_dir() else load_documents(target)
    _check_unique(documents, folder)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{folder}: only patches with a path are supported: {patch}")
        for body in load_documents(folder / patch["path"]):
            _apply_patch(documents, body, folder)
    for image in kustomization.get("images", []):
        for doc in documents:
            _set_images(doc, image)
    if "namespace" in kustomization:
        for doc in documents:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        if set(label) - {"pairs"}:
            raise KustomizeError(f"{folder}: labels support pairs only (metadata labels)")
        for doc in documents:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return documents


def identity(doc: Document) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _check_unique(documents: list[Document], folder: Path) -> None:
    seen = set()
    for doc in documents:
        if identity(doc) in seen:
            raise KustomizeError(f"{folder}: {identity(doc)} is declared twice")
        seen.add(identity(doc))


def _apply_patch(documents: list[Document], patch: Document, folder: Path) -> None:
    matches = [doc for doc in documents if identity(doc) == identity(patch)
               and doc["apiVersion"].split("/")[0] == patch["apiVersion"].split("/")[0]]
    if len(matches) != 1:
        raise KustomizeError(f"{folder}: patch {identity(patch)} matches {len(matches)} resources")
    target = matches[0]
    merged = strategic_merge(target, patch, by_key=patch["kind"] in SCHEMA_KINDS)
    target.clear()
    target.update(merged)


def strategic_merge(base: Any, patch: Any, by_key: bool, field: str = "") -> Any:
    """``patch`` merged into a copy of ``base``."""
    if isinstance(patch, dict) and isinstance(base, dict):
        if any(key.startswith("$") for key in patch):
            raise KustomizeError(f"patch directives are not supported: {sorted(patch)}")
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, by_key, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(base, list) and by_key and MERGE_KEYS.get(field):
        return _merge_list(base, patch, MERGE_KEYS[field])
    return copy.deepcopy(patch)


def _merge_list(base: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = copy.deepcopy(base)
    for item in patch:
        existing = [i for i, old in enumerate(merged) if old.get(key) == item.get(key)]
        if existing:
            merged[existing[0]] = strategic_merge(merged[existing[0]], item, True)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _set_images(node: Any, image: dict[str, str]) -> None:
    """kustomize's images transformer: every ``image`` of a container whose name matches."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"containers", "initContainers"} and isinstance(value, list):
                for container in value:
                    container["image"] = _retag(container.get("image", ""), image)
            else:
                _set_images(value, image)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, image)


def _retag(reference: str, image: dict[str, str]) -> str:
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    name, tag = (reference[:colon], reference[colon + 1:]) if colon > slash else (reference, "")
    if name != image["name"]:
        return reference
    return f"{image.get('newName', name)}:{image.get('newTag', tag)}"
