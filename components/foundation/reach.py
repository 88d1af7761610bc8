"""How the app tier reaches the data tier: the one rule firewalls and NetworkPolicies share.

Lower tiers (the data VMs' firewalls, the exporters' ports) and the Kubernetes tier (pod egress)
must agree on where app traffic comes from, so the rule lives below both of them.
"""

from __future__ import annotations

from components.foundation.address_plan import AddressPlan
from components.linode.catalog import LINODE_PRIVATE_NETWORK
from components.settings.kubernetes import KubernetesSettings


def app_source_cidrs(kubernetes: KubernetesSettings, plan: AddressPlan) -> tuple[str, ...]:
    """Sources the data firewalls must admit on the data ports for the app tier.

    enterprise (cluster in the VPC "app" subnet): that subnet's CIDR.
    standard (no VPC for the nodes): Linode's private network, where the nodes' private
    addresses live; the data VMs need a private IPv4 for it.
    The NetworkPolicies' data egress (kubernetes.manifests.data_egress_rules) mirrors this.
    """
    if kubernetes.data_path == "vpc":
        return (plan.subnets["app"].cidr_str,)
    return (LINODE_PRIVATE_NETWORK,)
