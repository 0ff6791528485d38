"""Fixtures of the deployment checks: the chart loaded once, renders parsed into objects."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The test modules import their shared helpers by a name unique in the repository.
sys.path.insert(0, str(Path(__file__).parent))

from vigil_deploy_support import CHART_DIR, NAMESPACE, RELEASE, Render, parse_manifests, production_values


@pytest.fixture(scope="session")
def helm():
    import helm_python

    return helm_python


@pytest.fixture(scope="session")
def chart(helm):
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render_raw(chart) -> Callable[..., dict[str, str]]:
    def _render(values: dict[str, Any] | None = None) -> dict[str, str]:
        return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)

    return _render


@pytest.fixture(scope="session")
def render(render_raw) -> Render:
    def _render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return parse_manifests(render_raw(values))

    return _render


@pytest.fixture(scope="session")
def default_objects(render) -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def production_objects(render) -> list[dict[str, Any]]:
    return render(production_values())


@pytest.fixture(scope="session")
def chart_values(chart) -> dict[str, Any]:
    return chart.values
