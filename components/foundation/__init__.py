"""The foundation tier: address plan, cloud-init base, network, firewall vocabulary, VM groups,
the bastion, and how the app tier reaches the data tier."""

from components.foundation.address_plan import AddressPlan, SubnetPlan, plan_addresses
from components.foundation.bastion import Bastion, BastionArgs
from components.foundation.cloud_init import BaseHardening, base_cloud_config, merge_cloud_configs, render_cloud_config
from components.foundation.firewall import InboundRule, RoleFirewall, RoleFirewallArgs
from components.foundation.network import Network, NetworkArgs
from components.foundation.reach import app_source_cidrs, lke_node_private_sources
from components.foundation.role_addon import RoleAddon
from components.foundation.vm_group import VmGroup, VmGroupArgs

__all__ = [
    "AddressPlan",
    "BaseHardening",
    "Bastion",
    "BastionArgs",
    "InboundRule",
    "Network",
    "NetworkArgs",
    "RoleAddon",
    "RoleFirewall",
    "RoleFirewallArgs",
    "SubnetPlan",
    "VmGroup",
    "VmGroupArgs",
    "app_source_cidrs",
    "base_cloud_config",
    "lke_node_private_sources",
    "merge_cloud_configs",
    "plan_addresses",
    "render_cloud_config",
]
