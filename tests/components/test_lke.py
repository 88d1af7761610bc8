"""LkeCluster under mocks: enterprise tier in the stack VPC, node firewall, autoscaler, ACL, provider."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.foundation.firewall import InboundRule
from components.kubernetes.lke import (
    CLOUD_FIREWALL_CONTROLLER_CHART,
    CLOUD_FIREWALL_CRD_CHART,
    LKE_PRIVATE_RANGE,
    NODEBALANCER_RANGE,
    LkeCluster,
    LkeClusterArgs,
    node_firewall_rules,
)
from components.settings.kubernetes import NodePoolSettings
from tools.offline import ROOT, ResourceRecord, is_secret, mocked_runtime, resolve, run_component


def build(
    pool: dict[str, Any], high_availability: bool = False, tier: str = "enterprise"
) -> tuple[LkeCluster, list[ResourceRecord]]:
    enterprise = tier == "enterprise"
    args = LkeClusterArgs(
        label="platform-infra-prod-lke",
        region="eu-central",
        tier=tier,
        version="1.36",
        pool=NodePoolSettings.model_validate(pool),
        high_availability=high_availability,
        admin_ipv4_cidrs=["198.51.100.10/32"],
        admin_ipv6_cidrs=[],
        vpc_id=4242 if enterprise else None,
        subnet_id=5151 if enterprise else None,
        app_subnet_cidr="10.30.2.0/24" if enterprise else None,
        tags=["platform-infra", "env:prod", "role:lke"],
    )
    return run_component(lambda: LkeCluster("lke", args), "prod")


def only(records: list[ResourceRecord], type_: str) -> ResourceRecord:
    matches = [r for r in records if r.type == type_]
    assert len(matches) == 1
    return matches[0]


def test_cluster_is_enterprise_in_the_stack_vpc_app_subnet() -> None:
    _, records = build({"plan": "g6-dedicated-4", "count": 3})
    cluster = only(records, "linode:index/lkeCluster:LkeCluster").inputs
    assert cluster["tier"] == "enterprise"
    assert (cluster["vpcId"], cluster["subnetId"]) == (4242, 5151)
    # Resolved through get_lke_versions (mocked from the catalog): the newest 1.36 build.
    assert cluster["k8sVersion"] == "v1.36.3+lke1"


def test_autoscaled_pool_starts_at_min_and_ignores_count_changes() -> None:
    _, records = build({"plan": "g6-dedicated-4", "autoscaler": {"min": 3, "max": 6}})
    record = only(records, "linode:index/lkeCluster:LkeCluster")
    pool = record.inputs["pools"][0]
    assert pool["count"] == 3
    assert pool["autoscaler"] == {"min": 3, "max": 6}
    assert record.ignore_changes == ["k8sVersion", "pools[0].count"]


def test_fixed_pool_keeps_count_under_management() -> None:
    _, records = build({"plan": "g6-standard-2", "count": 2})
    record = only(records, "linode:index/lkeCluster:LkeCluster")
    assert record.ignore_changes == ["k8sVersion"]  # LKE owns the version after creation
    assert "autoscaler" not in record.inputs["pools"][0]


def test_control_plane_is_ha_when_asked_and_acl_admits_only_admin_cidrs() -> None:
    _, records = build({"count": 3}, high_availability=True)
    control = only(records, "linode:index/lkeCluster:LkeCluster").inputs["controlPlane"]
    assert control["highAvailability"] is True
    assert control["acl"]["enabled"] is True
    assert control["acl"]["addresses"] == [{"ipv4s": ["198.51.100.10/32"]}]


def test_node_pool_carries_the_node_firewall_with_akamais_lke_rules() -> None:
    _, records = build({"count": 1})
    firewall = only(records, "linode:index/firewall:Firewall")
    pool = only(records, "linode:index/lkeCluster:LkeCluster").inputs["pools"][0]
    assert pool["firewallId"] == int(firewall.id)
    assert firewall.inputs["inboundPolicy"] == "DROP"
    rules = {(r["protocol"], r.get("ports"), tuple(r["ipv4s"])) for r in firewall.inputs["inbounds"]}
    assert ("TCP", "10250,10256", (LKE_PRIVATE_RANGE,)) in rules
    assert ("UDP", "51820", (LKE_PRIVATE_RANGE,)) in rules
    assert ("TCP", "179", (LKE_PRIVATE_RANGE,)) in rules
    assert ("TCP", "30000-32767", (NODEBALANCER_RANGE,)) in rules
    assert ("TCP", "5473", (LKE_PRIVATE_RANGE,)) in rules
    # Only ICMP is open to the internet (as in Linode's default set); every port has a private source.
    assert all(not src.startswith("0.0.0.0") for rule in rules if rule[0] != "ICMP" for src in rule[2])


def test_node_firewall_rules_admit_the_app_subnet_for_intra_cluster_traffic() -> None:
    sources = {rule.sources for rule in node_firewall_rules("10.44.0.0/14") if rule.label.startswith("intra")}
    assert sources == {("10.44.0.0/14",)}


def test_node_firewall_speaks_the_shared_firewall_vocabulary_including_calico_ipip() -> None:
    rules = node_firewall_rules(None)
    assert all(isinstance(rule, InboundRule) for rule in rules)
    assert [rule.label for rule in rules if rule.public] == ["icmp"]
    ipip = next(rule for rule in rules if rule.protocol == "IPENCAP")
    assert ipip.to_args().ports is None  # IP-in-IP has no ports


def test_kubeconfig_is_a_decoded_secret_and_feeds_the_provider() -> None:
    component, records = build({"count": 1})
    assert is_secret(component.kubeconfig)
    kubeconfig = yaml.safe_load(resolve(component.kubeconfig))
    assert kubeconfig["kind"] == "Config"
    provider = only(records, "pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_inputs


def _pools_with_wire_names(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """LKE's pools output as the provider sends it (camelCase `instanceId`), two nodes per pool."""
    if type_ != "linode:index/lkeCluster:LkeCluster":
        return {}
    return {
        "pools": [
            {**pool, "id": 700 + i, "nodes": [{"id": f"n{i}-{j}", "instanceId": 5000 + 10 * i + j} for j in range(2)]}
            for i, pool in enumerate(inputs.get("pools", []))
        ]
    }


def test_standard_tier_stays_out_of_the_vpc_and_attaches_the_firewall_to_node_instances() -> None:
    args = LkeClusterArgs(
        label="platform-infra-dev-lke",
        region="eu-central",
        tier="standard",
        version="1.36",
        pool=NodePoolSettings(plan="g6-standard-2", count=2),
        high_availability=False,
        admin_ipv4_cidrs=["203.0.113.0/24"],
        admin_ipv6_cidrs=[],
        vpc_id=None,
        subnet_id=None,
        app_subnet_cidr=None,
    )
    with mocked_runtime("dev", extra_outputs=_pools_with_wire_names) as monitor:

        def program() -> None:
            LkeCluster("lke", args)

        _sync_await(run_pulumi_func(program))
    records = list(monitor.records)
    cluster = only(records, "linode:index/lkeCluster:LkeCluster")
    assert "tier" not in cluster.inputs and "vpcId" not in cluster.inputs
    # firewall_id on a standard pool is ignored by LKE (#2294), and a firewall attached by instance
    # id goes stale when LKE recycles a node: Linode's cloud-firewall-controller owns it instead.
    assert "firewallId" not in cluster.inputs["pools"][0]
    assert not [r for r in records if r.type == "linode:index/firewall:Firewall"]
    releases = {r.inputs["name"]: r for r in records if r.type == "kubernetes:helm.sh/v3:Release"}
    assert releases["cloud-firewall-crd"].inputs["chart"] == CLOUD_FIREWALL_CRD_CHART
    controller = releases["cloud-firewall"]
    assert controller.inputs["chart"] == CLOUD_FIREWALL_CONTROLLER_CHART
    assert controller.inputs["namespace"] == "kube-system"  # where LKE's `linode` token Secret lives
    assert releases["cloud-firewall-crd"].urn in controller.depends_on
    # A non-empty `firewall` value is what makes the chart create the CloudFirewall object.
    assert controller.inputs["values"]["firewall"] == {"inbound": [], "outbound": []}


# linode/cloud-firewall-controller v0.2.1 internal/rules/defaults.go: Linode's default LKE node
# ruleset as (protocol, ports, IPv4 sources, IPv6 sources).
LINODE_DEFAULT_LKE_RULES = {
    ("ICMP", None, ("0.0.0.0/0",), ("::/0",)),
    ("TCP", "10250,10256", ("192.168.128.0/17",), ()),
    ("UDP", "51820", ("192.168.128.0/17",), ()),
    ("TCP", "53", ("192.168.128.0/17",), ()),
    ("UDP", "53", ("192.168.128.0/17",), ()),
    ("TCP", "179", ("192.168.128.0/17",), ()),
    ("TCP", "5473", ("192.168.128.0/17",), ()),
    ("TCP", "30000-32767", ("192.168.255.0/24",), ()),
    ("UDP", "30000-32767", ("192.168.255.0/24",), ()),
    ("IPENCAP", None, ("192.168.128.0/17",), ()),
}


def test_node_firewall_rules_are_linodes_current_default_lke_ruleset() -> None:
    ours = {
        (r.protocol, r.ports or None, tuple(r.ipv4_sources), tuple(r.ipv6_sources)) for r in node_firewall_rules(None)
    }
    assert ours == LINODE_DEFAULT_LKE_RULES


def test_cloud_firewall_controller_charts_are_the_vendored_checksummed_archives() -> None:
    vendor = ROOT / "vendor" / "charts"
    sums: dict[str, str] = {}
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    for chart in (CLOUD_FIREWALL_CRD_CHART, CLOUD_FIREWALL_CONTROLLER_CHART):
        archive = ROOT / chart
        assert archive.parent == vendor
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == sums[archive.name], chart
