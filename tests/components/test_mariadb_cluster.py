"""MariaDbCluster under mocks: VMs, firewall, credentials and TLS per node count; and per stack."""

from __future__ import annotations

from typing import Any

import pulumi
import pydantic
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.data.mariadb.cluster import MariaDbCluster
from components.data.placement import DataClusterArgs
from components.foundation.firewall import InboundRule
from components.foundation.role_addon import RoleAddon
from components.settings.data import MariaDbSettings
from tests.helpers import (
    APP_SOURCES,
    BASTION,
    DATA_ROLES,
    STACKS,
    ProgramRuns,
    assert_nothing_public,
    firewall_rules,
    of_type,
    placement_for,
    role_vms,
    settings_of,
    stacks_of_kind,
    user_data,
)
from tools.offline import ResourceRecord, resolve, run_component, run_program_expecting_error


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
        (3, "galera-from-peers", "4567,4568,4444,3306"),
        (5, "galera-from-peers", "4567,4568,4444,3306"),
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
    galera = count >= 3
    # The database proxy's health checks come from the app side, exactly like its connections.
    expected = {"mariadb-from-app", "ssh-from-bastion", *([peer_rule] if peer_rule else [])}
    assert set(rules) == expected | ({"galera-health-from-app"} if galera else set())
    if galera:
        assert rules["galera-health-from-app"]["ports"] == "9200"
        assert rules["galera-health-from-app"]["ipv4s"] == list(APP_SOURCES)
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
    # Galera: TLS passes through the database proxy, so each node also answers to its name.
    assert [r.inputs["dnsNames"] for r in requests] == [
        [f"platform-infra-test-mariadb-{i}", "database-proxy.app.svc.cluster.local"] for i in range(3)
    ]
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


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_gets_the_mariadb_topology_its_node_count_asks_for(stack: str, program_runs: ProgramRuns) -> None:
    nodes = settings_of(stack).data.mariadb.nodes
    vms = role_vms(program_runs[stack], "mariadb")
    assert len(vms) == nodes
    # One node stands alone, two are a primary and a read-only replica, three form Galera.
    marker = {1: None, 2: "read_only"}.get(nodes, "wsrep_on")
    if marker:
        assert any(marker in user_data(vm) for vm in vms)


@pytest.mark.parametrize("stack", STACKS)
def test_data_vms_are_protected_in_production_and_tls_follows_the_stack(stack: str, program_runs: ProgramRuns) -> None:
    settings = settings_of(stack)
    run = program_runs[stack]
    for role in DATA_ROLES:
        for vm in role_vms(run, role):
            assert vm.protect is settings.production, vm.name
            assert "metadatas" in vm.ignore_changes, vm.name
    assert ("data_ca_certificate" in run.outputs) is settings.data.tls
    assert "data_connections" in run.secret_outputs


def test_firewalls_of_the_data_vms_accept_nothing_from_the_internet(program_runs: ProgramRuns) -> None:
    for stack in STACKS:
        run = program_runs[stack]
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


@pytest.mark.parametrize("stack", STACKS)
def test_data_vms_get_a_private_ip_exactly_where_pods_come_over_the_private_network(
    stack: str, program_runs: ProgramRuns
) -> None:
    private = settings_of(stack).kubernetes.data_path == "private-network"
    run = program_runs[stack]
    for role in DATA_ROLES:
        for vm in role_vms(run, role):
            assert vm.inputs["privateIp"] is private, vm.name


@pytest.mark.parametrize("stack", stacks_of_kind("production"))
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
    stack: str, data: dict[str, Any], expected: str
) -> None:
    error, registered = run_program_expecting_error(stack, {"data": data})
    assert isinstance(error, pulumi.RunError)
    assert expected in str(error)
    assert registered == []


@pytest.mark.parametrize("count", [1, 2])
def test_without_galera_certificates_name_only_their_node(count: int) -> None:
    cluster, records = build(count, tls=True)
    requests = sorted(of_type(records, "tls:index/certRequest:CertRequest"), key=lambda r: r.name)
    assert [r.inputs["dnsNames"] for r in requests] == [[f"platform-infra-test-mariadb-{i}"] for i in range(count)]
    assert cluster.connection.proxy is None and cluster.connection.client_proxy() is None


def test_galera_clients_go_through_the_proxy_and_dial_no_node_themselves() -> None:
    cluster, records = build(3, tls=True)
    connection = cluster.connection
    proxy = connection.client_proxy()
    assert proxy is not None and proxy is connection.proxy
    assert (proxy.name, proxy.host, proxy.port, proxy.health_port) == (
        "database-proxy",
        "database-proxy.app.svc.cluster.local",
        3306,
        9200,
    )
    assert proxy.hosts == connection.hosts == ("10.30.1.10", "10.30.1.11", "10.30.1.12")
    assert connection.client_ports() == ()  # pods dial the proxy, never a node
    url = connection.environment("pw", lambda host: f"name-of-{host}", "/ca.crt")["DATABASE_URL"]
    assert url == "mysql://app:pw@database-proxy.app.svc.cluster.local:3306/app?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.crt"
    for vm in of_type(records, "linode:index/instance:Instance"):
        assert "galera-health.socket" in user_data(vm)


def test_primary_replica_offers_the_replica_as_a_read_only_url() -> None:
    cluster, _ = build(2, tls=True)
    connection = cluster.connection
    assert connection.replica_host == "10.30.1.11" and connection.client_ports() == (3306,)
    settings = connection.environment("pw", lambda host: f"name-of-{host}", "/ca.crt")
    assert settings["DATABASE_URL"].startswith("mysql://app:pw@name-of-10.30.1.10:3306/app?ssl-mode=VERIFY_IDENTITY")
    assert settings["DATABASE_READ_URL"].startswith("mysql://app:pw@name-of-10.30.1.11:3306/app?ssl-mode=VERIFY_IDENTITY")


def test_a_galera_cluster_without_an_app_namespace_is_refused() -> None:
    with pytest.raises(Exception, match="database proxy in the app namespace"):
        build(3, app_namespace=None)
