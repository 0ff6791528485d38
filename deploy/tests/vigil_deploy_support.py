"""What the deployment checks share: the repository's paths and the parsing of rendered manifests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "deploy" / "helm" / "vigil"
PRODUCTION_VALUES = REPO / "deploy" / "values-production.yaml"
SERVICES = ("registry", "ingest", "archive", "sharing", "audit")
RELEASE = "vigil"
NAMESPACE = "vigil"

Render = Callable[..., list[dict[str, Any]]]


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


def parse_manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every object of a render, in template order (NOTES.txt and empty documents left out)."""
    objects = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                objects.append(doc)
    return objects


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def by_component(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of one kind keyed by their app.kubernetes.io/component label."""
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in of_kind(objects, kind)
        if "app.kubernetes.io/component" in o["metadata"].get("labels", {})
    }


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
