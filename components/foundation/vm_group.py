"""N Linode instances of one role, each with its planned VPC address and its own user data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_linode as linode

from components.foundation.cloud_init import encode_user_data
from components.linode.catalog import DISK_ENCRYPTION_REGIONS
from components.linode.labels import check_label

# Changing any of these on Linode rebuilds the disk. For a stateful VM that would silently
# wipe a database, so changes to them are ignored and rolled out by the runbook instead
# (README: "Changing a data VM's template").
STATEFUL_IGNORED_FIELDS = ["metadatas", "image", "authorized_keys", "root_pass", "stackscript_data"]


class VmGroupError(ValueError):
    """The group's shape does not add up (addresses vs count, user data vs count)."""


@dataclass(frozen=True)
class VmGroupArgs:
    role: str
    label_prefix: str  # <project>-<stack>-<role>; node n is <label_prefix>-<n>
    count: int
    plan: str
    region: str
    image: str
    addresses: Sequence[str]  # VPC IPv4 per node, from the address plan
    vpc_subnet_id: pulumi.Input[int]
    firewall_id: pulumi.Input[int]
    user_data: Sequence[pulumi.Input[str]]  # rendered #cloud-config per node (secret if it holds one)
    tags: Sequence[str]
    backups_enabled: bool = False
    stateful: bool = False
    protect: bool = False
    disk_encryption: bool = True
    # A Linode private-network IPv4 (192.168.128.0/17): how pods on a standard-tier LKE cluster,
    # which cannot join our VPC, reach the data VMs. It lives on a public-purpose interface, so
    # such a VM gets one as well (see `vm_interfaces`).
    private_ip: bool = False
    anti_affinity: bool = field(default=True)
    # What Linode does to the VM during host maintenance: live-migrate it (default) or power-cycle.
    maintenance_policy: str | None = "linode/migrate"


def vm_interfaces(
    subnet_id: pulumi.Input[int], address: str, private_ip: bool
) -> list[linode.InstanceInterfaceArgs]:
    """A VM's legacy configuration-profile interfaces: the VPC interface is eth0 and primary.

    Only the primary interface gets the default route; with the public interface primary Linode
    routes nothing to the VPC's other subnets ("The Linode will not be reachable or able to reach
    Linodes in the other subnets of the VPC", Cloud Manager, features/VPCs/constants.ts), so the
    bastion could not reach the data subnet. Egress (packages, backups) leaves through 1:1 NAT
    on the VPC interface (`nat11="any"`: the Linode's public IPv4 is mapped to its VPC address),
    Cloud Manager's recommended setup; the firewall still decides what gets in.
    A public-purpose interface is added only for a private-network IPv4: the API configures the
    Linode's other addresses (the 192.168.128.0/17 one included) only on a public interface ("If
    no public interface is configured, public IP addresses are still assigned to the Linode but
    will not be usable", API: configuration profile interfaces). It is not primary, and the NAT
    keeps the public IPv4 on the VPC interface ("The VPC interface with 1:1 NAT will use the
    Public IP even if it's not on the default network interface", Cloud Manager).
    """
    interfaces = [
        linode.InstanceInterfaceArgs(
            purpose="vpc",
            subnet_id=subnet_id,
            ipv4=linode.InstanceInterfaceIpv4Args(vpc=address, nat11="any"),
            primary=True,
        )
    ]
    if private_ip:
        interfaces.append(linode.InstanceInterfaceArgs(purpose="public", primary=False))
    return interfaces


class VmGroup(pulumi.ComponentResource):
    instances: list[linode.Instance]
    private_addresses: list[str]
    instance_ids: pulumi.Output[list[str]]
    public_ipv4s: pulumi.Output[list[str]]
    private_network_ipv4s: pulumi.Output[list[str]] | None

    def __init__(self, name: str, args: VmGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:compute:VmGroup", name, None, opts)
        if args.count < 1:
            raise VmGroupError(f"{name}: count must be at least 1, got {args.count}")
        if len(args.addresses) != args.count or len(args.user_data) != args.count:
            raise VmGroupError(
                f"{name}: {args.count} nodes need {args.count} addresses and user data documents, "
                f"got {len(args.addresses)} and {len(args.user_data)}"
            )
        child = pulumi.ResourceOptions(parent=self)

        self.placement_group: linode.PlacementGroup | None = None
        if args.count > 1 and args.anti_affinity:
            # Nodes of one cluster on different hosts: one host failure takes one node, not quorum.
            self.placement_group = linode.PlacementGroup(
                f"{name}-placement",
                # The role's own label: placement-group labels stop at 32 characters.
                label=check_label("placement_group", args.label_prefix),
                region=args.region,
                placement_group_type="anti_affinity:local",
                placement_group_policy="strict",
                opts=child,
            )

        instance_opts = pulumi.ResourceOptions(
            parent=self,
            protect=args.protect,
            ignore_changes=STATEFUL_IGNORED_FIELDS if args.stateful else None,
        )
        encryption = (
            "enabled" if args.disk_encryption and args.region in DISK_ENCRYPTION_REGIONS else "disabled"
        )
        self.instances = []
        for index, (address, user_data) in enumerate(zip(args.addresses, args.user_data, strict=True)):
            interfaces = vm_interfaces(args.vpc_subnet_id, address, args.private_ip)
            instance = linode.Instance(
                f"{name}-{index}",
                label=check_label("instance", f"{args.label_prefix}-{index}"),
                region=args.region,
                type=args.plan,
                image=args.image,
                # Explicit: the account default decides otherwise, and the two generations take
                # different arguments. Legacy config profiles carry the VPC address and firewall_id.
                interface_generation="legacy_config",
                interfaces=interfaces,
                firewall_id=args.firewall_id,
                metadatas=[
                    linode.InstanceMetadataArgs(
                        user_data=pulumi.Output.from_input(user_data).apply(encode_user_data)
                    )
                ],
                backups_enabled=args.backups_enabled,
                disk_encryption=encryption,
                placement_group=(
                    linode.InstancePlacementGroupArgs(id=self.placement_group.id.apply(int))
                    if self.placement_group
                    else None
                ),
                private_ip=args.private_ip,
                maintenance_policy=args.maintenance_policy,
                tags=list(args.tags),
                opts=instance_opts,
            )
            self.instances.append(instance)

        self.private_addresses = list(args.addresses)
        self.instance_ids = pulumi.Output.all(*[i.id for i in self.instances])
        self.public_ipv4s = pulumi.Output.all(*[i.ipv4s.apply(lambda ips: ips[0]) for i in self.instances])
        self.private_network_ipv4s = (
            pulumi.Output.all(*[i.private_ip_address for i in self.instances]) if args.private_ip else None
        )
        self.register_outputs(
            {
                "instance_ids": self.instance_ids,
                "private_network_ipv4s": self.private_network_ipv4s,
                "private_addresses": self.private_addresses,
                "public_ipv4s": self.public_ipv4s,
            }
        )
