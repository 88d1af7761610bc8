"""One VPC per stack with a subnet per tier, and the address plan that goes with it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_linode as linode

from components.foundation.address_plan import AddressPlan
from components.linode.labels import check_label
from components.settings.base import Tier


@dataclass(frozen=True)
class NetworkArgs:
    label: str  # VPC label, <project>-<stack>
    region: str
    plan: AddressPlan


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[int]
    subnet_ids: dict[Tier, pulumi.Output[int]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.plan = args.plan
        self.vpc = linode.Vpc(
            f"{name}-vpc",
            label=check_label("vpc", args.label),
            region=args.region,
            description=f"{args.label}: private network for every tier",
            opts=child,
        )
        self.vpc_id = self.vpc.id.apply(int)
        self.subnets: dict[Tier, linode.VpcSubnet] = {}
        self.subnet_ids = {}
        for tier, subnet in args.plan.subnets.items():
            self.subnets[tier] = linode.VpcSubnet(
                f"{name}-{tier}",
                vpc_id=self.vpc_id,
                label=check_label("vpc_subnet", f"{args.label}-{tier}"),
                ipv4=subnet.cidr_str,
                opts=child,
            )
            self.subnet_ids[tier] = self.subnets[tier].id.apply(int)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "subnet_ids": {tier: subnet_id for tier, subnet_id in self.subnet_ids.items()},
                "subnet_cidrs": {tier: s.cidr_str for tier, s in args.plan.subnets.items()},
            }
        )
