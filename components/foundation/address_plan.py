"""Deterministic private addresses for every VM, computed before anything exists.

Cloud-init of a cluster node must name its peers (Galera's gcomm://, Sentinel's monitor,
RabbitMQ's peer list). Waiting for provider outputs would make user data depend on other
instances; a fixed plan lets every document be rendered up front and keeps addresses stable
across rebuilds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from components.settings.base import NetworkSettings, Tier

# Linode reserves the first two and the last address of every VPC subnet; we also leave the
# first ten free for anything added by hand later.
FIRST_HOST_OFFSET = 10

# Role -> (tier, block start offset inside the tier's subnet, block size). Blocks never overlap
# so adding a node to one role never moves another role's addresses.
RoleBlock = tuple[Tier, int, int]
FOUNDATION_BLOCKS: dict[str, RoleBlock] = {"bastion": ("admin", FIRST_HOST_OFFSET, 5)}
# Each data service gets a block of this many addresses in the data subnet (its registry `block`).
DATA_BLOCK_SIZE = 10


def data_block(index: int) -> RoleBlock:
    """The data subnet's `index`-th block (the data registry numbers its services 0, 1, 2, ...)."""
    return ("data", FIRST_HOST_OFFSET + index * DATA_BLOCK_SIZE, DATA_BLOCK_SIZE)


class AddressPlanError(ValueError):
    """A role asked for more addresses than its block holds."""


@dataclass(frozen=True)
class SubnetPlan:
    """One VPC subnet: plain data, no Outputs, so pure code can use it."""

    tier: Tier
    cidr: ipaddress.IPv4Network

    @property
    def cidr_str(self) -> str:
        return str(self.cidr)

    def nodebalancer_backend_range(self) -> str:
        """A /29 near the top of the subnet, kept free for a VPC NodeBalancer's backend addresses.

        With VPC backends a NodeBalancer takes a free /30 or larger from the cluster's subnet and
        reaches the nodes from it (linode-cloud-controller-manager docs/configuration/loadbalancer.md,
        "Configuring NodeBalancers directly with VPC"); pinning it lets the ingress controller
        trust exactly that range. The last /29 is skipped: Linode reserves the subnet's last address.
        """
        return str(ipaddress.ip_network(f"{self.cidr.broadcast_address - 15}/29"))

    def host(self, offset: int) -> str:
        if offset < 2 or offset >= self.cidr.num_addresses - 1:
            raise AddressPlanError(f"offset {offset} is outside the usable range of {self.cidr}")
        return str(self.cidr.network_address + offset)


@dataclass(frozen=True)
class AddressPlan:
    vpc_cidr: ipaddress.IPv4Network
    subnets: dict[Tier, SubnetPlan]
    blocks: Mapping[str, RoleBlock] = field(default_factory=lambda: dict(FOUNDATION_BLOCKS))

    def subnet_for(self, role: str) -> SubnetPlan:
        tier, _, _ = self._block(role)
        return self.subnets[tier]

    def addresses(self, role: str, count: int) -> list[str]:
        tier, start, size = self._block(role)
        if count > size:
            raise AddressPlanError(f"role {role} has room for {size} nodes, {count} asked")
        subnet = self.subnets[tier]
        return [subnet.host(start + index) for index in range(count)]

    def _block(self, role: str) -> RoleBlock:
        if role not in self.blocks:
            raise AddressPlanError(f"no address block for role {role!r}; known: {', '.join(self.blocks)}")
        return self.blocks[role]


def plan_addresses(network: NetworkSettings, blocks: Mapping[str, RoleBlock] | None = None) -> AddressPlan:
    """The plan for the foundation's roles plus `blocks` (the data tier's services)."""
    subnets = {tier: SubnetPlan(tier=tier, cidr=cidr) for tier, cidr in network.subnets.items()}
    return AddressPlan(vpc_cidr=network.vpc_cidr, subnets=subnets, blocks={**FOUNDATION_BLOCKS, **(blocks or {})})
