"""The LKE cluster of a stack, its node-pool firewall and the Kubernetes provider built from it.

Tier per stack. LKE Enterprise clusters are placed in a VPC of our own (`vpc_id`/`subnet_id`,
linode/terraform-provider-linode#2079), so pods reach the data VMs' VPC addresses, and their
pools honour `firewall_id`. Standard clusters cannot join our VPC (pods reach the data VMs over
Linode's private network instead) and silently ignore a pool's `firewall_id`
(linode/terraform-provider-linode#2294, open): there the firewall is attached to the pool's
node instances by id, and the settings refuse an autoscaler so every node is one we attach.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.foundation.firewall import InboundRule, inbound_firewall
from components.linode.catalog import LINODE_PRIVATE_NETWORK
from components.settings.kubernetes import NodePoolSettings

# Akamai's published LKE node rules ("Network and firewall details", techdocs.akamai.com,
# lke-network-firewall-details): the control plane and NodeBalancers reach nodes from these.
LKE_PRIVATE_RANGE = LINODE_PRIVATE_NETWORK
NODEBALANCER_RANGE = "192.168.255.0/24"
NODEPORT_RANGE = "30000-32767"


def node_firewall_rules(app_subnet_cidr: str | None) -> list[InboundRule]:
    """Inbound rules of every node; everything else is dropped (inbound policy DROP).

    `app_subnet_cidr` is the cluster's own VPC subnet (enterprise tier), None on standard.
    """
    rules = [
        InboundRule("kubelet-health", "TCP", "10250,10256", (LKE_PRIVATE_RANGE,)),
        InboundRule("wireguard-kubectl-proxy", "UDP", "51820", (LKE_PRIVATE_RANGE,)),
        InboundRule("cluster-dns-tcp", "TCP", "53", (LKE_PRIVATE_RANGE,)),
        InboundRule("cluster-dns-udp", "UDP", "53", (LKE_PRIVATE_RANGE,)),
        InboundRule("calico-bgp", "TCP", "179", (LKE_PRIVATE_RANGE,)),
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


def _node_instance_ids(pools: Any) -> list[int]:
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


def decode_kubeconfig(encoded: str) -> str:
    """LKE returns the kubeconfig base64-encoded; the provider wants the YAML text."""
    return base64.b64decode(encoded).decode()


@dataclass(frozen=True)
class LkeClusterArgs:
    label: str  # <project>-<stack>-lke
    region: str
    tier: str  # "standard" | "enterprise"
    version: str
    pool: NodePoolSettings
    high_availability: bool
    admin_ipv4_cidrs: Sequence[str]
    admin_ipv6_cidrs: Sequence[str]
    vpc_id: pulumi.Input[int] | None  # enterprise only
    subnet_id: pulumi.Input[int] | None
    app_subnet_cidr: str | None
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

        enterprise = args.tier == "enterprise"
        rules = node_firewall_rules(args.app_subnet_cidr if enterprise else None)
        firewall_label = f"{args.label}-nodes"
        firewall_id: pulumi.Input[int] | None = None
        if enterprise:
            self.firewall = inbound_firewall(f"{name}-nodes", firewall_label, rules, args.tags, child)
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
        ignore = ["pools[0].count"] if autoscaler else []
        self.cluster = linode.LkeCluster(
            name,
            label=args.label,
            region=args.region,
            k8s_version=args.version,
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
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=ignore,
                protect=args.protect,
                additional_secret_outputs=["kubeconfig"],
            ),
        )
        if not enterprise:
            # Standard tier: attach the firewall to the pool's node instances directly.
            self.firewall = inbound_firewall(
                f"{name}-nodes",
                firewall_label,
                rules,
                args.tags,
                child,
                linodes=self.cluster.pools.apply(_node_instance_ids),
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
