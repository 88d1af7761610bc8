"""MariaDbCluster under mocks: VMs, firewall, credentials and TLS per node count; and per stack."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

import pulumi
import pydantic
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.data.internal_ca import InternalCa, InternalCaArgs
from components.data.mariadb.cluster import MariaDbCluster
from components.data.placement import DataClusterArgs, DataVmPlacement
from components.foundation.cloud_init import BaseHardening, base_cloud_config
from components.foundation.firewall import InboundRule
from components.foundation.role_addon import RoleAddon
from components.settings.data import MariaDbSettings
from tools.offline import (
    ProgramRun,
    ResourceRecord,
    resolve,
    run_component,
    run_program,
    run_program_expecting_error,
    unwrap_secret,
)

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


def build(count: int, **kwargs: Any) -> tuple[MariaDbCluster, list[ResourceRecord]]:
    return run_component(
        lambda: MariaDbCluster(
            "mariadb",
            DataClusterArgs(
                role="mariadb",
                settings=MariaDbSettings(nodes=count),
                placement=placement_for("mariadb", count, **kwargs),
            ),
        )
    )


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_one_stateful_vm_per_node_with_its_planned_address_and_secret_user_data(count: int) -> None:
    _, records = build(count)
    vms = sorted(of_type(records, "linode:index/instance:Instance"), key=lambda r: r.name)
    assert [vm.inputs["label"] for vm in vms] == [f"platform-infra-test-mariadb-{i}" for i in range(count)]
    for index, vm in enumerate(vms):
        vpc = next(i for i in vm.inputs["interfaces"] if i["purpose"] == "vpc")
        assert vpc["ipv4"]["vpc"] == f"10.30.1.{10 + index}"
        assert "metadatas" in vm.secret_inputs
        assert "metadatas" in vm.ignore_changes  # a cloud-init change never replaces a database VM
        assert vm.inputs["diskEncryption"] == "enabled"
        assert f"hostname: platform-infra-test-mariadb-{index}" in user_data(vm)


@pytest.mark.parametrize(
    ("count", "peer_rule", "peer_ports"),
    [
        (1, None, None),
        (2, "replication-from-peers", "3306"),
        (3, "galera-from-peers", "4567,4568,4444"),
        (5, "galera-from-peers", "4567,4568,4444"),
    ],
)
def test_firewall_admits_clients_from_the_app_tier_peers_from_their_32s_and_ssh_from_the_bastion(
    count: int, peer_rule: str | None, peer_ports: str | None
) -> None:
    _, records = build(count)
    rules = firewall_rules(records)
    assert rules["mariadb-from-app"]["ports"] == "3306" and rules["mariadb-from-app"]["ipv4s"] == list(APP_SOURCES)
    assert rules["ssh-from-bastion"]["ipv4s"] == [f"{BASTION}/32"]
    if peer_rule is None:
        assert set(rules) == {"mariadb-from-app", "ssh-from-bastion"}
    else:
        assert rules[peer_rule]["ports"] == peer_ports
        assert rules[peer_rule]["ipv4s"] == [f"10.30.1.{10 + i}/32" for i in range(count)]
    assert_nothing_public(records)


@pytest.mark.parametrize(("count", "marker"), [(1, "wsrep_on"), (2, "read_only"), (3, "wsrep_on"), (5, "wsrep_on")])
def test_rendered_topology_follows_the_count(count: int, marker: str) -> None:
    _, records = build(count)
    vms = sorted(of_type(records, "linode:index/instance:Instance"), key=lambda r: r.name)
    last = user_data(vms[-1])
    if count == 1:
        assert "wsrep_on" not in last and "read_only" not in last
    else:
        assert marker in last
    if count >= 3:
        assert "gcomm://" + ",".join(f"10.30.1.{10 + i}:4567" for i in range(count)) in last


def test_four_nodes_are_refused_by_the_settings_with_what_is_allowed() -> None:
    with pytest.raises(pydantic.ValidationError, match="odd number >= 3"):
        MariaDbSettings(nodes=4)


def test_credentials_come_from_random_passwords_and_the_connection_is_secret() -> None:
    cluster, records = build(2)
    passwords = of_type(records, "random:index/randomPassword:RandomPassword")
    assert sorted(p.name for p in passwords) == [
        "mariadb-app-password",
        "mariadb-replication-password",
        "mariadb-root-password",
    ]
    assert all(p.inputs["special"] is False and p.inputs["length"] >= 32 for p in passwords)
    connection = cluster.connection
    assert (
        resolve(connection.password) == next(p for p in passwords if p.name == "mariadb-app-password").outputs["result"]
    )
    assert _sync_await(connection.password.is_secret())
    assert connection.hosts == ("10.30.1.10", "10.30.1.11") and connection.primary_host == "10.30.1.10"
    assert (connection.port, connection.database, connection.user, connection.tls) == (3306, "app", "app", False)


def test_tls_issues_a_certificate_per_node_for_its_vpc_address_and_requires_tls() -> None:
    cluster, records = build(3, tls=True)
    requests = sorted(of_type(records, "tls:index/certRequest:CertRequest"), key=lambda r: r.name)
    assert [r.inputs["ipAddresses"] for r in requests] == [[f"10.30.1.{10 + i}"] for i in range(3)]
    assert len(of_type(records, "tls:index/locallySignedCert:LocallySignedCert")) == 3
    for vm in of_type(records, "linode:index/instance:Instance"):
        assert "require_secure_transport = ON" in user_data(vm)
    assert cluster.connection.tls is True


def test_prod_protection_is_passed_to_every_vm() -> None:
    _, records = build(3, protect=True)
    assert all(vm.protect for vm in of_type(records, "linode:index/instance:Instance"))


def test_role_addon_adds_its_rules_and_its_cloud_config_fragment() -> None:
    addon = RoleAddon(
        cloud_config=lambda index: {"packages": ["prometheus-mysqld-exporter"], "runcmd": [["echo", f"node {index}"]]},
        inbound_rules=(InboundRule("mysqld-exporter", "TCP", "9104", ("10.30.2.0/24",)),),
    )
    _, records = build(1, addon=addon)
    assert firewall_rules(records)["mysqld-exporter"]["ports"] == "9104"
    (vm,) = of_type(records, "linode:index/instance:Instance")
    assert "prometheus-mysqld-exporter" in user_data(vm) and "node 0" in user_data(vm)


def test_private_network_path_gives_vms_a_private_ip_and_names_resolve_to_it() -> None:
    cluster, records = build(2, private_network=True)
    for vm in of_type(records, "linode:index/instance:Instance"):
        assert vm.inputs["privateIp"] is True
        assert "bind-address = %s,%s" in user_data(vm)
    assert cluster.hostnames == {
        "10.30.1.10": "platform-infra-test-mariadb-0",
        "10.30.1.11": "platform-infra-test-mariadb-1",
    }
    dialed = resolve(cluster.dial_addresses["platform-infra-test-mariadb-1"])
    assert dialed.startswith("192.168.")


def test_vpc_path_dials_the_vpc_addresses() -> None:
    cluster, records = build(1)
    assert cluster.dial_addresses == {"platform-infra-test-mariadb-0": "10.30.1.10"}
    (vm,) = of_type(records, "linode:index/instance:Instance")
    assert vm.inputs["privateIp"] is False


# --- whole program per stack -----------------------------------------------------------------


@cache
def program(stack: str) -> ProgramRun:
    return run_program(stack)


def role_vms(run: ProgramRun, role: str) -> list[ResourceRecord]:
    return [r for r in run.of_type("linode:index/instance:Instance") if f"role:{role}" in r.inputs.get("tags", [])]


@pytest.mark.parametrize(
    ("stack", "count", "marker"), [("dev", 1, None), ("staging", 2, "read_only"), ("prod", 3, "wsrep_on")]
)
def test_each_stack_gets_the_mariadb_topology_of_the_sizing_table(stack: str, count: int, marker: str | None) -> None:
    vms = role_vms(program(stack), "mariadb")
    assert len(vms) == count
    if marker:
        assert any(marker in user_data(vm) for vm in vms)


@pytest.mark.parametrize(
    ("stack", "protected", "tls"), [("dev", False, False), ("staging", False, True), ("prod", True, True)]
)
def test_data_vms_are_protected_in_prod_and_tls_follows_the_stack(stack: str, protected: bool, tls: bool) -> None:
    run = program(stack)
    for role in ("mariadb", "redis", "rabbitmq"):
        for vm in role_vms(run, role):
            assert vm.protect is protected, vm.name
            assert "metadatas" in vm.ignore_changes, vm.name
    assert ("data_ca_certificate" in run.outputs) is tls
    assert "data_connections" in run.secret_outputs


def test_firewalls_of_the_data_vms_accept_nothing_from_the_internet() -> None:
    for stack in ("dev", "staging", "prod"):
        run = program(stack)
        firewalls = [
            f
            for f in run.of_type("linode:index/firewall:Firewall")
            if any(t in f.inputs["tags"] for t in ("role:mariadb", "role:redis", "role:rabbitmq"))
        ]
        assert len(firewalls) == 3
        for firewall in firewalls:
            assert firewall.inputs["inboundPolicy"] == "DROP"
            for rule in firewall.inputs["inbounds"]:
                assert "0.0.0.0/0" not in rule.get("ipv4s", []), (stack, rule)


@pytest.mark.parametrize(("stack", "private"), [("dev", True), ("staging", True), ("prod", False)])
def test_data_vms_get_a_private_ip_exactly_where_pods_come_over_the_private_network(stack: str, private: bool) -> None:
    run = program(stack)
    for role in ("mariadb", "redis", "rabbitmq"):
        for vm in role_vms(run, role):
            assert vm.inputs["privateIp"] is private, vm.name


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"mariadb": {"nodes": 4}}, "platform-infra:data.mariadb.nodes: got 4; "),
        ({"redis": {"nodes": 0}}, "platform-infra:data.redis.nodes: got 0; "),
        ({"mariadb": {"user": "Robert'); DROP TABLE"}}, "platform-infra:data.mariadb.user: got "),
        ({"rabbitmq": {"plan": "g6-huge-1"}}, "platform-infra:data.rabbitmq.plan: got 'g6-huge-1'; "),
    ],
)
def test_a_refused_data_setting_stops_the_program_with_one_message_and_nothing_registered(
    data: dict[str, Any], expected: str
) -> None:
    error, registered = run_program_expecting_error("prod", {"data": data})
    assert isinstance(error, pulumi.RunError)
    assert expected in str(error)
    assert registered == []
