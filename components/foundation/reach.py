"""How the app tier reaches the data tier: the one rule firewalls and NetworkPolicies share.

Lower tiers (the data VMs' firewalls, the exporters' ports) and the Kubernetes tier (pod egress)
must agree on where app traffic comes from, so the rule lives below both of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_linode as linode

from components.foundation.address_plan import AddressPlan
from components.settings.kubernetes import KubernetesSettings


def _private_sources(instances: Sequence[Any]) -> list[str]:
    return sorted({f"{i.private_ip_address}/32" for i in instances if getattr(i, "private_ip_address", None)})


def lke_node_private_sources(node_instance_ids: pulumi.Input[Sequence[int]]) -> pulumi.Output[list[str]]:
    """Each LKE node's private-network IPv4 as a /32, looked up by instance id at deploy time.

    Pods on a standard-tier cluster reach the data VMs with their node's private address (SNAT on
    leaving the node). 192.168.128.0/17 is shared by every Linode of every customer in the region,
    so the data firewalls admit these /32s and nothing wider. The list is as current as the last
    `pulumi up --refresh`: a node LKE recycles in between is not admitted until the next deploy,
    and its old address stays admitted until then (README, "How pods reach the data VMs").
    """

    def lookup(ids: Sequence[int]) -> pulumi.Output[list[str]] | list[str]:
        if not ids:  # an id filter without values would match every instance of the account
            return []
        found = linode.get_instances_output(
            filters=[linode.GetInstancesFilterArgs(name="id", values=[str(i) for i in ids])]
        )
        return found.instances.apply(_private_sources)

    return pulumi.Output.from_input(node_instance_ids).apply(lookup)


def app_source_cidrs(
    kubernetes: KubernetesSettings,
    plan: AddressPlan,
    node_private_sources: pulumi.Input[Sequence[str]] | None = None,
) -> pulumi.Input[Sequence[str]]:
    """Sources the data firewalls must admit on the data and exporter ports for the app tier.

    enterprise (cluster in the VPC "app" subnet): that subnet's CIDR, ours alone.
    standard (no VPC for the nodes): the nodes' private-network /32s (`lke_node_private_sources`);
    the data VMs need a private IPv4 for it.
    The NetworkPolicies' data egress (kubernetes.manifests.data_egress_rules) mirrors this.
    """
    if kubernetes.data_path == "vpc":
        return (plan.subnets["app"].cidr_str,)
    if node_private_sources is None:
        raise ValueError("a standard-tier cluster's data path needs the LKE nodes' private addresses")
    return node_private_sources
