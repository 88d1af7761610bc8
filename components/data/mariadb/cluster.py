"""MariaDbCluster: MariaDB on a VmGroup, topology from the node count (1 / 2 / odd >= 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_random as random

from components.data.cloud_init import TlsMaterial
from components.data.connections import ServiceConnection
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
from components.data.placement import DataCluster, memory_share, password
from components.foundation.firewall import InboundRule, RuleInput
from components.settings.data import MariaDbSettings


@dataclass(frozen=True)
class MariaDbConnection(ServiceConnection):
    primary_host: str  # writes go here (node 0; for Galera any node, node 0 by convention)
    port: int  # 3306
    database: str
    user: str

    def client_ports(self) -> tuple[int, ...]:
        return (self.port,)

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        params = f"?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}" if self.tls else ""
        return {
            "DATABASE_URL": (
                f"mysql://{quote(self.user, safe='')}:{quote(password, safe='')}"
                f"@{name_of(self.primary_host)}:{self.port}/{quote(self.database, safe='')}{params}"
            )
        }



class MariaDbCluster(DataCluster):
    type_token = "platform:data:MariaDbCluster"
    title = "MariaDB"
    settings: MariaDbSettings
    connection: MariaDbConnection
    topology: MariaDbTopology

    def prepare(self, name: str) -> None:
        self.topology = topology_for(self.settings.nodes)

    def credentials(self, name: str) -> dict[str, random.RandomPassword]:
        self.root_password = password(f"{name}-root-password", self)
        self.app_password = password(f"{name}-app-password", self)
        self.replication_password = password(f"{name}-replication-password", self)
        return {"root": self.root_password, "app": self.app_password, "replication": self.replication_password}

    def node_document(self, index: int, secrets: dict[str, str], tls: TlsMaterial | None) -> dict[str, Any]:
        settings, placement = self.settings, self.placement
        node = MariaDbNodeArgs(
            nodes=settings.nodes,
            index=index,
            addresses=placement.addresses,
            credentials=MariaDbCredentials(
                root_password=secrets["root"], app_password=secrets["app"], replication_password=secrets["replication"]
            ),
            tls=MARIADB_TLS_FILES if tls else None,
            cluster_name=placement.label_prefix,
            buffer_pool_size=memory_share(settings.plan, 0.5),
        )
        return mariadb_cloud_config(
            node, database=settings.database, app_user=settings.user, tls=tls, private_network=placement.private_network
        )

    def firewall_rules(self) -> list[RuleInput]:
        peers = self.placement.peer_sources()
        rules = [self.placement.app_rule("mariadb-from-app", str(MARIADB_PORT))]
        if self.topology is MariaDbTopology.PRIMARY_REPLICA:
            rules.append(InboundRule("replication-from-peers", "TCP", str(MARIADB_PORT), peers))
        elif self.topology is MariaDbTopology.GALERA:
            # MARIADB_PORT: node 0's setup script asks whether any peer already serves clients
            # (a running member) before it bootstraps a new cluster.
            rules.append(
                InboundRule(
                    "galera-from-peers", "TCP", f"{GALERA_PORT},{IST_PORT},{SST_PORT},{MARIADB_PORT}", peers
                )
            )
        return rules

    def make_connection(self) -> MariaDbConnection:
        addresses = self.placement.addresses
        return MariaDbConnection(
            hosts=tuple(addresses),
            primary_host=addresses[0],
            port=MARIADB_PORT,
            database=self.settings.database,
            user=self.settings.user,
            password=pulumi.Output.secret(self.app_password.result),
            tls=self.tls,
        )

    def outputs(self) -> dict[str, Any]:
        connection = self.connection
        return {
            "topology": self.topology.value,
            "hosts": list(connection.hosts),
            "primary_host": connection.primary_host,
            "port": connection.port,
            "app_password": connection.password,
            "root_password": pulumi.Output.secret(self.root_password.result),
        }
