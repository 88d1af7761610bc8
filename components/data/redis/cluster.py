"""RedisCluster: Redis on a VmGroup; 1 standalone, 2 primary + replica, 3+ with Sentinel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_random as random

from components.data.cloud_init import TlsMaterial
from components.data.connections import ServiceConnection
from components.data.placement import DataCluster, memory_share, password
from components.data.redis.config import (
    REDIS_PORT,
    REDIS_TLS_FILES,
    SENTINEL_PORT,
    RedisNodeArgs,
    RedisTopology,
    redis_cloud_config,
    topology_for,
)
from components.foundation.firewall import InboundRule, RuleInput
from components.settings.data import RedisSettings


@dataclass(frozen=True)
class RedisConnection(ServiceConnection):
    primary_host: str
    port: int  # 6379
    sentinel_port: int | None  # 26379 when Sentinel runs (3+ nodes), else None
    sentinel_master: str | None  # master name for Sentinel clients

    def client_ports(self) -> tuple[int, ...]:
        return (self.port,) if self.sentinel_port is None else (self.port, self.sentinel_port)

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        scheme = "rediss" if self.tls else "redis"
        settings = {
            "REDIS_URL": f"{scheme}://:{quote(password, safe='')}@{name_of(self.primary_host)}:{self.port}/0"
        }
        if self.sentinel_port is not None and self.sentinel_master is not None:
            # After a failover the primary moves: Sentinel-aware clients must ask the Sentinels.
            settings["REDIS_SENTINELS"] = ",".join(f"{name_of(host)}:{self.sentinel_port}" for host in self.hosts)
            settings["REDIS_SENTINEL_MASTER"] = self.sentinel_master
        return settings



class RedisCluster(DataCluster):
    type_token = "platform:data:RedisCluster"
    title = "Redis"
    settings: RedisSettings
    connection: RedisConnection
    topology: RedisTopology

    def prepare(self, name: str) -> None:
        self.topology = topology_for(self.settings.nodes)

    @property
    def sentinel(self) -> bool:
        return self.topology is RedisTopology.SENTINEL

    def credentials(self, name: str) -> dict[str, random.RandomPassword]:
        self.auth_password = password(f"{name}-auth-password", self)
        return {"auth": self.auth_password}

    def node_document(self, index: int, secrets: dict[str, str], tls: TlsMaterial | None) -> dict[str, Any]:
        settings, placement = self.settings, self.placement
        node = RedisNodeArgs(
            nodes=settings.nodes,
            index=index,
            addresses=placement.addresses,
            password=secrets["auth"],
            tls=REDIS_TLS_FILES if tls else None,
            sentinel_master=settings.sentinel_master,
            maxmemory=memory_share(settings.plan, 0.6, unit="mb"),
            maxmemory_policy=settings.maxmemory_policy,
        )
        return redis_cloud_config(node, tls=tls, private_network=placement.private_network)

    def firewall_rules(self) -> list[RuleInput]:
        rules = [self.placement.app_rule("redis-from-app", str(REDIS_PORT))]
        if self.settings.nodes > 1:
            ports = f"{REDIS_PORT},{SENTINEL_PORT}" if self.sentinel else str(REDIS_PORT)
            rules.append(InboundRule("redis-from-peers", "TCP", ports, self.placement.peer_sources()))
        if self.sentinel:
            rules.append(self.placement.app_rule("sentinel-from-app", str(SENTINEL_PORT)))
        return rules

    def make_connection(self) -> RedisConnection:
        addresses = self.placement.addresses
        return RedisConnection(
            hosts=tuple(addresses),
            primary_host=addresses[0],
            port=REDIS_PORT,
            sentinel_port=SENTINEL_PORT if self.sentinel else None,
            sentinel_master=self.settings.sentinel_master if self.sentinel else None,
            password=pulumi.Output.secret(self.auth_password.result),
            tls=self.tls,
        )

    def outputs(self) -> dict[str, Any]:
        connection = self.connection
        return {
            "topology": self.topology.value,
            "hosts": list(connection.hosts),
            "primary_host": connection.primary_host,
            "port": connection.port,
            "sentinel_port": connection.sentinel_port,
            "password": connection.password,
        }
