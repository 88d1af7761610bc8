"""Network, RoleFirewall, VmGroup and Bastion, each built alone under Pulumi mocks."""

from __future__ import annotations

import base64
import ipaddress

import pulumi
import pytest
import yaml

from components.data.services import stack_address_plan
from components.foundation.address_plan import AddressPlan, AddressPlanError, SubnetPlan
from components.foundation.bastion import Bastion, BastionArgs
from components.foundation.firewall import (
    FirewallRuleError,
    InboundRule,
    RoleFirewall,
    RoleFirewallArgs,
    inbound_firewall,
    ssh_from_bastion,
)
from components.foundation.network import Network, NetworkArgs
from components.foundation.vm_group import STATEFUL_IGNORED_FIELDS, VmGroup, VmGroupArgs, VmGroupError
from components.settings.base import NetworkSettings
from tools.offline import run_component

NETWORK = NetworkSettings.model_validate(
    {
        "vpc_cidr": "10.40.0.0/16",
        "subnets": {"admin": "10.40.0.0/24", "data": "10.40.1.0/24", "app": "10.40.2.0/24"},
    }
)
PLAN = stack_address_plan(NETWORK)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOa5vQ0mG3Jd8yqzGm1a5l0uWk7m9H3fX2pLr8sT4cE1 ops@test"


def group_args(**changes: object) -> VmGroupArgs:
    base: dict[str, object] = {
        "role": "mariadb",
        "label_prefix": "platform-infra-dev-mariadb",
        "count": 3,
        "plan": "g6-dedicated-4",
        "region": "eu-central",
        "image": "linode/debian12",
        "addresses": PLAN.addresses("mariadb", 3),
        "vpc_subnet_id": 4242,
        "firewall_id": 777,
        "user_data": [f"#cloud-config\nhostname: db-{i}\n" for i in range(3)],
        "tags": ["platform-infra", "env:dev", "role:mariadb"],
    }
    base.update(changes)
    return VmGroupArgs(**base)  # type: ignore[arg-type]


def test_address_plan_is_deterministic_and_disjoint_per_role() -> None:
    assert PLAN.addresses("mariadb", 3) == ["10.40.1.10", "10.40.1.11", "10.40.1.12"]
    assert PLAN.addresses("redis", 2) == ["10.40.1.20", "10.40.1.21"]
    assert PLAN.addresses("rabbitmq", 1) == ["10.40.1.30"]
    assert PLAN.addresses("bastion", 1) == ["10.40.0.10"]
    everything = PLAN.addresses("mariadb", 10) + PLAN.addresses("redis", 10) + PLAN.addresses("rabbitmq", 10)
    assert len(set(everything)) == 30
    assert all(ipaddress.ip_address(a) in PLAN.subnets["data"].cidr for a in everything)
    assert stack_address_plan(NETWORK) == PLAN


def test_address_plan_refuses_more_nodes_than_a_block_holds_and_unknown_roles() -> None:
    with pytest.raises(AddressPlanError, match="room for 10 nodes, 11 asked"):
        PLAN.addresses("mariadb", 11)
    with pytest.raises(AddressPlanError, match="no address block for role 'cassandra'"):
        PLAN.addresses("cassandra", 1)


def test_subnet_never_hands_out_linode_reserved_addresses() -> None:
    subnet = SubnetPlan("admin", ipaddress.IPv4Network("10.0.0.0/28"))
    with pytest.raises(AddressPlanError):
        subnet.host(1)
    with pytest.raises(AddressPlanError):
        subnet.host(15)
    assert subnet.host(14) == "10.0.0.14"
    assert isinstance(PLAN, AddressPlan)


def test_network_creates_one_vpc_and_a_subnet_per_tier() -> None:
    _, records = run_component(
        lambda: Network("net", NetworkArgs(label="platform-infra-dev", region="eu-central", plan=PLAN))
    )
    vpcs = [r for r in records if r.type == "linode:index/vpc:Vpc"]
    subnets = {
        r.inputs["label"]: r.inputs["ipv4"] for r in records if r.type == "linode:index/vpcSubnet:VpcSubnet"
    }
    assert [v.inputs["label"] for v in vpcs] == ["platform-infra-dev"]
    assert subnets == {
        "platform-infra-dev-admin": "10.40.0.0/24",
        "platform-infra-dev-data": "10.40.1.0/24",
        "platform-infra-dev-app": "10.40.2.0/24",
    }
    component = next(r for r in records if r.type == "platform:network:Network")
    assert all(r.parent == component.urn for r in records if r.type.startswith("linode:"))


def test_role_firewall_drops_inbound_by_default_and_lists_each_rule() -> None:
    rules = (
        InboundRule("mariadb-from-app", "TCP", "3306", ("10.40.2.0/24",)),
        InboundRule("galera-peers", "TCP", "4567-4568", ("10.40.1.10/32", "10.40.1.11/32")),
        ssh_from_bastion("10.40.0.10"),
    )
    _, records = run_component(
        lambda: RoleFirewall(
            "fw",
            RoleFirewallArgs(
                label="platform-infra-dev-mariadb", role="mariadb", rules=rules, tags=("role:mariadb",)
            ),
        )
    )
    firewall = next(r for r in records if r.type == "linode:index/firewall:Firewall")
    assert firewall.inputs["inboundPolicy"] == "DROP"
    assert firewall.inputs["outboundPolicy"] == "ACCEPT"
    assert [(r["label"], r["ports"], r["ipv4s"]) for r in firewall.inputs["inbounds"]] == [
        ("mariadb-from-app", "3306", ["10.40.2.0/24"]),
        ("galera-peers", "4567-4568", ["10.40.1.10/32", "10.40.1.11/32"]),
        ("ssh-from-bastion", "22", ["10.40.0.10/32"]),
    ]
    assert all(r["action"] == "ACCEPT" for r in firewall.inputs["inbounds"])


def test_rules_open_to_the_world_are_refused_unless_marked_public() -> None:
    with pytest.raises(FirewallRuleError, match="opens 3306 to the whole internet"):
        InboundRule("mariadb-open", "TCP", "3306", ("0.0.0.0/0",))
    with pytest.raises(FirewallRuleError, match="opens 22 to the whole internet"):
        InboundRule("ssh-open", "TCP", "22", ("10.0.0.0/8", "::/0"))
    assert InboundRule("https-public", "TCP", "443", ("0.0.0.0/0", "::/0"), public=True).ipv6_sources == [
        "::/0"
    ]
    with pytest.raises(FirewallRuleError, match="44 characters; Linode allows 3-32"):
        InboundRule("a-rule-label-that-is-far-too-long-for-linode", "TCP", "1", ("10.0.0.0/8",))


def test_a_firewall_with_two_rules_of_the_same_label_is_refused() -> None:
    rule = InboundRule("ssh-from-bastion", "TCP", "22", ("10.40.0.10/32",))
    with pytest.raises(FirewallRuleError, match="duplicate rule labels"):
        inbound_firewall("fw", "platform-infra-dev-x", [rule, rule], (), pulumi.ResourceOptions())


def test_vm_group_places_each_node_on_its_planned_address_with_its_own_user_data() -> None:
    _, records = run_component(lambda: VmGroup("db", group_args()))
    # Registration order is the engine's, not ours: compare in node order.
    instances = sorted((r for r in records if r.type == "linode:index/instance:Instance"), key=lambda r: r.name)
    assert [i.inputs["label"] for i in instances] == [f"platform-infra-dev-mariadb-{n}" for n in range(3)]
    for n, instance in enumerate(instances):
        vpc = next(i for i in instance.inputs["interfaces"] if i["purpose"] == "vpc")
        assert vpc["ipv4"]["vpc"] == f"10.40.1.{10 + n}"
        assert vpc["subnetId"] == 4242
        decoded = base64.b64decode(instance.inputs["metadatas"][0]["userData"]).decode()
        assert yaml.safe_load(decoded) == {"hostname": f"db-{n}"}
        assert instance.inputs["interfaceGeneration"] == "legacy_config"
        assert instance.inputs["firewallId"] == 777
        assert instance.inputs["tags"] == ["platform-infra", "env:dev", "role:mariadb"]
        assert instance.inputs["diskEncryption"] == "enabled"
        assert instance.inputs["type"] == "g6-dedicated-4"


def test_vm_group_spreads_a_cluster_with_a_strict_anti_affinity_placement_group() -> None:
    _, records = run_component(lambda: VmGroup("db", group_args()))
    groups = [r for r in records if r.type == "linode:index/placementGroup:PlacementGroup"]
    assert len(groups) == 1
    assert groups[0].inputs["placementGroupType"] == "anti_affinity:local"
    assert groups[0].inputs["placementGroupPolicy"] == "strict"
    instances = [r for r in records if r.type == "linode:index/instance:Instance"]
    assert {i.inputs["placementGroup"]["id"] for i in instances} == {int(groups[0].id)}


def test_single_vm_needs_no_placement_group() -> None:
    args = group_args(count=1, addresses=PLAN.addresses("mariadb", 1), user_data=["#cloud-config\n{}\n"])
    _, records = run_component(lambda: VmGroup("db", args))
    assert not [r for r in records if r.type == "linode:index/placementGroup:PlacementGroup"]


def test_stateful_vms_are_protected_and_ignore_template_changes() -> None:
    _, records = run_component(
        lambda: VmGroup("db", group_args(stateful=True, protect=True, backups_enabled=True))
    )
    for instance in [r for r in records if r.type == "linode:index/instance:Instance"]:
        assert instance.protect is True
        # The engine sees the provider's camelCase names for the same fields.
        assert set(instance.ignore_changes) == {
            "metadatas",
            "image",
            "authorizedKeys",
            "rootPass",
            "stackscriptData",
        }
        assert len(instance.ignore_changes) == len(STATEFUL_IGNORED_FIELDS)
        assert instance.inputs["backupsEnabled"] is True


def test_stateless_vms_follow_template_changes() -> None:
    _, records = run_component(lambda: VmGroup("db", group_args()))
    for instance in [r for r in records if r.type == "linode:index/instance:Instance"]:
        assert instance.protect is False
        assert instance.ignore_changes == []


def test_user_data_carrying_a_credential_stays_secret() -> None:
    secret_docs = [pulumi.Output.secret(f"#cloud-config\nhostname: db-{i}\n") for i in range(3)]
    _, records = run_component(lambda: VmGroup("db", group_args(user_data=secret_docs)))
    for instance in [r for r in records if r.type == "linode:index/instance:Instance"]:
        assert "metadatas" in instance.secret_inputs


def test_vm_group_refuses_a_count_that_does_not_match_its_addresses() -> None:
    with pytest.raises(VmGroupError, match="3 nodes need 3 addresses and user data documents, got 2 and 3"):
        run_component(lambda: VmGroup("db", group_args(addresses=PLAN.addresses("mariadb", 2))))


def test_no_disk_encryption_where_the_region_lacks_it() -> None:
    _, records = run_component(lambda: VmGroup("db", group_args(disk_encryption=False)))
    assert {r.inputs["diskEncryption"] for r in records if r.type == "linode:index/instance:Instance"} == {
        "disabled"
    }


def bastion_args() -> BastionArgs:
    return BastionArgs(
        label_prefix="platform-infra-dev-bastion",
        plan="g6-nanode-1",
        region="eu-central",
        image="linode/debian12",
        address=PLAN.addresses("bastion", 1)[0],
        vpc_subnet_id=11,
        admin_cidrs=["203.0.113.0/24", "2001:db8::/48"],
        ssh_keys=[KEY],
        tags=["platform-infra", "env:dev", "role:bastion"],
    )


def test_bastion_accepts_ssh_only_from_admin_cidrs() -> None:
    _, records = run_component(lambda: Bastion("bastion", bastion_args()))
    firewall = next(r for r in records if r.type == "linode:index/firewall:Firewall")
    assert firewall.inputs["inboundPolicy"] == "DROP"
    ssh = next(rule for rule in firewall.inputs["inbounds"] if rule["ports"] == "22")
    assert ssh["ipv4s"] == ["203.0.113.0/24"]
    assert ssh["ipv6s"] == ["2001:db8::/48"]
    assert {rule["protocol"] for rule in firewall.inputs["inbounds"]} == {"TCP", "ICMP"}


def test_bastion_cloud_init_is_key_only_and_forwards_for_the_jump() -> None:
    _, records = run_component(lambda: Bastion("bastion", bastion_args()))
    instance = next(r for r in records if r.type == "linode:index/instance:Instance")
    doc = yaml.safe_load(base64.b64decode(instance.inputs["metadatas"][0]["userData"]))
    assert doc["ssh_pwauth"] is False
    assert doc["disable_root"] is True
    assert doc["users"][0]["ssh_authorized_keys"] == [KEY]
    assert doc["users"][0]["lock_passwd"] is True
    sshd = next(f for f in doc["write_files"] if f["path"].startswith("/etc/ssh/sshd_config.d/"))["content"]
    for line in (
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "AllowTcpForwarding yes",
        "AllowUsers ops",
    ):
        assert line in sshd.splitlines()


def test_private_network_address_only_when_asked() -> None:
    group, records = run_component(lambda: VmGroup("db", group_args(private_ip=True)))
    assert {r.inputs["privateIp"] for r in records if r.type == "linode:index/instance:Instance"} == {True}
    assert group.private_network_ipv4s is not None
    plain, _ = run_component(lambda: VmGroup("db", group_args()))
    assert plain.private_network_ipv4s is None
