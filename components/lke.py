"""The LKE cluster of a stack, its node-pool firewall and the Kubernetes provider built from it.

Tier: LKE Enterprise. It is the tier whose clusters can be placed in a VPC of our own
(`vpc_id`/`subnet_id`, linode/terraform-provider-linode#2079), so pods reach the VPC-only data
VMs over the stack's VPC, and the tier whose node pools honour `firewall_id` (on the standard
tier the firewall is silently not attached: linode/terraform-provider-linode#2294, open).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.settings.kubernetes import NodePoolSettings

# Akamai's published LKE node rules ("Network and firewall details", techdocs.akamai.com,
# lke-network-firewall-details): the control plane and NodeBalancers reach nodes from these.
LKE_PRIVATE_RANGE = "192.168.128.0/17"
NODEBALANCER_RANGE = "192.168.255.0/24"
NODEPORT_RANGE = "30000-32767"


@dataclass(frozen=True)
class FirewallRule:
    label: str
    protocol: str  # TCP, UDP, IPENCAP
    ports: str | None
    sources: tuple[str, ...]


def node_firewall_rules(app_subnet_cidr: str) -> list[FirewallRule]:
    """Inbound rules of every node; everything else is dropped (inbound policy DROP)."""
    return [
        FirewallRule("kubelet-health", "TCP", "10250,10256", (LKE_PRIVATE_RANGE,)),
        FirewallRule("wireguard-kubectl-proxy", "UDP", "51820", (LKE_PRIVATE_RANGE,)),
        FirewallRule("cluster-dns-tcp", "TCP", "53", (LKE_PRIVATE_RANGE,)),
        FirewallRule("cluster-dns-udp", "UDP", "53", (LKE_PRIVATE_RANGE,)),
        FirewallRule("calico-bgp", "TCP", "179", (LKE_PRIVATE_RANGE,)),
        FirewallRule("calico-ipip", "IPENCAP", None, (LKE_PRIVATE_RANGE,)),
        FirewallRule("nodebalancer-nodeports-tcp", "TCP", NODEPORT_RANGE, (NODEBALANCER_RANGE,)),
        FirewallRule("nodebalancer-nodeports-udp", "UDP", NODEPORT_RANGE, (NODEBALANCER_RANGE,)),
        # Node-to-node and pod traffic inside the cluster's own VPC subnet (BYO VPC).
        FirewallRule("intra-cluster-vpc-tcp", "TCP", "1-65535", (app_subnet_cidr,)),
        FirewallRule("intra-cluster-vpc-udp", "UDP", "1-65535", (app_subnet_cidr,)),
    ]


def decode_kubeconfig(encoded: str) -> str:
    """LKE returns the kubeconfig base64-encoded; the provider wants the YAML text."""
    return base64.b64decode(encoded).decode()


@dataclass(frozen=True)
class LkeClusterArgs:
    label: str  # <project>-<stack>-lke
    region: str
    version: str
    pool: NodePoolSettings
    high_availability: bool
    admin_ipv4_cidrs: Sequence[str]
    admin_ipv6_cidrs: Sequence[str]
    vpc_id: pulumi.Input[int]
    subnet_id: pulumi.Input[int]
    app_subnet_cidr: str
    tags: Sequence[str] = field(default_factory=tuple)
    protect: bool = False


class LkeCluster(pulumi.ComponentResource):
    cluster: linode.LkeCluster
    firewall: linode.Firewall
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    cluster_id: pulumi.Output[str]

    def __init__(self, name: str, args: LkeClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:LkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.firewall = linode.Firewall(
            f"{name}-nodes",
            label=f"{args.label}-nodes",
            inbound_policy="DROP",
            outbound_policy="ACCEPT",
            inbounds=[
                linode.FirewallInboundArgs(
                    label=rule.label,
                    action="ACCEPT",
                    protocol=rule.protocol,
                    ports=rule.ports,
                    ipv4s=list(rule.sources),
                )
                for rule in node_firewall_rules(args.app_subnet_cidr)
            ],
            tags=list(args.tags),
            opts=child,
        )

        # LKE Enterprise always enforces the control-plane ACL: only admin CIDRs reach the API.
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
        ignore = ["pools[0].count"] if autoscaler else []
        self.cluster = linode.LkeCluster(
            name,
            label=args.label,
            region=args.region,
            k8s_version=args.version,
            tier="enterprise",
            vpc_id=args.vpc_id,
            subnet_id=args.subnet_id,
            stack_type="ipv4",
            control_plane=linode.LkeClusterControlPlaneArgs(high_availability=args.high_availability, acl=acl),
            pools=[
                linode.LkeClusterPoolArgs(
                    type=args.pool.plan,
                    count=args.pool.initial_count,
                    autoscaler=autoscaler,
                    firewall_id=self.firewall.id.apply(int),
                    labels={"platform.example/pool": "app"},
                    tags=list(args.tags),
                )
            ],
            tags=list(args.tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=ignore,
                protect=args.protect,
                additional_secret_outputs=["kubeconfig"],
            ),
        )
        self.cluster_id = self.cluster.id
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig.apply(decode_kubeconfig))
        self.provider = k8s.Provider(
            f"{name}-provider",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child,
        )
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "kubeconfig": self.kubeconfig,
                "api_endpoints": self.cluster.api_endpoints,
                "firewall_id": self.firewall.id,
            }
        )
