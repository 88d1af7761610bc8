"""Settings for config key platform-infra:data (MariaDB, Redis, RabbitMQ sizing, TLS)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from components.settings.base import validate_plan
from components.settings.common import StackRequired, StrictModel

# Identifiers end up inside SQL statements and broker definitions: keep them to a safe alphabet
# so they never need quoting or escaping.
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_IDENTIFIER_RULE = "a lowercase identifier: a letter, then letters, digits or '_', at most 32 characters"


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(_IDENTIFIER_RULE)
    return value


def _check_plan(value: str) -> str:
    return validate_plan(value)


class ServiceSettings(StrictModel):
    """What every data service's section has: how many VMs of which Linode plan."""

    nodes: Annotated[int, StackRequired()] = Field(default=1, ge=1, le=9)
    plan: Annotated[str, StackRequired()] = "g6-standard-1"

    _plan = field_validator("plan")(classmethod(lambda cls, v: _check_plan(v)))


class MariaDbSettings(ServiceSettings):
    """1 node = standalone, 2 = primary + read-only replica (GTID), odd >= 3 = Galera."""

    nodes: Annotated[int, StackRequired()] = 1
    plan: Annotated[str, StackRequired()] = "g6-standard-2"
    database: str = "app"
    user: str = "app"

    @field_validator("nodes")
    @classmethod
    def _topology(cls, nodes: int) -> int:
        if nodes == 1 or nodes == 2 or (nodes >= 3 and nodes % 2 == 1):
            return nodes
        raise ValueError(
            "1 (standalone), 2 (primary + read-only replica) or an odd number >= 3 (Galera cluster; "
            "an even Galera cluster cannot keep a majority when split in half)"
        )

    _names = field_validator("database", "user")(classmethod(lambda cls, v: _check_identifier(v)))


class RedisSettings(ServiceSettings):
    """1 node = standalone, 2 = primary + replica, 3+ = primary, replicas and Sentinel."""

    nodes: Annotated[int, StackRequired()] = Field(default=1, ge=1, le=9)
    plan: Annotated[str, StackRequired()] = "g6-standard-1"
    sentinel_master: str = "platform"
    maxmemory_policy: str = "volatile-lru"

    _master = field_validator("sentinel_master")(classmethod(lambda cls, v: _check_identifier(v)))

    @field_validator("maxmemory_policy")
    @classmethod
    def _policy(cls, value: str) -> str:
        allowed = (
            "noeviction",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        )
        if value not in allowed:
            raise ValueError(f"one of {', '.join(allowed)}")
        return value


class RabbitMqSettings(ServiceSettings):
    """N nodes clustered; quorum queues are the default queue type of the application vhost."""

    nodes: Annotated[int, StackRequired()] = Field(default=1, ge=1, le=9)
    plan: Annotated[str, StackRequired()] = "g6-standard-2"
    vhost: str = "app"
    user: str = "app"

    _names = field_validator("vhost", "user")(classmethod(lambda cls, v: _check_identifier(v)))

    @field_validator("user")
    @classmethod
    def _not_admin(cls, value: str) -> str:
        if value in ("admin", "guest"):
            raise ValueError("an application user other than 'admin' (the operator) and 'guest'")
        return value


class DataSettings(StrictModel):
    """The data tier: three clusters on VMs, TLS between clients and servers when `tls` is on."""

    mariadb: Annotated[MariaDbSettings, StackRequired()] = MariaDbSettings()
    redis: Annotated[RedisSettings, StackRequired()] = RedisSettings()
    rabbitmq: Annotated[RabbitMqSettings, StackRequired()] = RabbitMqSettings()
    # Encryption in transit with certificates from the stack's internal CA (staging, prod).
    tls: Annotated[bool, StackRequired()] = False
    # Linode disk encryption on the data VMs; turn off only for a region that lacks it.
    disk_encryption: bool = True
    # Linode backups of the data VMs (in addition to the operations tier's logical backups).
    backups_enabled: bool = False

    @property
    def services(self) -> dict[str, ServiceSettings]:
        """Each data service's section by its key, in declaration order (the registry's order)."""
        return {name: value for name, value in self if isinstance(value, ServiceSettings)}

    @property
    def node_counts(self) -> dict[str, int]:
        """How many VMs each data service has, by role."""
        return {role: service.nodes for role, service in self.services.items()}

    @property
    def vm_count(self) -> int:
        return sum(self.node_counts.values())
