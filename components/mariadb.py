"""MariaDbCluster: MariaDB on a VmGroup, topology from the node count (1 / 2 / odd >= 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from components.connections import MariaDbConnection
from components.data_cloud_init import MARIADB_TLS_FILES, TlsMaterial, mariadb_cloud_config
from components.firewall import InboundRule, RoleFirewall, RoleFirewallArgs, ssh_from_bastion
from components.internal_ca import InternalCa
from components.linode_catalog import PLANS
from components.mariadb_config import (
    GALERA_PORT,
    IST_PORT,
    MARIADB_PORT,
    SST_PORT,
    MariaDbCredentials,
    MariaDbNodeArgs,
    MariaDbTopology,
    topology_for,
)
from components.role_addon import RoleAddon, node_user_data
from components.settings.data import MariaDbSettings
from components.vm_group import VmGroup, VmGroupArgs

ROLE = "mariadb"


@dataclass(frozen=True)
class DataVmPlacement:
    """Where and how a data role's VMs are built (shared by the three clusters)."""

    label_prefix: str  # <project>-<stack>-<role>
    region: str
    image: str
    vpc_subnet_id: pulumi.Input[int]
    addresses: Sequence[str]
    app_sources: Sequence[str]  # CIDRs of the app tier (client ports)
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

    def hostname(self, index: int) -> str:
        return f"{self.label_prefix}-{index}"

    def peer_sources(self) -> tuple[str, ...]:
        return tuple(f"{address}/32" for address in self.addresses)


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
    name: str, placement: DataVmPlacement, parent: pulumi.Resource
) -> list[pulumi.Output[TlsMaterial] | None]:
    """Per-node TLS material from the internal CA (None everywhere when TLS is off)."""
    if placement.ca is None:
        return [None] * len(placement.addresses)
    materials: list[pulumi.Output[TlsMaterial] | None] = []
    for index, address in enumerate(placement.addresses):
        issued = placement.ca.issue_server_certificate(
            f"{name}-{index}-tls",
            common_name=placement.hostname(index),
            ip_addresses=[address],
            dns_names=[placement.hostname(index)],
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
    rules: list[InboundRule],
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
        RoleFirewallArgs(label=placement.label_prefix[-32:], role=role, rules=all_rules, tags=tuple(placement.tags)),
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
    names = [placement.hostname(i) for i in range(len(placement.addresses))]
    if placement.private_network and vms.private_network_ipv4s is not None:
        ips = vms.private_network_ipv4s

        def nth(index: int) -> pulumi.Output[str]:
            return ips.apply(lambda values: values[index])

        return {name: nth(i) for i, name in enumerate(names)}
    return dict(zip(names, placement.addresses, strict=True))


@dataclass(frozen=True)
class MariaDbClusterArgs:
    settings: MariaDbSettings
    placement: DataVmPlacement


class MariaDbCluster(pulumi.ComponentResource):
    topology: MariaDbTopology
    connection: MariaDbConnection
    vms: VmGroup
    firewall: RoleFirewall

    def __init__(self, name: str, args: MariaDbClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:data:MariaDbCluster", name, None, opts)
        settings, placement = args.settings, args.placement
        nodes = settings.nodes
        self.topology = topology_for(nodes)
        if len(placement.addresses) != nodes:
            raise ValueError(f"{name}: {nodes} MariaDB nodes need {nodes} addresses")

        self.root_password = password(f"{name}-root-password", self)
        self.app_password = password(f"{name}-app-password", self)
        self.replication_password = password(f"{name}-replication-password", self)
        materials = tls_materials(name, placement, self)
        buffer_pool = memory_share(settings.plan, 0.5)

        user_data = []
        for index in range(nodes):

            def role_doc(values: list[Any], index: int = index) -> dict[str, Any]:
                root, app, replication, material = values
                node = MariaDbNodeArgs(
                    nodes=nodes,
                    index=index,
                    addresses=placement.addresses,
                    credentials=MariaDbCredentials(
                        root_password=root, app_password=app, replication_password=replication
                    ),
                    tls=MARIADB_TLS_FILES if material else None,
                    cluster_name=placement.label_prefix,
                    buffer_pool_size=buffer_pool,
                )
                return mariadb_cloud_config(
                    node,
                    database=settings.database,
                    app_user=settings.user,
                    tls=material,
                    private_network=placement.private_network,
                )

            doc = pulumi.Output.all(
                self.root_password.result,
                self.app_password.result,
                self.replication_password.result,
                materials[index],
            ).apply(role_doc)
            user_data.append(
                node_user_data(placement.base_cloud_config, placement.hostname(index), doc, placement.addon, index)
            )

        self.firewall, self.vms = firewall_and_vms(
            name, ROLE, placement, settings.plan, self.firewall_rules(placement), user_data, self
        )
        self.node_names = {a: placement.hostname(i) for i, a in enumerate(placement.addresses)}
        self.dial_addresses = dial_addresses(placement, self.vms)
        self.connection = MariaDbConnection(
            hosts=tuple(placement.addresses),
            primary_host=placement.addresses[0],
            port=MARIADB_PORT,
            database=settings.database,
            user=settings.user,
            password=pulumi.Output.secret(self.app_password.result),
            tls=placement.ca is not None,
        )
        self.register_outputs(
            {
                "topology": self.topology.value,
                "hosts": list(self.connection.hosts),
                "primary_host": self.connection.primary_host,
                "port": self.connection.port,
                "app_password": self.connection.password,
                "root_password": pulumi.Output.secret(self.root_password.result),
            }
        )

    def firewall_rules(self, placement: DataVmPlacement) -> list[InboundRule]:
        peers = placement.peer_sources()
        rules = [InboundRule("mariadb-from-app", "TCP", str(MARIADB_PORT), tuple(placement.app_sources))]
        if self.topology is MariaDbTopology.PRIMARY_REPLICA:
            rules.append(InboundRule("replication-from-peers", "TCP", str(MARIADB_PORT), peers))
        elif self.topology is MariaDbTopology.GALERA:
            rules.append(InboundRule("galera-from-peers", "TCP", f"{GALERA_PORT},{IST_PORT},{SST_PORT}", peers))
        return rules
