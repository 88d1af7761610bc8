"""Helpers every test layer shares: the stacks (discovered, never listed) and ways to look into a run.

Stacks are the `Pulumi.<stack>.yaml` files beside `Pulumi.yaml`; a test that cares what kind of
environment a stack is asks for the kind (`stacks_of_kind("production")`), not for a name.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import pulumi

from components.data.connections import DataConnections
from components.data.internal_ca import InternalCa, InternalCaArgs
from components.data.mariadb.cluster import MariaDbConnection, database_proxy
from components.data.placement import DataVmPlacement
from components.data.rabbitmq.cluster import RabbitMqConnection
from components.data.redis.cluster import RedisConnection
from components.data.services import SERVICES
from components.foundation.cloud_init import BaseHardening, base_cloud_config
from components.foundation.role_addon import RoleAddon
from components.settings import Environment, StackSettings
from components.settings.kubernetes import KubernetesSettings, offered_minors
from tools.offline import (
    ProgramRun,
    ResourceRecord,
    discover_stacks,
    load_stack_settings,
    run_program,
    unwrap_secret,
)

STACKS: tuple[str, ...] = tuple(discover_stacks())
DATA_ROLES: tuple[str, ...] = tuple(SERVICES)
INSTANCE = "linode:index/instance:Instance"
FIREWALL = "linode:index/firewall:Firewall"


@cache
def settings_of(stack: str) -> StackSettings:
    """The validated settings of a stack file (cheap, pure: cached per process)."""
    return load_stack_settings(stack)


def environment_of(stack: str) -> Environment:
    return settings_of(stack).environment


def stacks_of_kind(*kinds: Environment) -> list[str]:
    """The discovered stacks whose config says they are one of these kinds of environment."""
    return [stack for stack in STACKS if environment_of(stack) in kinds]


class ProgramRuns(Mapping[str, ProgramRun]):
    """The whole program run once per stack, on first use: `runs["prod"]`.

    One instance lives for the test session (tests/conftest.py), so every layer shares the runs.
    """

    def __init__(self) -> None:
        self._runs: dict[str, ProgramRun] = {}

    def __getitem__(self, stack: str) -> ProgramRun:
        if stack not in self._runs:
            if stack not in STACKS:
                raise KeyError(f"no Pulumi.{stack}.yaml; stacks: {', '.join(STACKS)}")
            self._runs[stack] = run_program(stack)
        return self._runs[stack]

    def __iter__(self) -> Iterator[str]:
        return iter(STACKS)

    def __len__(self) -> int:
        return len(STACKS)


# --- looking into a run -----------------------------------------------------------------------


def role_of(record: ResourceRecord) -> str:
    return next(t.split(":", 1)[1] for t in record.inputs.get("tags", []) if t.startswith("role:"))


def instances(run: ProgramRun) -> list[ResourceRecord]:
    return run.of_type(INSTANCE)


def role_vms(run: ProgramRun, role: str) -> list[ResourceRecord]:
    return [r for r in instances(run) if f"role:{role}" in r.inputs.get("tags", [])]


def data_vms(run: ProgramRun) -> list[ResourceRecord]:
    return [r for r in instances(run) if any(f"role:{role}" in r.inputs.get("tags", []) for role in DATA_ROLES)]


def firewall_of(run: ProgramRun, instance: ResourceRecord) -> ResourceRecord:
    firewalls = {int(r.id): r for r in run.of_type(FIREWALL)}
    return firewalls[int(instance.inputs["firewallId"])]


def vpc_address(instance: ResourceRecord) -> str:
    return next(i for i in instance.inputs["interfaces"] if i["purpose"] == "vpc")["ipv4"]["vpc"]


# --- one data component under mocks -------------------------------------------------------------

APP_SOURCES = ("10.30.2.0/24",)
BASTION = "10.30.0.10"


def placement_for(
    role: str,
    count: int,
    *,
    tls: bool = False,
    protect: bool = False,
    addon: RoleAddon | None = None,
    private_network: bool = False,
    app_namespace: str | None = "app",
) -> DataVmPlacement:
    """A placement like build_data_tier makes; call inside a run_component build."""
    return DataVmPlacement(
        label_prefix=f"platform-infra-test-{role}",
        region="eu-central",
        image="linode/debian12",
        vpc_subnet_id=pulumi.Output.from_input(4242),
        addresses=[f"10.30.1.{10 + i}" for i in range(count)],
        app_sources=APP_SOURCES,
        bastion_address=BASTION,
        base_cloud_config=base_cloud_config(BaseHardening(ssh_keys=["ssh-ed25519 AAAAC3Nza test"], hostname="x")),
        tags=["platform-infra", "env:test", f"role:{role}"],
        protect=protect,
        disk_encryption=True,
        backups_enabled=False,
        ca=InternalCa("test-ca", InternalCaArgs(common_name="test CA")) if tls else None,
        addon=addon,
        private_network=private_network,
        app_namespace=app_namespace,
    )


def user_data(record: ResourceRecord) -> str:
    metadatas, _ = unwrap_secret(record.inputs["metadatas"])
    return base64.b64decode(metadatas[0]["userData"]).decode()


def of_type(records: list[ResourceRecord], type_: str) -> list[ResourceRecord]:
    return [r for r in records if r.type == type_]


def firewall_rules(records: list[ResourceRecord]) -> dict[str, dict[str, Any]]:
    (firewall,) = of_type(records, "linode:index/firewall:Firewall")
    assert firewall.inputs["inboundPolicy"] == "DROP"
    return {rule["label"]: rule for rule in firewall.inputs["inbounds"]}


def assert_nothing_public(records: list[ResourceRecord]) -> None:
    for rule in firewall_rules(records).values():
        assert "0.0.0.0/0" not in rule.get("ipv4s", []) and "::/0" not in (rule.get("ipv6s") or [])


# --- the data -> app contract and application settings, as plain data --------------------------

# A plain value where the contract has an Output: pure code never reads it, and a module-level
# Output would outlive the Pulumi runtime of the test that created it.
PASSWORD: Any = "unused-in-pure-code"


def sample_connections(tls: bool, nodes: int = 3, galera_proxy: bool = False) -> DataConnections:
    """Hand-made connections; `galera_proxy`: MariaDB is a Galera cluster behind its proxy (as
    MariaDbCluster makes it for 3+ nodes)."""
    db = tuple(f"10.30.1.{10 + i}" for i in range(nodes))
    redis = tuple(f"10.30.1.{20 + i}" for i in range(nodes))
    mq = tuple(f"10.30.1.{30 + i}" for i in range(nodes))
    sentinel = nodes >= 3
    return DataConnections(
        services={
            "mariadb": MariaDbConnection(
                hosts=db,
                primary_host=db[0],
                port=3306,
                database="app",
                user="app",
                password=PASSWORD,
                tls=tls,
                proxy=database_proxy("app", db) if galera_proxy else None,
            ),
            "redis": RedisConnection(
                hosts=redis,
                primary_host=redis[0],
                port=6379,
                sentinel_port=26379 if sentinel else None,
                sentinel_master="platform" if sentinel else None,
                password=PASSWORD,
                tls=tls,
            ),
            "rabbitmq": RabbitMqConnection(
                hosts=mq, port=5671 if tls else 5672, vhost="app", user="app", password=PASSWORD, tls=tls
            ),
        },
        ca_certificate=PASSWORD if tls else None,
    )


def prod_like_settings(tls_mode: str = "letsencrypt-production", tier: str = "enterprise") -> KubernetesSettings:
    tls: dict[str, Any] = {"mode": tls_mode}
    if tls_mode != "none":
        tls["acme_email"] = "ops@example.com"
    return KubernetesSettings.model_validate(
        {
            "tier": tier,
            "version": offered_minors(tier)[-1],
            "tls": tls,
            "workloads": [
                {
                    "name": "api",
                    "image": "registry.example.com/loopi-api:1.0.0",
                    "port": 8080,
                    "min_replicas": 3,
                    "max_replicas": 10,
                    "readiness_path": "/ready",
                    "liveness_path": "/health",
                    "ingress": {"host": "api.example.com"},
                },
                {
                    "name": "worker",
                    "image": "registry.example.com/loopi-worker@sha256:" + "b" * 64,
                    "replicas": 1,
                    "health_command": ["/app/healthcheck"],
                },
            ],
        }
    )
