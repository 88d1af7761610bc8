"""The admin jump host: the only VM whose SSH is reachable from outside, from admin CIDRs only.

Operators reach the private tier with `ssh -J ops@<bastion> ops@<vpc address>`: administrative access goes
through one audited jump host instead of SSH on every VM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.foundation.cloud_init import BaseHardening, base_cloud_config, merge_cloud_configs, render_cloud_config
from components.foundation.firewall import RoleFirewall, RoleFirewallArgs, icmp_from, ssh_from_admins
from components.foundation.vm_group import VmGroup, VmGroupArgs


@dataclass(frozen=True)
class BastionArgs:
    label_prefix: str
    plan: str
    region: str
    image: str
    address: str  # VPC address from the plan
    vpc_subnet_id: pulumi.Input[int]
    admin_cidrs: Sequence[str]
    ssh_keys: Sequence[str]
    tags: Sequence[str]
    extra_cloud_config: Mapping[str, Any] | None = None  # e.g. the maintenance window
    maintenance_policy: str | None = "linode/migrate"


def bastion_cloud_config(args: BastionArgs) -> dict[str, Any]:
    base = base_cloud_config(
        BaseHardening(ssh_keys=args.ssh_keys, hostname=f"{args.label_prefix}-0", allow_tcp_forwarding=True)
    )
    return merge_cloud_configs(base, args.extra_cloud_config or {})


class Bastion(pulumi.ComponentResource):
    address: str
    public_ipv4: pulumi.Output[str]

    def __init__(self, name: str, args: BastionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:compute:Bastion", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.firewall = RoleFirewall(
            f"{name}-fw",
            RoleFirewallArgs(
                label=args.label_prefix,
                role="bastion",
                rules=(ssh_from_admins(args.admin_cidrs), icmp_from("icmp-from-admins", args.admin_cidrs)),
                tags=tuple(args.tags),
            ),
            opts=child,
        )
        self.cloud_config = bastion_cloud_config(args)
        self.group = VmGroup(
            f"{name}-vm",
            VmGroupArgs(
                role="bastion",
                label_prefix=args.label_prefix,
                count=1,
                plan=args.plan,
                region=args.region,
                image=args.image,
                addresses=[args.address],
                vpc_subnet_id=args.vpc_subnet_id,
                firewall_id=self.firewall.firewall_id,
                user_data=[render_cloud_config(self.cloud_config)],
                tags=args.tags,
                maintenance_policy=args.maintenance_policy,
            ),
            opts=child,
        )
        self.address = args.address
        self.public_ipv4 = self.group.public_ipv4s.apply(lambda ips: ips[0])
        self.register_outputs({"address": self.address, "public_ipv4": self.public_ipv4})
