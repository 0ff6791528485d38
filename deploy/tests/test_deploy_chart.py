"""The chart as Helm and Kubernetes see it: strict lint, offline renders, Kubernetes 1.30 schemas, values schema."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from vigil_deploy_support import (
    CHART_DIR,
    RELEASE,
    SERVICES,
    by_component,
    deep_merge,
    of_kind,
    production_values,
)

from vigil_kit.service import env_names

KUBERNETES_VERSION = "1.30.0"
BUILT_IN_API_VERSIONS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
CUSTOM_API_VERSIONS = {"kafka.strimzi.io/v1beta2", "monitoring.coreos.com/v1"}
# Settings whose values are credentials: they may only ever come from a Secret.
SECRET_SETTINGS = ("DATABASE_URL", "SERVICE_TOKEN", "S3_ACCESS_KEY", "S3_SECRET_KEY", "KAFKA_PASSWORD")

ALL_OPTIONAL_ON: dict[str, Any] = {
    "common": {"kafkaSecurityProtocol": "SASL_SSL"},
    "kafka": {"strimzi": {"enabled": True, "users": True, "partners": [{"unitId": "91320200554682701W"}]}},
    "buckets": {"enabled": True},
    "metrics": {
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    },
}


def settings_class(name: str):
    return __import__(f"vigil_{name}.config", fromlist=["Settings"]).Settings


def lint_errors(report: dict[str, Any]) -> list[str]:
    # Severity 2 is a warning and 3 an error; strict mode fails on both, and so do we.
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + report["errors"]


@pytest.mark.parametrize(
    "values",
    [{}, production_values(), ALL_OPTIONAL_ON],
    ids=["defaults", "production", "all-optional-on"],
)
def test_chart_lints_clean_in_strict_mode_for_kubernetes_1_30(helm, values):
    report = helm.lint(CHART_DIR, values, strict=True, kube_version="v1.30.0")
    assert report["total_charts_linted"] == 1
    assert lint_errors(report) == []


def test_strict_lint_reports_a_values_schema_violation(helm):
    # Shows the lint above can fail: a refused value is an error in the report.
    report = helm.lint(CHART_DIR, {"services": {"audit": {"replicas": 3}}}, strict=True)
    assert lint_errors(report)


@pytest.mark.parametrize("fixture", ["default_objects", "production_objects"])
def test_every_rendered_built_in_object_passes_kubernetes_validate_strict_1_30(fixture, request):
    objects = request.getfixturevalue(fixture)
    built_in = [o for o in objects if o["apiVersion"] in BUILT_IN_API_VERSIONS]
    assert {o["kind"] for o in built_in} >= {
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }
    for obj in built_in:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    unknown = {o["apiVersion"] for o in objects} - BUILT_IN_API_VERSIONS - CUSTOM_API_VERSIONS
    assert not unknown, f"rendered objects of unchecked API groups: {unknown}"


def test_kubernetes_validate_strict_refuses_an_unknown_container_field(default_objects):
    # Shows the validation above can fail: a misspelt field in a rendered Deployment is refused.
    deployment = copy.deepcopy(of_kind(default_objects, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_defaults_render_every_service_and_no_optional_resource(default_objects):
    assert set(by_component(default_objects, "Deployment")) == set(SERVICES)
    assert not [o for o in default_objects if o["apiVersion"] in CUSTOM_API_VERSIONS]
    assert not of_kind(default_objects, "Job")


def test_a_disabled_service_renders_nothing_of_its_own(render):
    objects = render({"services": {"sharing": {"enabled": False}}})
    components = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in objects}
    assert "sharing" not in components
    assert set(by_component(objects, "Deployment")) == set(SERVICES) - {"sharing"}


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ({"services": {"audit": {"replicas": 2}}}, "/services/audit"),
        (
            {
                "services": {
                    "audit": {
                        "autoscaling": {
                            "enabled": True,
                            "minReplicas": 1,
                            "maxReplicas": 3,
                            "targetCPUUtilizationPercentage": 70,
                        }
                    }
                }
            },
            "/services/audit",
        ),
        ({"services": {"ingest": {"calls": ["billing"]}}}, "/services/ingest/calls/0"),
        ({"services": {"ingest": {"grpcPort": 70000}}}, "/services/ingest/grpcPort"),
        (
            {"services": {"registry": {"settings": {"database_url": "postgresql+asyncpg://u:p@db/x"}}}},
            "database_url",
        ),
        ({"services": {"ingest": {"secrets": {"database": {"name": "", "key": "url"}}}}}, "/name"),
        ({"services": {"sharing": {"kafka": {"consumes": ["vigil.unknown.v1"]}}}}, "/consumes/0"),
        (
            {"kafka": {"topics": [{"name": "vigil.audit.records.v1", "partitions": 3, "retentionHours": 1}]}},
            "/partitions",
        ),
        ({"kafka": {"strimzi": {"partners": [{"unitId": "not-a-credit-code"}]}}}, "/unitId"),
        ({"common": {"logLevel": "LOUD"}}, "/common/logLevel"),
        ({"common": {"kafkaSecurityProtocol": "SASL_TLS"}}, "/common/kafkaSecurityProtocol"),
        ({"replicaCount": 3}, "replicaCount"),
    ],
    ids=[
        "audit-two-replicas",
        "audit-autoscaled",
        "unknown-callee",
        "port-out-of-range",
        "credential-in-settings",
        "secret-without-name",
        "unknown-topic",
        "audit-topic-partitioned",
        "partner-not-a-uscc",
        "unknown-log-level",
        "unknown-kafka-protocol",
        "unknown-top-level-key",
    ],
)
def test_values_schema_refuses_a_bad_value(chart, helm, bad, complaint):
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema(bad)
    assert complaint in str(refused.value)


def test_values_schema_accepts_the_defaults_and_the_production_example(chart):
    chart.validate_schema({})
    chart.validate_schema(production_values())


def test_no_secret_is_rendered_and_every_credential_comes_from_a_named_secret(production_objects):
    assert not of_kind(production_objects, "Secret")
    values = production_values()
    for name, deployment in by_component(production_objects, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        prefix = f"{name.upper()}_"
        # Production logs in to Kafka as each service's own Strimzi KafkaUser.
        expected = {"DATABASE_URL", "SERVICE_TOKEN", "KAFKA_PASSWORD"} | (
            {"S3_ACCESS_KEY", "S3_SECRET_KEY"} if values["services"][name]["usesS3"] else set()
        )
        assert {k.removeprefix(prefix) for k in env} == expected
        for var in env.values():
            assert "value" not in var and "secretKeyRef" in var["valueFrom"], var
        database = env[f"{prefix}DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert database == values["services"][name]["secrets"]["database"]
        kafka_password = env[f"{prefix}KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert kafka_password == {"name": f"{RELEASE}-{name}", "key": "password"}


def test_configmaps_hold_no_credential_setting(production_objects):
    for configmap in of_kind(production_objects, "ConfigMap"):
        for key in configmap.get("data", {}):
            assert not key.endswith(SECRET_SETTINGS), f"{configmap['metadata']['name']} holds {key}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_configmap_key_is_a_setting_the_service_reads(production_objects, name):
    configmap = next(
        c for c in of_kind(production_objects, "ConfigMap") if c["metadata"]["name"] == f"vigil-{name}-config"
    )
    known = set(env_names(settings_class(name)).values())
    assert set(configmap["data"]) - known == set()
    deployment = by_component(production_objects, "Deployment")[name]
    env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"configMapRef": {"name": f"vigil-{name}-config"}}]


def test_service_settings_from_values_reach_the_configmap_as_json_or_text(render):
    objects = render({"services": {"registry": {"settings": {"jurisdiction_prefixes": ["3202", "3203"]}}}})
    configmap = next(
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"] == "vigil-registry-config"
    )
    assert configmap["data"]["REGISTRY_JURISDICTION_PREFIXES"] == '["3202","3203"]'


@pytest.mark.parametrize("name", SERVICES)
def test_each_configmap_parses_into_the_service_settings(production_objects, name, monkeypatch):
    configmap = next(
        c for c in of_kind(production_objects, "ConfigMap") if c["metadata"]["name"] == f"vigil-{name}-config"
    )
    for key, value in configmap["data"].items():
        monkeypatch.setenv(key, value)
    # What the pod adds from Secrets (the SCRAM password is required with SASL_SSL).
    monkeypatch.setenv(f"{name.upper()}_KAFKA_PASSWORD", "from-the-kafka-user-secret")
    settings = settings_class(name)()
    values = production_values()["services"][name]
    assert settings.grpc_port == values["grpcPort"] and settings.metrics_port == values["metricsPort"]
    assert settings.kafka_bootstrap == production_values()["common"]["kafkaBootstrap"]
    assert (settings.kafka_security_protocol, settings.kafka_username) == ("SASL_SSL", f"{RELEASE}-{name}")
    for key, value in values["settings"].items():
        assert getattr(settings, key) == value


def test_a_changed_setting_rolls_the_pods_through_the_config_checksum(render, default_objects):
    before = by_component(default_objects, "Deployment")["ingest"]
    after = by_component(render({"services": {"ingest": {"settings": {"s3_threads": 32}}}}), "Deployment")[
        "ingest"
    ]
    key = "checksum/config"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][key]
        != (after["spec"]["template"]["metadata"]["annotations"][key])
    )


def test_the_audit_signing_key_is_mounted_from_its_secret_only_when_named(
    production_objects, default_objects
):
    produced = by_component(production_objects, "Deployment")["audit"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in produced["volumes"]}
    assert volumes["signing-key"]["secret"]["secretName"] == "vigil-audit-signing-key"
    audit_config = next(
        c for c in of_kind(production_objects, "ConfigMap") if c["metadata"]["name"] == "vigil-audit-config"
    )
    assert audit_config["data"]["AUDIT_SIGNING_KEY_FILE"] == "/etc/vigil/signing/signing-key.pem"
    default = by_component(default_objects, "Deployment")["audit"]["spec"]["template"]["spec"]
    assert "signing-key" not in {v["name"] for v in default["volumes"]}


def test_notes_name_every_secret_the_installer_must_create(render_raw):
    notes = render_raw(production_values())["vigil/templates/NOTES.txt"]
    values = production_values()
    assert values["secrets"]["s3"]["name"] in notes
    assert values["secrets"]["authPublicKeys"]["name"] in notes
    for name in SERVICES:
        assert values["services"][name]["secrets"]["database"]["name"] in notes
        assert values["services"][name]["secrets"]["serviceToken"]["name"] in notes
    assert "kubectl -n vigil get pods" in notes


def test_image_references_come_from_values_or_the_per_service_override(render, chart):
    objects = render(
        deep_merge({}, {"services": {"audit": {"image": "example.org/audit@sha256:" + "a" * 64}}})
    )
    deployments = by_component(objects, "Deployment")
    assert deployments["audit"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "example.org/audit@sha256:" + "a" * 64
    )
    version = chart.metadata["appVersion"]
    assert deployments["ingest"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"ghcr.io/vigil-city/vigil-ingest:{version}"
    )
