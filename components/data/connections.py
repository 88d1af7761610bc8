"""Connection settings the data tier hands to the application tier (pure dataclasses).

Only the password and CA fields carry `pulumi.Output`s (secrets); everything else is plain data
known at plan time, so the Kubernetes tier can build NetworkPolicies without waiting on outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    # The name each node answers to (its hostname, also a SAN of its TLS certificate) and the
    # address pods dial for it: the VPC address when the cluster sits in the VPC, the node's
    # Linode private-network address otherwise (an Output: Linode assigns it at creation).
    # Pods resolve the names through hostAliases, so URLs and certificate checks use the same
    # stable names on both paths.
    node_names: Mapping[str, str] = field(default_factory=dict)  # VPC address -> name
    dial_addresses: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # name -> address

    def name_of(self, host: str) -> str:
        """The name clients use for a node given by its VPC address (the address if unnamed)."""
        return self.node_names.get(host, host)

    def host_aliases(self) -> list[dict[str, Any]]:
        """Pod `hostAliases` entries: each node name pinned to the address pods reach it at."""
        return [{"ip": address, "hostnames": [name]} for name, address in self.dial_addresses.items()]

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
