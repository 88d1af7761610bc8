"""Connection settings the data tier hands to the application tier (pure dataclasses).

Only the password and CA fields carry `pulumi.Output`s (secrets); everything else is plain data
known at plan time, so the Kubernetes tier can build NetworkPolicies without waiting on outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class TlsFiles:
    """Where a TLS-enabled server finds the internal CA, its certificate and its private key."""

    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class MariaDbConnection:
    hosts: tuple[str, ...]  # VPC addresses, node order
    primary_host: str  # writes go here (node 0; for Galera any node, node 0 by convention)
    port: int  # 3306
    database: str
    user: str
    password: pulumi.Output[str]  # secret
    tls: bool


@dataclass(frozen=True)
class RedisConnection:
    hosts: tuple[str, ...]
    primary_host: str
    port: int  # 6379
    sentinel_port: int | None  # 26379 when Sentinel runs (3+ nodes), else None
    sentinel_master: str | None  # master name for Sentinel clients
    password: pulumi.Output[str]
    tls: bool


@dataclass(frozen=True)
class RabbitMqConnection:
    hosts: tuple[str, ...]
    port: int  # 5672, or 5671 with TLS
    vhost: str
    user: str
    password: pulumi.Output[str]
    tls: bool


@dataclass(frozen=True)
class DataConnections:
    mariadb: MariaDbConnection
    redis: RedisConnection
    rabbitmq: RabbitMqConnection
    ca_certificate: pulumi.Output[str] | None  # PEM of the internal CA where TLS is on

    def destinations(self) -> list[tuple[str, int]]:
        """Every (address, port) an app pod must reach: for NetworkPolicy egress."""
        pairs: list[tuple[str, int]] = []
        pairs += [(host, self.mariadb.port) for host in self.mariadb.hosts]
        pairs += [(host, self.redis.port) for host in self.redis.hosts]
        if self.redis.sentinel_port is not None:
            pairs += [(host, self.redis.sentinel_port) for host in self.redis.hosts]
        pairs += [(host, self.rabbitmq.port) for host in self.rabbitmq.hosts]
        # Deduplicate while keeping a stable order for diff-friendly manifests.
        return list(dict.fromkeys(pairs))
