"""Every Kubernetes object the Kubernetes tier declares, per stack, checked by the field's tools.

The objects are rebuilt from the inputs recorded under Pulumi mocks (what the provider would
send to the API server), then:
- built-in kinds: `kubernetes-validate --strict` for the stack's configured Kubernetes version;
- custom resources (Traefik Middleware, cert-manager ClusterIssuer): the openAPIV3Schema of the
  CRD that the installing chart ships (rendered by Helm from the vendored archive), structurally:
  unknown fields are errors;
- Helm releases are rendered and validated, and checkov runs over the rendered objects together
  with these, in test_helm_releases.py (one checkov run per stack; suppressions live in the
  objects as `checkov.io/skipN` annotations with their reason).
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pulumi
import pytest

from components.address_plan import plan_addresses
from components.connections import DataConnections, MariaDbConnection, RabbitMqConnection, RedisConnection
from components.kubernetes_tier import app_source_cidrs
from components.settings import StackSettings
from tests.harness import ROOT, SECRET_SIG, ResourceRecord, load_stack_settings, run_program
from tests.validation.helm_layer import crd_schemas

STACKS = ("dev", "staging", "prod")
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = Path(__file__).with_name("checkov-kubernetes.yaml")
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

def settings_for(stack: str) -> StackSettings:
    return load_stack_settings(stack)


def connections_for(settings: StackSettings) -> DataConnections:
    """The data tier's connection contract for this stack's data settings and address plan."""
    plan = plan_addresses(settings.network)
    data = settings.data
    secret = pulumi.Output.secret("fake-password")
    db = tuple(plan.addresses("mariadb", data.mariadb.nodes))
    redis = tuple(plan.addresses("redis", data.redis.nodes))
    mq = tuple(plan.addresses("rabbitmq", data.rabbitmq.nodes))
    sentinel = data.redis.nodes >= 3
    return DataConnections(
        mariadb=MariaDbConnection(db, db[0], 3306, data.mariadb.database, data.mariadb.user, secret, data.tls),
        redis=RedisConnection(
            redis,
            redis[0],
            6379,
            26379 if sentinel else None,
            data.redis.sentinel_master if sentinel else None,
            secret,
            data.tls,
        ),
        rabbitmq=RabbitMqConnection(
            mq, 5671 if data.tls else 5672, data.rabbitmq.vhost, data.rabbitmq.user, secret, data.tls
        ),
        ca_certificate=pulumi.Output.secret("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
        if data.tls
        else None,
    )


@cache
def tier_records(stack: str) -> tuple[ResourceRecord, ...]:
    """Every resource of the whole program for this stack, under mocks: what `pulumi up` declares."""
    return tuple(run_program(stack).resources)


def _normal(value: Any) -> Any:
    """Undo the wire form: secrets unwrapped, integral floats back to ints (JSON numbers are doubles)."""
    if isinstance(value, dict):
        if SECRET_SIG in value.values() and "value" in value:
            return _normal(value["value"])
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def manifests(stack: str) -> list[dict[str, Any]]:
    objects = []
    for record in tier_records(stack):
        if not record.type.startswith("kubernetes:") or record.type == HELM_RELEASE:
            continue
        objects.append(_normal(record.inputs))
    return objects


def _validate_builtin(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_object_passes_strict_schema_validation(stack: str, render_stack: Any) -> None:
    version = f"{settings_for(stack).kubernetes.kubernetes_minor}.0"
    objects = manifests(stack)
    assert len(objects) >= 15  # namespaces, guardrails, policies, secret, workloads
    # The CRDs the charts install, from the very archives the releases install.
    schemas = crd_schemas([obj for _, rendered in render_stack(stack) for obj in rendered])
    custom = 0
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in schemas:
            schemas[key].validate(obj)
            custom += 1
        else:
            _validate_builtin(obj, version)
    assert custom >= 3  # the Middlewares (+ the ClusterIssuer where TLS is on)


def test_kubernetes_validate_catches_what_strict_mode_is_for() -> None:
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"ports": [], "typo": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_builtin(bad, "1.31.0")


def test_only_helm_releases_and_declared_custom_kinds_escape_the_builtin_schemas() -> None:
    kinds = {r.type for stack in STACKS for r in tier_records(stack) if r.type.startswith("kubernetes:")}
    custom = {t for t in kinds if t.split(":")[1].split("/")[0] in ("traefik.io", "cert-manager.io", "helm.sh")}
    assert custom == {
        "kubernetes:traefik.io/v1alpha1:Middleware",
        "kubernetes:cert-manager.io/v1:ClusterIssuer",
        HELM_RELEASE,
    }


def checkov_summary(directory: Path) -> dict[str, Any]:
    assert CHECKOV.exists(), (
        f"{CHECKOV} missing: python3 -m venv .venv-checkov && .venv-checkov/bin/pip install checkov"
    )
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--config-file",
            str(CHECKOV_CONFIG),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    return {"summary": report["summary"], "failed": report.get("results", {}).get("failed_checks", [])}


@pytest.mark.parametrize("stack", STACKS)
def test_data_egress_policy_mirrors_the_sources_the_data_firewalls_admit(stack: str) -> None:
    settings = settings_for(stack)
    plan = plan_addresses(settings.network)
    (policy,) = [o for o in manifests(stack) if o["metadata"]["name"] == "allow-data-tier-egress"]
    destinations = connections_for(settings).destinations()
    (source,) = app_source_cidrs(settings.kubernetes, plan)
    allowed = {
        (peer["ipBlock"]["cidr"], port["port"])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    }
    if settings.kubernetes.data_path == "vpc":
        # The firewall admits the cluster's subnet; the policy names each data VM inside the VPC.
        assert allowed == {(f"{host}/32", port) for host, port in destinations}
        assert source == plan.subnets["app"].cidr_str
    else:
        assert allowed == {(source, port) for _, port in destinations}
        assert source == "192.168.128.0/17"
