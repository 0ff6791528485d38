"""Policies on the rendered manifests: probes, resources, hardening, the audit log's single writer, and
NetworkPolicies that allow exactly the declared call graph."""

from __future__ import annotations

import re
from typing import Any

import pytest
from vigil_deploy_support import REPO, SERVICES, by_component, of_kind, production_values

from vigil_kit import topics

COMPONENT = "app.kubernetes.io/component"


@pytest.fixture(params=["default_objects", "production_objects"])
def objects(request) -> list[dict[str, Any]]:
    return request.getfixturevalue(request.param)


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def settings_default(name: str, field: str) -> int:
    settings = __import__(f"vigil_{name}.config", fromlist=["Settings"]).Settings
    return settings.model_fields[field].default


def test_every_deployment_has_grpc_liveness_on_the_process_and_readiness_on_its_dependencies(objects):
    for name, deployment in by_component(objects, "Deployment").items():
        for container in pod_spec(deployment)["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            liveness, readiness = container["livenessProbe"], container["readinessProbe"]
            assert liveness["grpc"] == {"port": ports["grpc"], "service": "liveness"}, name
            assert readiness["grpc"] == {"port": ports["grpc"], "service": ""}, name
            assert container["startupProbe"]["grpc"]["service"] == "liveness"


def test_every_container_has_cpu_and_memory_requests_and_limits(objects):
    for deployment in of_kind(objects, "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, deployment["metadata"]["name"]


def test_every_pod_runs_as_non_root_with_a_read_only_root_and_no_privileges(objects):
    workloads = [pod_spec(d) for d in of_kind(objects, "Deployment")] + [
        j["spec"]["template"]["spec"] for j in of_kind(objects, "Job")
    ]
    assert workloads
    for spec in workloads:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            # The only writable paths are emptyDirs (the root filesystem is read-only).
            volumes = {v["name"]: v for v in spec["volumes"]}
            for mount in container.get("volumeMounts", []):
                assert "emptyDir" in volumes[mount["name"]] or mount.get("readOnly") is True


def test_the_audit_log_has_one_replica_no_autoscaler_and_never_two_pods_at_once(objects):
    audit = by_component(objects, "Deployment")["audit"]
    assert audit["spec"]["replicas"] == 1
    assert audit["spec"]["strategy"] == {"type": "Recreate"}
    assert "audit" not in by_component(objects, "HorizontalPodAutoscaler")
    # Its disruption budget must not block a node drain forever.
    assert by_component(objects, "PodDisruptionBudget")["audit"]["spec"]["maxUnavailable"] == 1


def test_every_other_service_scales_with_an_autoscaler_and_keeps_a_disruption_budget(objects):
    hpas = by_component(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == set(SERVICES) - {"audit"}
    deployments = by_component(objects, "Deployment")
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployments[name]["metadata"]["name"]
        assert "replicas" not in deployments[name]["spec"], "the autoscaler owns the replica count"
    assert set(by_component(objects, "PodDisruptionBudget")) == set(SERVICES)


def test_every_deployment_spreads_over_zones_and_nodes(objects):
    for deployment in of_kind(objects, "Deployment"):
        keys = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@pytest.mark.parametrize("name", SERVICES)
def test_service_ports_are_the_ports_the_service_settings_default_to(default_objects, name):
    service = by_component(default_objects, "Service")[name]
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {
        "grpc": settings_default(name, "grpc_port"),
        "metrics": settings_default(name, "metrics_port"),
    }


# --- NetworkPolicies and the one declared call graph ------------------------------------------------


def declared_calls(values: dict[str, Any]) -> dict[str, set[str]]:
    """The call graph as declared, once, in values (services.<name>.calls)."""
    return {name: set(svc["calls"]) for name, svc in values["services"].items() if svc["enabled"]}


def vigil_peers(rules: list[dict[str, Any]], key: str) -> set[str]:
    """The Vigil services a list of ingress/egress rules admits, by their component label."""
    found = set()
    for rule in rules:
        for peer in rule.get(key, []):
            labels = peer.get("podSelector", {}).get("matchLabels", {})
            if COMPONENT in labels and "namespaceSelector" not in peer:
                found.add(labels[COMPONENT])
    return found


def policies(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_component(objects, "NetworkPolicy")


@pytest.mark.parametrize("values_name", ["defaults", "production"])
def test_allowed_peers_between_services_equal_the_declared_call_graph(chart_values, render, values_name):
    values = chart_values if values_name == "defaults" else production_values()
    objects = render({} if values_name == "defaults" else values)
    # production values are a complete values file; merged with the defaults they are what helm installs
    calls = declared_calls(values)
    nps = policies(objects)
    for name in calls:
        spec = nps[name]["spec"]
        callers = {caller for caller, callees in calls.items() if name in callees}
        assert vigil_peers(spec.get("ingress", []), "from") == callers, f"ingress of {name}"
        assert vigil_peers(spec.get("egress", []), "to") == calls[name], f"egress of {name}"


def test_the_graph_in_values_is_the_call_graph_of_the_architecture(chart_values):
    # ARCHITECTURE.md: ingest and sharing fall back to the registry for device facts; the archive asks
    # the registry (devices) and sharing (Authorize); the audit service composes compliance reports from
    # the registry's summary and the archive's coverage; the registry calls no one.
    assert declared_calls(chart_values) == {
        "registry": set(),
        "ingest": {"registry"},
        "archive": {"registry", "sharing"},
        "sharing": {"registry"},
        "audit": {"registry", "archive"},
    }


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_address_the_code_uses_is_a_declared_call(chart_values, name):
    source = "\n".join(p.read_text() for p in (REPO / "services" / name / "src").rglob("*.py"))
    used = set(re.findall(r"settings\.(registry|ingest|archive|sharing|audit)_addr\b", source))
    assert used <= set(chart_values["services"][name]["calls"]), f"{name} calls {used} undeclared"


def test_changing_the_declared_graph_changes_the_policies(render):
    # Shows the graph test can fail: the policies follow the declaration, nothing else.
    objects = render({"services": {"registry": {"calls": ["audit"]}}})
    nps = policies(objects)
    assert "registry" in vigil_peers(nps["audit"]["spec"]["ingress"], "from")
    assert vigil_peers(nps["registry"]["spec"]["egress"], "to") == {"audit"}


def test_every_service_has_a_network_policy_and_everything_else_is_denied(objects):
    nps = policies(objects)
    assert set(SERVICES) <= set(nps)
    for name in SERVICES:
        assert nps[name]["spec"]["podSelector"]["matchLabels"][COMPONENT] == name
        assert sorted(nps[name]["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    deny = [n for n in of_kind(objects, "NetworkPolicy") if n["metadata"]["name"] == "vigil-default-deny"]
    assert len(deny) == 1
    spec = deny[0]["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "vigil", "app.kubernetes.io/instance": "vigil"}
    }
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in spec and "egress" not in spec


def test_grpc_is_admitted_only_on_the_grpc_port_and_scrapes_only_on_the_metrics_port(default_objects):
    services = by_component(default_objects, "Service")
    for name, np in policies(default_objects).items():
        if name not in SERVICES:
            continue
        ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        for rule in np["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] in ([ports["grpc"]], [ports["metrics"]])


def test_only_services_that_store_objects_may_reach_object_storage(default_objects, chart_values):
    s3_peers = chart_values["networkPolicy"]["s3"]["peers"]
    for name, np in policies(default_objects).items():
        if name not in SERVICES:
            continue
        reaches = any(rule["to"] == s3_peers for rule in np["spec"]["egress"])
        assert reaches == chart_values["services"][name]["usesS3"], name


def test_declared_topics_are_the_topics_of_vigil_kit(chart_values):
    declared = {t["name"] for t in chart_values["kafka"]["topics"]}
    assert declared == set(topics.ALL)
    for name, svc in chart_values["services"].items():
        assert set(svc["kafka"]["produces"]) | set(svc["kafka"]["consumes"]) <= set(topics.ALL), name
        if name != "audit":
            # Every service writes its audit records through its outbox.
            assert topics.AUDIT_RECORDS in svc["kafka"]["produces"], name
    consumers = [
        n for n, s in chart_values["services"].items() if topics.AUDIT_RECORDS in s["kafka"]["consumes"]
    ]
    assert consumers == ["audit"]
