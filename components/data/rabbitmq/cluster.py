"""RabbitMqCluster: RabbitMQ on a VmGroup, N nodes in one cluster, quorum queues by default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_random as random

from components.data.cloud_init import TlsMaterial
from components.data.connections import ServiceConnection
from components.data.placement import DataCluster, password
from components.data.rabbitmq.config import (
    AMQP_PORT,
    AMQPS_PORT,
    DIST_PORT,
    EPMD_PORT,
    MANAGEMENT_PORT,
    RABBITMQ_TLS_FILES,
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    node_names_for,
    rabbitmq_cloud_config,
)
from components.foundation.firewall import InboundRule, RuleInput
from components.settings.data import RabbitMqSettings

# rabbitmqctl and friends connect from the ports just above the distribution port.
CLI_PORTS = f"{DIST_PORT + 10000}-{DIST_PORT + 10010}"


@dataclass(frozen=True)
class RabbitMqConnection(ServiceConnection):
    port: int  # 5672, or 5671 with TLS
    vhost: str
    user: str

    def client_ports(self) -> tuple[int, ...]:
        return (self.port,)

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        scheme = "amqps" if self.tls else "amqp"
        credentials = f"{quote(self.user, safe='')}:{quote(password, safe='')}"
        vhost = quote(self.vhost, safe="")
        urls = [f"{scheme}://{credentials}@{name_of(host)}:{self.port}/{vhost}" for host in self.hosts]
        return {"AMQP_URL": urls[0], "AMQP_URLS": ",".join(urls)}



class RabbitMqCluster(DataCluster):
    type_token = "platform:data:RabbitMqCluster"
    title = "RabbitMQ"
    settings: RabbitMqSettings
    connection: RabbitMqConnection
    node_names: list[str]  # Erlang node names, rabbit@<hostname>

    def prepare(self, name: str) -> None:
        # Node names from the address plan: rabbit@<label>, resolved through /etc/hosts.
        self.node_names = node_names_for(list(self.placement.node_names().values()))

    @property
    def port(self) -> int:
        return AMQPS_PORT if self.tls else AMQP_PORT

    def credentials(self, name: str) -> dict[str, random.RandomPassword]:
        self.admin_password = password(f"{name}-admin-password", self)
        self.app_password = password(f"{name}-app-password", self)
        self.erlang_cookie = password(f"{name}-erlang-cookie", self, length=48)
        return {"admin": self.admin_password, "app": self.app_password, "cookie": self.erlang_cookie}

    def node_document(self, index: int, secrets: dict[str, str], tls: TlsMaterial | None) -> dict[str, Any]:
        settings, placement = self.settings, self.placement
        node = RabbitMqNodeArgs(
            index=index,
            addresses=placement.addresses,
            node_names=self.node_names,
            credentials=RabbitMqCredentials(
                admin_password=secrets["admin"], app_password=secrets["app"], erlang_cookie=secrets["cookie"]
            ),
            vhost=settings.vhost,
            app_user=settings.user,
            tls=RABBITMQ_TLS_FILES if tls else None,
            metrics_interface="0.0.0.0" if placement.private_network else None,
        )
        return rabbitmq_cloud_config(node, tls=tls, private_network=placement.private_network)

    def firewall_rules(self) -> list[RuleInput]:
        placement = self.placement
        rules = [
            placement.app_rule("amqp-from-app", str(self.port)),
            # Operators reach the management UI through an SSH tunnel via the bastion.
            InboundRule("management-from-bastion", "TCP", str(MANAGEMENT_PORT), (f"{placement.bastion_address}/32",)),
        ]
        if self.settings.nodes > 1:
            rules.append(
                InboundRule(
                    "cluster-from-peers", "TCP", f"{EPMD_PORT},{DIST_PORT},{CLI_PORTS}", placement.peer_sources()
                )
            )
        return rules

    def make_connection(self) -> RabbitMqConnection:
        return RabbitMqConnection(
            hosts=tuple(self.placement.addresses),
            port=self.port,
            vhost=self.settings.vhost,
            user=self.settings.user,
            password=pulumi.Output.secret(self.app_password.result),
            tls=self.tls,
        )

    def outputs(self) -> dict[str, Any]:
        return {
            "hosts": list(self.connection.hosts),
            "port": self.port,
            "node_names": self.node_names,
            "password": self.connection.password,
            "admin_password": pulumi.Output.secret(self.admin_password.result),
        }
