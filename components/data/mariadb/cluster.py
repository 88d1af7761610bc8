"""MariaDbCluster: MariaDB on a VmGroup, topology from the node count (1 / 2 / odd >= 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.data.connections import MariaDbConnection
from components.data.mariadb.config import (
    GALERA_PORT,
    IST_PORT,
    MARIADB_PORT,
    MARIADB_TLS_FILES,
    SST_PORT,
    MariaDbCredentials,
    MariaDbNodeArgs,
    MariaDbTopology,
    mariadb_cloud_config,
    topology_for,
)
from components.data.placement import (
    DataVmPlacement,
    dial_addresses,
    firewall_and_vms,
    memory_share,
    password,
    tls_materials,
)
from components.foundation.firewall import InboundRule, RoleFirewall
from components.foundation.role_addon import node_user_data
from components.foundation.vm_group import VmGroup
from components.settings.data import MariaDbSettings

ROLE = "mariadb"


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
        placement.require_nodes(nodes, "MariaDB")

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
        self.node_names = placement.node_names()
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
