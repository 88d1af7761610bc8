"""MariaDbCluster: MariaDB on a VmGroup, topology from the node count (1 / 2 / odd >= 3)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_random as random

from components.data.cloud_init import TlsMaterial
from components.data.connections import ClientProxy, ServiceConnection
from components.data.mariadb.config import (
    DATABASE_PROXY_CONFIG_KEY,
    DATABASE_PROXY_NAME,
    GALERA_HEALTH_PORT,
    GALERA_PORT,
    IST_PORT,
    MARIADB_PORT,
    MARIADB_TLS_FILES,
    PROXY_MONITOR_PATH,
    PROXY_MONITOR_PORT,
    SST_PORT,
    MariaDbCredentials,
    MariaDbNodeArgs,
    MariaDbTopology,
    mariadb_cloud_config,
    render_database_proxy_config,
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
    replica_host: str | None = None  # primary/replica: the read-only replica (DATABASE_READ_URL)
    # Galera: clients go through the in-cluster proxy, which follows the nodes' health checks.
    proxy: ClientProxy | None = None

    def client_ports(self) -> tuple[int, ...]:
        return () if self.proxy is not None else (self.port,)

    def client_proxy(self) -> ClientProxy | None:
        return self.proxy

    def _url(self, host: str, password: str, params: str) -> str:
        return (
            f"mysql://{quote(self.user, safe='')}:{quote(password, safe='')}"
            f"@{host}:{self.port}/{quote(self.database, safe='')}{params}"
        )

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        # VERIFY_IDENTITY through the proxy too: TLS passes through it and every Galera node's
        # certificate also names the proxy's Service.
        params = f"?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca_file}" if self.tls else ""
        writer = self.proxy.host if self.proxy is not None else name_of(self.primary_host)
        settings = {"DATABASE_URL": self._url(writer, password, params)}
        if self.replica_host is not None:
            settings["DATABASE_READ_URL"] = self._url(name_of(self.replica_host), password, params)
        return settings


def database_proxy(namespace: str, hosts: Sequence[str]) -> ClientProxy:
    """The proxy in front of a Galera cluster: HAProxy in the app namespace, node 0 the writer."""
    return ClientProxy(
        name=DATABASE_PROXY_NAME,
        namespace=namespace,
        port=MARIADB_PORT,
        health_port=GALERA_HEALTH_PORT,
        hosts=tuple(hosts),
        monitor_port=PROXY_MONITOR_PORT,
        monitor_path=PROXY_MONITOR_PATH,
        config_key=DATABASE_PROXY_CONFIG_KEY,
        render=render_database_proxy_config,
    )


class MariaDbCluster(DataCluster):
    type_token = "platform:data:MariaDbCluster"
    title = "MariaDB"
    settings: MariaDbSettings
    connection: MariaDbConnection
    topology: MariaDbTopology
    proxy: ClientProxy | None  # Galera: the proxy clients go through

    def prepare(self, name: str) -> None:
        self.topology = topology_for(self.settings.nodes)
        self.proxy = None
        if self.topology is MariaDbTopology.GALERA:
            namespace = self.placement.app_namespace
            if namespace is None:
                raise ValueError(
                    f"{self.placement.label_prefix}: Galera clients go through the database proxy in the "
                    "app namespace; the placement names none"
                )
            self.proxy = database_proxy(namespace, self.placement.addresses)

    def extra_dns_names(self, index: int) -> Sequence[str]:
        # TLS passes through the proxy: clients verify each node against the proxy's name.
        return (self.proxy.host,) if self.proxy is not None else ()

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
        if self.proxy is not None:
            # The proxy's health checks come from where its connections come from: the app tier.
            rules.append(self.placement.app_rule("galera-health-from-app", str(GALERA_HEALTH_PORT)))
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
            replica_host=addresses[1] if self.topology is MariaDbTopology.PRIMARY_REPLICA else None,
            proxy=self.proxy,
        )

    def outputs(self) -> dict[str, Any]:
        connection = self.connection
        return {
            "topology": self.topology.value,
            "hosts": list(connection.hosts),
            "primary_host": connection.primary_host,
            "replica_host": connection.replica_host,
            "proxy_host": connection.proxy.host if connection.proxy else None,
            "port": connection.port,
            "app_password": connection.password,
            "root_password": pulumi.Output.secret(self.root_password.result),
        }
