"""RedisCluster: Redis on a VmGroup; 1 standalone, 2 primary + replica, 3+ with Sentinel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.data.connections import RedisConnection
from components.data.placement import (
    DataVmPlacement,
    dial_addresses,
    firewall_and_vms,
    memory_share,
    password,
    tls_materials,
)
from components.data.redis.config import (
    REDIS_PORT,
    REDIS_TLS_FILES,
    SENTINEL_PORT,
    RedisNodeArgs,
    RedisTopology,
    redis_cloud_config,
    topology_for,
)
from components.foundation.firewall import InboundRule, RoleFirewall
from components.foundation.role_addon import node_user_data
from components.foundation.vm_group import VmGroup
from components.settings.data import RedisSettings

ROLE = "redis"


@dataclass(frozen=True)
class RedisClusterArgs:
    settings: RedisSettings
    placement: DataVmPlacement


class RedisCluster(pulumi.ComponentResource):
    topology: RedisTopology
    connection: RedisConnection
    vms: VmGroup
    firewall: RoleFirewall

    def __init__(self, name: str, args: RedisClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:data:RedisCluster", name, None, opts)
        settings, placement = args.settings, args.placement
        nodes = settings.nodes
        self.topology = topology_for(nodes)
        placement.require_nodes(nodes, "Redis")
        sentinel = self.topology is RedisTopology.SENTINEL

        self.auth_password = password(f"{name}-auth-password", self)
        materials = tls_materials(name, placement, self)
        maxmemory = memory_share(settings.plan, 0.6, unit="mb")

        user_data = []
        for index in range(nodes):

            def role_doc(values: list[Any], index: int = index) -> dict[str, Any]:
                auth, material = values
                node = RedisNodeArgs(
                    nodes=nodes,
                    index=index,
                    addresses=placement.addresses,
                    password=auth,
                    tls=REDIS_TLS_FILES if material else None,
                    sentinel_master=settings.sentinel_master,
                    maxmemory=maxmemory,
                    maxmemory_policy=settings.maxmemory_policy,
                )
                return redis_cloud_config(node, tls=material, private_network=placement.private_network)

            doc = pulumi.Output.all(self.auth_password.result, materials[index]).apply(role_doc)
            user_data.append(
                node_user_data(placement.base_cloud_config, placement.hostname(index), doc, placement.addon, index)
            )

        rules = [InboundRule("redis-from-app", "TCP", str(REDIS_PORT), tuple(placement.app_sources))]
        if nodes > 1:
            ports = f"{REDIS_PORT},{SENTINEL_PORT}" if sentinel else str(REDIS_PORT)
            rules.append(InboundRule("redis-from-peers", "TCP", ports, placement.peer_sources()))
        if sentinel:
            rules.append(InboundRule("sentinel-from-app", "TCP", str(SENTINEL_PORT), tuple(placement.app_sources)))
        self.firewall, self.vms = firewall_and_vms(name, ROLE, placement, settings.plan, rules, user_data, self)

        self.node_names = placement.node_names()
        self.dial_addresses = dial_addresses(placement, self.vms)
        self.connection = RedisConnection(
            hosts=tuple(placement.addresses),
            primary_host=placement.addresses[0],
            port=REDIS_PORT,
            sentinel_port=SENTINEL_PORT if sentinel else None,
            sentinel_master=settings.sentinel_master if sentinel else None,
            password=pulumi.Output.secret(self.auth_password.result),
            tls=placement.ca is not None,
        )
        self.register_outputs(
            {
                "topology": self.topology.value,
                "hosts": list(self.connection.hosts),
                "primary_host": self.connection.primary_host,
                "port": self.connection.port,
                "sentinel_port": self.connection.sentinel_port,
                "password": self.connection.password,
            }
        )
