"""What every data cluster shares: where its VMs go, its credentials, TLS, firewall and the
`DataCluster` base that builds them.

MariaDB, Redis and RabbitMQ differ in topology and configuration, not in how a data VM is
placed, protected, credentialed and reached; that part lives here once. A service's cluster
says only what differs: its passwords, one node's cloud-config document, its firewall rules
and the connection it hands to the app tier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from components.data.cloud_init import TlsMaterial
from components.data.connections import ServiceConnection
from components.data.internal_ca import InternalCa
from components.foundation.firewall import RoleFirewall, RoleFirewallArgs, RuleInput, inbound_rule, ssh_from_bastion
from components.foundation.role_addon import RoleAddon, node_user_data
from components.foundation.vm_group import VmGroup, VmGroupArgs
from components.linode.catalog import PLANS
from components.settings.data import ServiceSettings


@dataclass(frozen=True)
class DataVmPlacement:
    """Where and how a data role's VMs are built (shared by the three clusters)."""

    label_prefix: str  # <project>-<stack>-<role>
    region: str
    image: str
    vpc_subnet_id: pulumi.Input[int]
    addresses: Sequence[str]
    # Where the app tier connects from (client ports): the cluster's VPC subnet, or each LKE
    # node's private address /32, known at deploy time (foundation/reach.py).
    app_sources: pulumi.Input[Sequence[str]]
    bastion_address: str
    base_cloud_config: Mapping[str, Any]
    tags: Sequence[str]
    protect: bool  # prod: data VMs cannot be deleted by a stray `pulumi up`/`destroy`
    disk_encryption: bool
    backups_enabled: bool
    ca: InternalCa | None = None  # TLS on when set
    addon: RoleAddon | None = None
    # Clients outside the VPC (standard-tier LKE) reach the VMs over Linode's private network:
    # the VMs get a private IPv4 and the services listen on it too.
    private_network: bool = False
    # The Kubernetes namespace the application (and any proxy in front of a service) runs in.
    app_namespace: str | None = None

    def hostname(self, index: int) -> str:
        return f"{self.label_prefix}-{index}"

    def node_names(self) -> dict[str, str]:
        """VPC address -> the node's name (hostname, certificate SAN), in node order."""
        return {address: self.hostname(index) for index, address in enumerate(self.addresses)}

    def require_nodes(self, nodes: int, service: str) -> None:
        if len(self.addresses) != nodes:
            raise ValueError(f"{self.label_prefix}: {nodes} {service} nodes need {nodes} addresses")

    def peer_sources(self) -> tuple[str, ...]:
        return tuple(f"{address}/32" for address in self.addresses)

    def app_rule(self, label: str, ports: str) -> RuleInput:
        """TCP `ports` open to the app tier's sources and nothing wider."""
        return inbound_rule(label, "TCP", ports, self.app_sources)


def memory_share(plan: str, share: float, unit: str = "M") -> str:
    """A share of the plan's memory, e.g. InnoDB buffer pool or Redis maxmemory."""
    spec = PLANS.get(plan)
    megabytes = int((spec.memory_gb if spec else 2) * 1024 * share)
    return f"{megabytes}{unit}"


def password(name: str, parent: pulumi.Resource, length: int = 32) -> random.RandomPassword:
    # Letters and digits only: the values go into option files, SQL and URLs without escaping.
    return random.RandomPassword(
        name,
        length=length,
        special=False,
        min_upper=2,
        min_lower=2,
        min_numeric=2,
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["result"]),
    )


def tls_materials(
    name: str,
    placement: DataVmPlacement,
    parent: pulumi.Resource,
    extra_dns_names: Callable[[int], Sequence[str]] = lambda _index: (),
) -> list[pulumi.Output[TlsMaterial] | None]:
    """Per-node TLS material from the internal CA (None everywhere when TLS is off).

    Each certificate names its node (hostname, VPC address) plus `extra_dns_names(index)`: other
    names clients reach that node by (e.g. a proxy passing TLS through).
    """
    if placement.ca is None:
        return [None] * len(placement.addresses)
    materials: list[pulumi.Output[TlsMaterial] | None] = []
    for index, address in enumerate(placement.addresses):
        issued = placement.ca.issue_server_certificate(
            f"{name}-{index}-tls",
            common_name=placement.hostname(index),
            ip_addresses=[address],
            dns_names=[placement.hostname(index), *extra_dns_names(index)],
            parent=parent,
        )
        materials.append(
            pulumi.Output.all(placement.ca.ca_certificate_pem, issued.cert_pem, issued.private_key_pem).apply(
                lambda v: TlsMaterial(ca_pem=v[0], cert_pem=v[1], key_pem=v[2])
            )
        )
    return materials


def firewall_and_vms(
    name: str,
    role: str,
    placement: DataVmPlacement,
    plan: str,
    rules: list[RuleInput],
    user_data: list[pulumi.Output[str]],
    parent: pulumi.Resource,
) -> tuple[RoleFirewall, VmGroup]:
    all_rules = (
        *rules,
        ssh_from_bastion(placement.bastion_address),
        *(placement.addon.inbound_rules if placement.addon else ()),
    )
    firewall = RoleFirewall(
        f"{name}-firewall",
        RoleFirewallArgs(label=placement.label_prefix, role=role, rules=all_rules, tags=tuple(placement.tags)),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    vms = VmGroup(
        f"{name}-vms",
        VmGroupArgs(
            role=role,
            label_prefix=placement.label_prefix,
            count=len(placement.addresses),
            plan=plan,
            region=placement.region,
            image=placement.image,
            addresses=placement.addresses,
            vpc_subnet_id=placement.vpc_subnet_id,
            firewall_id=firewall.firewall_id,
            user_data=user_data,
            tags=placement.tags,
            backups_enabled=placement.backups_enabled,
            stateful=True,
            protect=placement.protect,
            disk_encryption=placement.disk_encryption,
            private_ip=placement.private_network,
        ),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return firewall, vms


def dial_addresses(placement: DataVmPlacement, vms: VmGroup) -> dict[str, pulumi.Input[str]]:
    """Node name -> the address app pods dial: VPC address, or the private-network one."""
    names = list(placement.node_names().values())
    if placement.private_network and vms.private_network_ipv4s is not None:
        ips = vms.private_network_ipv4s

        def nth(index: int) -> pulumi.Output[str]:
            return ips.apply(lambda values: values[index])

        return {name: nth(i) for i, name in enumerate(names)}
    return dict(zip(names, placement.addresses, strict=True))


@dataclass(frozen=True)
class DataClusterArgs:
    role: str  # the registry's name for the service: firewall role, tags
    settings: ServiceSettings
    placement: DataVmPlacement


class DataCluster(pulumi.ComponentResource):
    """N VMs of one data service behind one firewall, each booted from its rendered user data.

    Subclasses set `type_token` and `title` and implement the four hooks below; the constructor
    order (credentials, TLS, user data, firewall and VMs, connection) is the same for all.
    """

    type_token: str
    title: str
    settings: ServiceSettings
    placement: DataVmPlacement
    connection: ServiceConnection
    vms: VmGroup
    firewall: RoleFirewall
    hostnames: dict[str, str]  # VPC address -> node name (hostname, certificate SAN)
    dial_addresses: dict[str, pulumi.Input[str]]  # node name -> the address app pods dial

    def __init__(self, name: str, args: DataClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.type_token, name, None, opts)
        self.settings, self.placement = args.settings, args.placement
        placement = args.placement
        placement.require_nodes(args.settings.nodes, self.title)
        self.prepare(name)
        secrets = self.credentials(name)
        materials = tls_materials(name, placement, self, self.extra_dns_names)
        user_data = []
        for index in range(args.settings.nodes):

            def document(values: list[Any], index: int = index) -> dict[str, Any]:
                *plain, material = values
                return self.node_document(index, dict(zip(secrets, plain, strict=True)), material)

            doc = pulumi.Output.all(*(password.result for password in secrets.values()), materials[index]).apply(
                document
            )
            user_data.append(
                node_user_data(placement.base_cloud_config, placement.hostname(index), doc, placement.addon, index)
            )
        self.firewall, self.vms = firewall_and_vms(
            name, args.role, placement, args.settings.plan, self.firewall_rules(), user_data, self
        )
        self.hostnames = placement.node_names()
        self.dial_addresses = dial_addresses(placement, self.vms)
        self.connection = self.make_connection()
        self.register_outputs(self.outputs())

    @property
    def tls(self) -> bool:
        return self.placement.ca is not None

    def prepare(self, name: str) -> None:
        """Plan-time facts the other hooks need (topology, node names); optional."""

    def extra_dns_names(self, index: int) -> Sequence[str]:
        """Names besides its hostname that node `index`'s certificate carries; optional."""
        return ()

    def credentials(self, name: str) -> dict[str, random.RandomPassword]:
        """The cluster's passwords, by the key `node_document` receives their values under."""
        raise NotImplementedError

    def node_document(self, index: int, secrets: dict[str, str], tls: TlsMaterial | None) -> dict[str, Any]:
        """The service's cloud-config document for node `index` (pure renderers, plain values)."""
        raise NotImplementedError

    def firewall_rules(self) -> list[RuleInput]:
        """Client ports (through `placement.app_rule`) and peer ports; SSH from the bastion and
        the add-on rules are added for all."""
        raise NotImplementedError

    def make_connection(self) -> ServiceConnection:
        raise NotImplementedError

    def outputs(self) -> dict[str, Any]:
        raise NotImplementedError
