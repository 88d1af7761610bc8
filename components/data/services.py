"""The registry of data services: one entry per service, iterated by every other tier.

Adding a service: a folder `data/<service>/` (cluster.py + config.py), its settings model in
components/settings/data.py (a `ServiceSettings` field of `DataSettings` named like `role`),
and one entry here. Never reorder or reuse `block`: it fixes the service's addresses.
"""

from __future__ import annotations

from components.data.mariadb import config as mariadb
from components.data.mariadb.cluster import MariaDbCluster
from components.data.plugin import Backups, DataService, Exporter
from components.data.rabbitmq import config as rabbitmq
from components.data.rabbitmq.cluster import RabbitMqCluster
from components.data.redis import config as redis
from components.data.redis.cluster import RedisCluster
from components.foundation.address_plan import AddressPlan, RoleBlock, data_block, plan_addresses
from components.settings.base import NetworkSettings

SERVICES: dict[str, DataService] = {
    "mariadb": DataService(
        role="mariadb",
        title="MariaDB",
        block=0,
        unit="mariadb.service",
        tls_files=mariadb.MARIADB_TLS_FILES,
        cluster=MariaDbCluster,
        exporter=Exporter(mariadb.EXPORTER_PORT, mariadb.SCRAPE_JOB, mariadb.exporter_cloud_config),
        alert_rules=mariadb.alert_rules,
        backups=Backups(
            packages=("mariadb-backup", "mariadb-client"),
            jobs=mariadb.backup_jobs,
            daily_kind="full",
            alert_rules=mariadb.backup_alert_rules,
        ),
    ),
    "redis": DataService(
        role="redis",
        title="Redis",
        block=1,
        unit="redis-server.service",
        tls_files=redis.REDIS_TLS_FILES,
        cluster=RedisCluster,
        exporter=Exporter(redis.EXPORTER_PORT, redis.SCRAPE_JOB, redis.exporter_cloud_config),
        alert_rules=redis.alert_rules,
        backups=Backups(packages=("redis-tools",), jobs=redis.backup_jobs, daily_kind="redis"),
    ),
    "rabbitmq": DataService(
        role="rabbitmq",
        title="RabbitMQ",
        block=2,
        unit="rabbitmq-server.service",
        tls_files=rabbitmq.RABBITMQ_TLS_FILES,
        cluster=RabbitMqCluster,
        exporter=Exporter(rabbitmq.PROMETHEUS_PORT, rabbitmq.SCRAPE_JOB, rabbitmq.exporter_cloud_config),
        alert_rules=rabbitmq.alert_rules,
        backups=Backups(packages=(), jobs=rabbitmq.backup_jobs, daily_kind="rabbitmq"),
    ),
}


def service(role: str) -> DataService:
    if role not in SERVICES:
        raise ValueError(f"no data service {role!r}; registered: {', '.join(SERVICES)}")
    return SERVICES[role]


def address_blocks() -> dict[str, RoleBlock]:
    """Each registered service's block in the data subnet."""
    return {role: data_block(entry.block) for role, entry in SERVICES.items()}


def stack_address_plan(network: NetworkSettings) -> AddressPlan:
    """The whole stack's address plan: the bastion and every registered data service."""
    return plan_addresses(network, address_blocks())
