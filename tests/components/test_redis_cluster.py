"""RedisCluster under mocks: topology, firewall and connection per node count; and per stack."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.sync_await import _sync_await

from components.data.placement import DataClusterArgs
from components.data.redis.cluster import RedisCluster
from components.settings.data import RedisSettings
from tests.helpers import (
    APP_SOURCES,
    BASTION,
    STACKS,
    ProgramRuns,
    assert_nothing_public,
    firewall_rules,
    of_type,
    placement_for,
    role_vms,
    settings_of,
    user_data,
)
from tools.offline import ResourceRecord, run_component


def build(count: int, **kwargs: Any) -> tuple[RedisCluster, list[ResourceRecord]]:
    return run_component(
        lambda: RedisCluster(
            "redis",
            DataClusterArgs(
                role="redis", settings=RedisSettings(nodes=count), placement=placement_for("redis", count, **kwargs)
            ),
        )
    )


def vms(records: list[ResourceRecord]) -> list[ResourceRecord]:
    return sorted(of_type(records, "linode:index/instance:Instance"), key=lambda r: r.name)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_node_binds_its_address_with_auth_and_replicas_follow_node_zero(count: int) -> None:
    _, records = build(count)
    nodes = vms(records)
    assert len(nodes) == count
    for index, vm in enumerate(nodes):
        text = user_data(vm)
        assert f"bind 10.30.1.{10 + index}" in text and "protected-mode yes" in text and "requirepass" in text
        assert ("replicaof 10.30.1.10 6379" in text) is (index > 0)
        assert "metadatas" in vm.secret_inputs


@pytest.mark.parametrize(
    ("count", "sentinel", "quorum"), [(1, False, None), (2, False, None), (3, True, 2), (5, True, 3)]
)
def test_sentinel_runs_from_three_nodes_with_a_majority_quorum(count: int, sentinel: bool, quorum: int | None) -> None:
    cluster, records = build(count)
    text = user_data(vms(records)[0])
    assert ("redis-sentinel" in text) is sentinel
    if quorum:
        assert f"sentinel monitor platform 10.30.1.10 6379 {quorum}" in text
    assert cluster.connection.sentinel_port == (26379 if sentinel else None)
    assert cluster.connection.sentinel_master == ("platform" if sentinel else None)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_firewall_admits_app_clients_peers_and_the_bastion_only(count: int) -> None:
    _, records = build(count)
    rules = firewall_rules(records)
    assert rules["redis-from-app"]["ipv4s"] == list(APP_SOURCES) and rules["redis-from-app"]["ports"] == "6379"
    assert rules["ssh-from-bastion"]["ipv4s"] == [f"{BASTION}/32"]
    if count == 1:
        assert set(rules) == {"redis-from-app", "ssh-from-bastion"}
    else:
        assert rules["redis-from-peers"]["ipv4s"] == [f"10.30.1.{10 + i}/32" for i in range(count)]
    assert ("sentinel-from-app" in rules) is (count >= 3)
    assert_nothing_public(records)


def test_auth_password_is_random_and_the_connection_password_secret() -> None:
    cluster, records = build(2)
    (password,) = of_type(records, "random:index/randomPassword:RandomPassword")
    assert password.name == "redis-auth-password" and password.inputs["special"] is False
    assert _sync_await(cluster.connection.password.is_secret())
    assert cluster.connection.primary_host == "10.30.1.10" and cluster.connection.port == 6379


def test_tls_closes_the_plaintext_port_on_every_node() -> None:
    cluster, records = build(3, tls=True)
    for vm in vms(records):
        assert "port 0" in user_data(vm) and "tls-port 6379" in user_data(vm)
    assert cluster.connection.tls is True
    assert len(of_type(records, "tls:index/locallySignedCert:LocallySignedCert")) == 3


def test_maxmemory_follows_the_plan() -> None:
    _, records = build(1)  # g6-standard-1: 2 GB
    assert "maxmemory 1228mb" in user_data(vms(records)[0])


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_gets_the_redis_topology_its_node_count_asks_for(stack: str, program_runs: ProgramRuns) -> None:
    count = settings_of(stack).data.redis.nodes
    nodes = role_vms(program_runs[stack], "redis")
    assert len(nodes) == count
    assert any("redis-sentinel" in user_data(vm) for vm in nodes) is (count >= 3)
