"""The LKE cluster of a stack, its node firewall and the Kubernetes provider built from it.

Tier per stack. LKE Enterprise clusters are placed in a VPC of our own (`vpc_id`/`subnet_id`,
linode/terraform-provider-linode#2079), so pods reach the data VMs' VPC addresses, and their
pools honour `firewall_id`: the node firewall is ours and follows every node LKE creates.
Standard clusters cannot join our VPC (pods reach the data VMs over Linode's private network
instead) and silently ignore a pool's `firewall_id` (linode/terraform-provider-linode#2294,
open). A firewall attached by instance id goes stale as soon as LKE recycles or upgrades a
node, so on the standard tier Linode's own cloud-firewall-controller (vendored chart) runs in
the cluster: it creates firewall `lke-<cluster id>` with Linode's default LKE ruleset and
attaches every Node object the moment it registers, removing the ones that leave.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.foundation.firewall import InboundRule, inbound_firewall
from components.kubernetes.charts import vendored_chart
from components.linode.catalog import LINODE_PRIVATE_NETWORK
from components.linode.labels import check_label
from components.settings.kubernetes import LATEST, NodePoolSettings, kubernetes_minor

# Akamai's published LKE node rules ("Network and firewall details", techdocs.akamai.com,
# lke-network-firewall-details): the control plane and NodeBalancers reach nodes from these.
LKE_PRIVATE_RANGE = LINODE_PRIVATE_NETWORK
NODEBALANCER_RANGE = "192.168.255.0/24"
NODEPORT_RANGE = "30000-32767"
CALICO_TYPHA_PORT = "5473"

# linode/cloud-firewall-controller, vendored (vendor/charts/SHA256SUMS, SOURCES.md). Paths are
# relative to the project directory, where `pulumi up` runs; the CRD chart goes first.
CLOUD_FIREWALL_CRD_VERSION = "0.2.0"
CLOUD_FIREWALL_CONTROLLER_VERSION = "0.2.1"
CLOUD_FIREWALL_CRD_CHART = vendored_chart("cloud-firewall-crd", CLOUD_FIREWALL_CRD_VERSION)
CLOUD_FIREWALL_CONTROLLER_CHART = vendored_chart("cloud-firewall-controller", CLOUD_FIREWALL_CONTROLLER_VERSION)
CLOUD_FIREWALL_NAMESPACE = "kube-system"  # where LKE keeps the `linode` API-token Secret it reads


def node_firewall_rules(app_subnet_cidr: str | None) -> list[InboundRule]:
    """Inbound rules of every node; everything else is dropped (inbound policy DROP).

    Linode's current default LKE ruleset, rule for rule: linode/cloud-firewall-controller
    v0.2.1 `internal/rules/defaults.go` (ICMP from anywhere, kubelet, WireGuard, DNS, Calico BGP,
    Calico Typha, NodePorts from the NodeBalancers, IP-in-IP). ICMP stays open to the world as
    in Linode's set: path-MTU discovery needs "fragmentation needed" from any router.
    `app_subnet_cidr` is the cluster's own VPC subnet (enterprise tier), None on standard.
    """
    rules = [
        InboundRule("icmp", "ICMP", "", ("0.0.0.0/0", "::/0"), public=True),
        InboundRule("kubelet-health", "TCP", "10250,10256", (LKE_PRIVATE_RANGE,)),
        InboundRule("wireguard-kubectl-proxy", "UDP", "51820", (LKE_PRIVATE_RANGE,)),
        InboundRule("cluster-dns-tcp", "TCP", "53", (LKE_PRIVATE_RANGE,)),
        InboundRule("cluster-dns-udp", "UDP", "53", (LKE_PRIVATE_RANGE,)),
        InboundRule("calico-bgp", "TCP", "179", (LKE_PRIVATE_RANGE,)),
        InboundRule("calico-typha", "TCP", CALICO_TYPHA_PORT, (LKE_PRIVATE_RANGE,)),
        InboundRule("calico-ipip", "IPENCAP", "", (LKE_PRIVATE_RANGE,)),
        InboundRule("nodebalancer-nodeports-tcp", "TCP", NODEPORT_RANGE, (NODEBALANCER_RANGE,)),
        InboundRule("nodebalancer-nodeports-udp", "UDP", NODEPORT_RANGE, (NODEBALANCER_RANGE,)),
    ]
    if app_subnet_cidr is not None:
        # Node-to-node and pod traffic inside the cluster's own VPC subnet (BYO VPC).
        rules += [
            InboundRule("intra-cluster-vpc-tcp", "TCP", "1-65535", (app_subnet_cidr,)),
            InboundRule("intra-cluster-vpc-udp", "UDP", "1-65535", (app_subnet_cidr,)),
        ]
    return rules


def node_instance_ids(pools: Any) -> list[int]:
    """Instance ids of every node in the pools output (typed objects or raw wire dicts)."""

    def field(item: Any, *names: str) -> Any:
        for name in names:
            value = getattr(item, name, None)
            if value is None and isinstance(item, dict):
                value = dict.get(item, name)
            if value is not None:
                return value
        return None

    ids = []
    for pool in pools or []:
        for node in field(pool, "nodes") or []:
            instance_id = field(node, "instance_id", "instanceId")
            if instance_id is not None:  # a node still being provisioned has none yet
                ids.append(int(instance_id))
    return ids


# The provider sends LKE's v4beta fields (tier, VPC) only with api_version v4beta, and the
# tiered version list is a v4beta endpoint (terraform-provider-linode#2171).
LKE_API_VERSION = "v4beta"
_BUILD = re.compile(r"^v?1\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?(?:\+lke(?P<build>[0-9]+))?$")


class LkeVersionError(ValueError):
    """The configured version is not one LKE offers on this tier (any more)."""


def _version_key(version: str) -> tuple[int, int, int]:
    match = _BUILD.match(version)
    if match is None:
        return (-1, -1, -1)
    return (int(match["minor"]), int(match["patch"] or 0), int(match["build"] or 0))


def resolve_lke_version(requested: str, tier: str, offered: Sequence[str]) -> str:
    """The `k8s_version` to create the cluster with: `latest`, or the newest build of a minor.

    `offered` is what `linode.get_lke_versions(tier=...)` returns (ids). A minor LKE no longer
    offers is an error naming what it does offer, never a silent change of minor.
    """
    candidates = [v for v in offered if _BUILD.match(v)]
    if requested != LATEST:
        candidates = [v for v in candidates if kubernetes_minor(v) == requested]
    if not candidates:
        raise LkeVersionError(
            f"kubernetes.version {requested!r}: LKE {tier} offers {', '.join(offered) or 'nothing'}; "
            "set a minor it offers (docs/RUNBOOK.md, 'Kubernetes upgrades')"
        )
    return max(candidates, key=_version_key)


def decode_kubeconfig(encoded: str) -> str:
    """LKE returns the kubeconfig base64-encoded; the provider wants the YAML text."""
    return base64.b64decode(encoded).decode()


@dataclass(frozen=True)
class LkeClusterArgs:
    label: str  # <project>-<stack>-lke
    region: str
    tier: str  # "standard" | "enterprise"
    version: str  # a minor ("1.36") or "latest", resolved against the API's list at deploy time
    pool: NodePoolSettings
    high_availability: bool
    admin_ipv4_cidrs: Sequence[str]
    admin_ipv6_cidrs: Sequence[str]
    vpc_id: pulumi.Input[int] | None  # enterprise only
    subnet_id: pulumi.Input[int] | None
    app_subnet_cidr: str | None
    tags: Sequence[str] = field(default_factory=tuple)
    protect: bool = False
    # The stack's `linode:token` secret, for the cluster's own v4beta provider. None only in
    # component tests (the provider then reads LINODE_TOKEN like the default one).
    api_token: pulumi.Input[str] | None = None


def cloud_firewall_controller_values() -> dict[str, Any]:
    """Helm values of the cloud-firewall-controller chart.

    A non-empty `firewall` value makes the chart create the CloudFirewall object `primary` in
    kube-system (templates/firewall.yaml); without it the controller has nothing to reconcile.
    `spec.defaultRules` keeps its default (true): Linode's default LKE ruleset, the same rules
    as `node_firewall_rules(None)`, with nothing of ours appended.
    """
    return {"namespace": CLOUD_FIREWALL_NAMESPACE, "firewall": {"inbound": [], "outbound": []}}


class CloudFirewallController(pulumi.ComponentResource):
    """linode/cloud-firewall-controller in the cluster: the standard tier's node firewall.

    It reads LKE's own `linode` Secret in kube-system for its API token, so no credential of
    ours enters the cluster. Its firewall is named `lke-<cluster id>` and is not a Pulumi
    resource: the controller creates, updates and deletes it.
    """

    crd: k8s.helm.v3.Release
    release: k8s.helm.v3.Release

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:CloudFirewallController", name, None, opts)
        self.crd = k8s.helm.v3.Release(
            f"{name}-crd",
            name="cloud-firewall-crd",
            chart=CLOUD_FIREWALL_CRD_CHART,
            version=CLOUD_FIREWALL_CRD_VERSION,
            namespace=CLOUD_FIREWALL_NAMESPACE,
            atomic=True,
            cleanup_on_fail=True,
            timeout=300,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="cloud-firewall",
            chart=CLOUD_FIREWALL_CONTROLLER_CHART,
            version=CLOUD_FIREWALL_CONTROLLER_VERSION,
            namespace=CLOUD_FIREWALL_NAMESPACE,
            values=cloud_firewall_controller_values(),
            atomic=True,
            cleanup_on_fail=True,
            timeout=300,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crd]),
        )
        self.register_outputs({"controller_chart": CLOUD_FIREWALL_CONTROLLER_CHART})


class LkeCluster(pulumi.ComponentResource):
    cluster: linode.LkeCluster
    firewall: linode.Firewall | None  # ours on enterprise; the controller's on standard
    firewall_controller: CloudFirewallController | None
    api_provider: linode.Provider  # Linode provider with api_version v4beta, for the cluster
    version: pulumi.Output[str]  # the resolved k8s_version the cluster was created with
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    node_instance_ids: pulumi.Output[list[int]]  # as of this deploy; LKE may recycle them later

    def __init__(self, name: str, args: LkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:LkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        enterprise = args.tier == "enterprise"
        self.api_provider = linode.Provider(
            f"{name}-linode-v4beta",
            api_version=LKE_API_VERSION,
            token=pulumi.Output.secret(args.api_token) if args.api_token is not None else None,
            opts=child,
        )
        on_v4beta = pulumi.ResourceOptions(parent=self, provider=self.api_provider)
        offered = linode.get_lke_versions_output(
            tier=args.tier, opts=pulumi.InvokeOutputOptions(parent=self, provider=self.api_provider)
        )
        self.version = offered.versions.apply(
            lambda versions: resolve_lke_version(args.version, args.tier, [v.id for v in versions or []])
        )
        firewall_id: pulumi.Input[int] | None = None
        self.firewall = None
        if enterprise:
            rules = node_firewall_rules(args.app_subnet_cidr)
            # The cluster's own label: firewall labels stop at 32 characters (components/linode/labels.py).
            self.firewall = inbound_firewall(f"{name}-nodes", args.label, rules, args.tags, child)
            firewall_id = self.firewall.id.apply(int)
        # The control-plane ACL is always on: only admin CIDRs reach the API.
        acl = linode.LkeClusterControlPlaneAclArgs(
            enabled=True,
            addresses=[
                linode.LkeClusterControlPlaneAclAddressArgs(
                    ipv4s=list(args.admin_ipv4_cidrs), ipv6s=list(args.admin_ipv6_cidrs) or None
                )
            ],
        )
        autoscaler = (
            linode.LkeClusterPoolAutoscalerArgs(min=args.pool.autoscaler.min, max=args.pool.autoscaler.max)
            if args.pool.autoscaler
            else None
        )
        # With the autoscaler on, LKE owns the node count: we start at `min` and never reset it.
        # LKE owns the version after creation too: it applies patch builds and, at a minor's end
        # of life, upgrades the cluster itself; the stored version must never be pushed back
        # (a downgrade the API refuses). Upgrades are an explicit step (docs/RUNBOOK.md).
        ignore = ["k8sVersion", *(["pools[0].count"] if autoscaler else [])]
        self.cluster = linode.LkeCluster(
            name,
            label=check_label("lke_cluster", args.label),
            region=args.region,
            k8s_version=self.version,
            # `tier` is a v4beta field: only sent for enterprise; absent means standard.
            tier="enterprise" if enterprise else None,
            vpc_id=args.vpc_id if enterprise else None,
            subnet_id=args.subnet_id if enterprise else None,
            stack_type="ipv4" if enterprise else None,
            control_plane=linode.LkeClusterControlPlaneArgs(high_availability=args.high_availability, acl=acl),
            pools=[
                linode.LkeClusterPoolArgs(
                    type=args.pool.plan,
                    count=args.pool.initial_count,
                    autoscaler=autoscaler,
                    firewall_id=firewall_id,
                    labels={"platform.example/pool": "app"},
                    tags=list(args.tags),
                )
            ],
            tags=list(args.tags),
            opts=pulumi.ResourceOptions.merge(
                on_v4beta,
                pulumi.ResourceOptions(
                    ignore_changes=ignore, protect=args.protect, additional_secret_outputs=["kubeconfig"]
                ),
            ),
        )
        self.cluster_id = self.cluster.id
        self.node_instance_ids = self.cluster.pools.apply(node_instance_ids)
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig.apply(decode_kubeconfig))
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child,
        )
        # Standard tier: Linode's controller keeps the node firewall on every node LKE creates.
        self.firewall_controller = (
            None
            if enterprise
            else CloudFirewallController(
                f"{name}-node-firewall",
                opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.provider}),
            )
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "kubeconfig": self.kubeconfig,
                "api_endpoints": self.cluster.api_endpoints,
                "k8s_version": self.version,
                "firewall_id": self.firewall.id if self.firewall else None,
                "node_instance_ids": self.node_instance_ids,
            }
        )
