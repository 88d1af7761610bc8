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

from typing import Any

import kubernetes_validate
import pulumi
import pytest

from components.data.connections import DataConnections
from components.data.mariadb.cluster import MariaDbConnection, database_proxy
from components.data.mariadb.config import MariaDbTopology, topology_for
from components.data.rabbitmq.cluster import RabbitMqConnection
from components.data.redis.cluster import RedisConnection
from components.data.services import stack_address_plan
from components.foundation.reach import app_source_cidrs
from components.settings import StackSettings
from tests.helpers import STACKS, ProgramRuns
from tests.validation.helm_layer import crd_schemas
from tools.offline import SECRET_SIG, ProgramRun, load_stack_settings

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

def settings_for(stack: str) -> StackSettings:
    return load_stack_settings(stack)


def connections_for(settings: StackSettings) -> DataConnections:
    """The data tier's connection contract for this stack's data settings and address plan."""
    plan = stack_address_plan(settings.network)
    data = settings.data
    secret = pulumi.Output.secret("fake-password")
    db = tuple(plan.addresses("mariadb", data.mariadb.nodes))
    redis = tuple(plan.addresses("redis", data.redis.nodes))
    mq = tuple(plan.addresses("rabbitmq", data.rabbitmq.nodes))
    sentinel = data.redis.nodes >= 3
    topology = topology_for(data.mariadb.nodes)
    return DataConnections(
        services={
            "mariadb": MariaDbConnection(
                hosts=db,
                primary_host=db[0],
                port=3306,
                database=data.mariadb.database,
                user=data.mariadb.user,
                password=secret,
                tls=data.tls,
                replica_host=db[1] if topology is MariaDbTopology.PRIMARY_REPLICA else None,
                proxy=database_proxy(settings.kubernetes.namespace.name, db)
                if topology is MariaDbTopology.GALERA
                else None,
            ),
            "redis": RedisConnection(
                hosts=redis,
                primary_host=redis[0],
                port=6379,
                sentinel_port=26379 if sentinel else None,
                sentinel_master=data.redis.sentinel_master if sentinel else None,
                password=secret,
                tls=data.tls,
            ),
            "rabbitmq": RabbitMqConnection(
                hosts=mq,
                port=5671 if data.tls else 5672,
                vhost=data.rabbitmq.vhost,
                user=data.rabbitmq.user,
                password=secret,
                tls=data.tls,
            ),
        },
        ca_certificate=pulumi.Output.secret("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
        if data.tls
        else None,
    )


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


def manifests(run: ProgramRun) -> list[dict[str, Any]]:
    """Every Kubernetes object of the whole program's run, as `pulumi up` would declare it."""
    objects = []
    for record in run.resources:
        if not record.type.startswith("kubernetes:") or record.type == HELM_RELEASE:
            continue
        objects.append(_normal(record.inputs))
    return objects


def _validate_builtin(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_object_passes_strict_schema_validation(
    stack: str, program_runs: ProgramRuns, render_stack: Any
) -> None:
    version = f"{settings_for(stack).kubernetes.kubernetes_minor}.0"
    objects = manifests(program_runs[stack])
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


def test_only_helm_releases_and_declared_custom_kinds_escape_the_builtin_schemas(program_runs: ProgramRuns) -> None:
    kinds = {r.type for stack in STACKS for r in program_runs[stack].resources if r.type.startswith("kubernetes:")}
    custom = {t for t in kinds if t.split(":")[1].split("/")[0] in ("traefik.io", "cert-manager.io", "helm.sh")}
    assert custom == {
        "kubernetes:traefik.io/v1alpha1:Middleware",
        "kubernetes:cert-manager.io/v1:ClusterIssuer",
        HELM_RELEASE,
    }


@pytest.mark.parametrize("stack", STACKS)
def test_data_egress_policy_mirrors_the_sources_the_data_firewalls_admit(stack: str, program_runs: ProgramRuns) -> None:
    settings = settings_for(stack)
    plan = stack_address_plan(settings.network)
    (policy,) = [o for o in manifests(program_runs[stack]) if o["metadata"]["name"] == "allow-data-tier-egress"]
    destinations = connections_for(settings).destinations()
    allowed = {
        (peer["ipBlock"]["cidr"], port["port"])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        for port in rule["ports"]
    }
    if settings.kubernetes.data_path == "vpc":
        # The firewall admits the cluster's subnet; the policy names each data VM inside the VPC.
        assert allowed == {(f"{host}/32", port) for host, port in destinations}
        assert app_source_cidrs(settings.kubernetes, plan) == (plan.subnets["app"].cidr_str,)
    else:
        # Pods dial the data VMs' private-network addresses (assigned at creation) on the data
        # ports; the firewalls on the other side admit only this cluster's nodes.
        assert allowed == {("192.168.128.0/17", port) for _, port in destinations}
