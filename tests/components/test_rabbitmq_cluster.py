"""RabbitMqCluster under mocks: cluster membership, firewall, credentials per node count; and per stack."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.sync_await import _sync_await

from components.data.placement import DataClusterArgs
from components.data.rabbitmq.cluster import RabbitMqCluster
from components.settings.data import RabbitMqSettings
from tests.helpers import (
    APP_SOURCES,
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


def build(count: int, **kwargs: Any) -> tuple[RabbitMqCluster, list[ResourceRecord]]:
    return run_component(
        lambda: RabbitMqCluster(
            "rabbitmq",
            DataClusterArgs(
                role="rabbitmq",
                settings=RabbitMqSettings(nodes=count),
                placement=placement_for("rabbitmq", count, **kwargs),
            ),
        )
    )


def vms(records: list[ResourceRecord]) -> list[ResourceRecord]:
    return sorted(of_type(records, "linode:index/instance:Instance"), key=lambda r: r.name)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_node_knows_every_node_name_and_resolves_it(count: int) -> None:
    cluster, records = build(count)
    names = [f"rabbit@platform-infra-test-rabbitmq-{i}" for i in range(count)]
    assert cluster.node_names == names
    for index, vm in enumerate(vms(records)):
        text = user_data(vm)
        for i, name in enumerate(names):
            assert f"cluster_formation.classic_config.nodes.{i + 1} = {name}" in text
            assert f"10.30.1.{10 + i} platform-infra-test-rabbitmq-{i}" in text
        assert f"NODENAME={names[index]}" in text
        assert f"listeners.tcp.default = 10.30.1.{10 + index}:5672" in text
        assert f"management.tcp.ip = 10.30.1.{10 + index}" in text


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_firewall_admits_amqp_from_the_app_tier_and_clustering_only_from_peers(count: int) -> None:
    _, records = build(count)
    rules = firewall_rules(records)
    assert rules["amqp-from-app"]["ipv4s"] == list(APP_SOURCES) and rules["amqp-from-app"]["ports"] == "5672"
    if count > 1:
        assert rules["cluster-from-peers"]["ipv4s"] == [f"10.30.1.{10 + i}/32" for i in range(count)]
        assert "4369" in rules["cluster-from-peers"]["ports"] and "25672" in rules["cluster-from-peers"]["ports"]
    else:
        assert "cluster-from-peers" not in rules
    assert_nothing_public(records)


def test_one_erlang_cookie_and_random_credentials_shared_by_every_node() -> None:
    cluster, records = build(3)
    passwords = {p.name: p for p in of_type(records, "random:index/randomPassword:RandomPassword")}
    assert set(passwords) == {"rabbitmq-admin-password", "rabbitmq-app-password", "rabbitmq-erlang-cookie"}
    cookie = passwords["rabbitmq-erlang-cookie"].outputs["result"]
    assert all(cookie in user_data(vm) for vm in vms(records))
    assert _sync_await(cluster.connection.password.is_secret())
    assert (cluster.connection.vhost, cluster.connection.user, cluster.connection.port) == ("app", "app", 5672)


def test_tls_moves_amqp_to_5671_and_turns_plaintext_off() -> None:
    cluster, records = build(3, tls=True)
    assert cluster.connection.port == 5671 and cluster.connection.tls
    assert firewall_rules(records)["amqp-from-app"]["ports"] == "5671"
    for vm in vms(records):
        assert "listeners.tcp = none" in user_data(vm)


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_gets_its_rabbitmq_cluster_size_with_quorum_queues_by_default(
    stack: str, program_runs: ProgramRuns
) -> None:
    count = settings_of(stack).data.rabbitmq.nodes
    nodes = role_vms(program_runs[stack], "rabbitmq")
    assert len(nodes) == count
    assert all('"default_queue_type": "quorum"' in user_data(vm) for vm in nodes)
