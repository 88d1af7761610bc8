"""RabbitMqCluster: RabbitMQ on a VmGroup, N nodes in one cluster, quorum queues by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.data.connections import RabbitMqConnection
from components.data.placement import DataVmPlacement, dial_addresses, firewall_and_vms, password, tls_materials
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
from components.foundation.firewall import InboundRule, RoleFirewall
from components.foundation.role_addon import node_user_data
from components.foundation.vm_group import VmGroup
from components.settings.data import RabbitMqSettings

ROLE = "rabbitmq"
# rabbitmqctl and friends connect from the ports just above the distribution port.
CLI_PORTS = f"{DIST_PORT + 10000}-{DIST_PORT + 10010}"


@dataclass(frozen=True)
class RabbitMqClusterArgs:
    settings: RabbitMqSettings
    placement: DataVmPlacement


class RabbitMqCluster(pulumi.ComponentResource):
    connection: RabbitMqConnection
    node_names: list[str]
    vms: VmGroup
    firewall: RoleFirewall

    def __init__(self, name: str, args: RabbitMqClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:data:RabbitMqCluster", name, None, opts)
        settings, placement = args.settings, args.placement
        nodes = settings.nodes
        placement.require_nodes(nodes, "RabbitMQ")
        # Node names from the address plan: rabbit@<label>, resolved through /etc/hosts.
        self.node_names = node_names_for(list(placement.node_names().values()))
        tls = placement.ca is not None

        self.admin_password = password(f"{name}-admin-password", self)
        self.app_password = password(f"{name}-app-password", self)
        self.erlang_cookie = password(f"{name}-erlang-cookie", self, length=48)
        materials = tls_materials(name, placement, self)

        user_data = []
        for index in range(nodes):

            def role_doc(values: list[Any], index: int = index) -> dict[str, Any]:
                admin, app, cookie, material = values
                node = RabbitMqNodeArgs(
                    index=index,
                    addresses=placement.addresses,
                    node_names=self.node_names,
                    credentials=RabbitMqCredentials(admin_password=admin, app_password=app, erlang_cookie=cookie),
                    vhost=settings.vhost,
                    app_user=settings.user,
                    tls=RABBITMQ_TLS_FILES if material else None,
                    metrics_interface="0.0.0.0" if placement.private_network else None,
                )
                return rabbitmq_cloud_config(node, tls=material, private_network=placement.private_network)

            doc = pulumi.Output.all(
                self.admin_password.result, self.app_password.result, self.erlang_cookie.result, materials[index]
            ).apply(role_doc)
            user_data.append(
                node_user_data(placement.base_cloud_config, placement.hostname(index), doc, placement.addon, index)
            )

        port = AMQPS_PORT if tls else AMQP_PORT
        rules = [
            InboundRule("amqp-from-app", "TCP", str(port), tuple(placement.app_sources)),
            # Operators reach the management UI through an SSH tunnel via the bastion.
            InboundRule("management-from-bastion", "TCP", str(MANAGEMENT_PORT), (f"{placement.bastion_address}/32",)),
        ]
        if nodes > 1:
            rules.append(
                InboundRule(
                    "cluster-from-peers", "TCP", f"{EPMD_PORT},{DIST_PORT},{CLI_PORTS}", placement.peer_sources()
                )
            )
        self.firewall, self.vms = firewall_and_vms(name, ROLE, placement, settings.plan, rules, user_data, self)

        self.hostnames = placement.node_names()  # node_names are the Erlang names here
        self.dial_addresses = dial_addresses(placement, self.vms)
        self.connection = RabbitMqConnection(
            hosts=tuple(placement.addresses),
            port=port,
            vhost=settings.vhost,
            user=settings.user,
            password=pulumi.Output.secret(self.app_password.result),
            tls=tls,
        )
        self.register_outputs(
            {
                "hosts": list(self.connection.hosts),
                "port": port,
                "node_names": self.node_names,
                "password": self.connection.password,
                "admin_password": pulumi.Output.secret(self.admin_password.result),
            }
        )
