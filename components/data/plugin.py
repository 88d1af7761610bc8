"""The shape of a data service plug-in: what every other tier needs to know about one service.

A service (MariaDB, Redis, RabbitMQ, ...) is a folder `data/<service>/` with `cluster.py` (its
ComponentResource, built on `placement.DataCluster`) and `config.py` (pure renderers), plus one
`DataService` entry in `data/services.py`. The address plan, firewalls, exporters, scrape jobs,
alert rules, backup timers, connection settings, stack exports and the policy pack iterate that
registry, so they never name a service.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.data.connections import TlsFiles
from components.settings.operations import AlertThresholds, BackupSettings

if TYPE_CHECKING:
    from components.data.placement import DataCluster


# The backup script publishes `<prefix>_last_run_success` and `<prefix>_last_success_timestamp_seconds`
# (label `kind`) through the node exporter's textfile collector; the alert rules read them.
BACKUP_METRIC_PREFIX = "platform_backup"


@dataclass(frozen=True)
class Exporter:
    """The service's Prometheus exporter on each of its VMs (the node exporter comes on top)."""

    port: int
    job: str  # Prometheus job name; scrape configs and alert rules share it
    # listen address -> cloud-config fragment that installs and starts the exporter
    cloud_config: Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class BackupJob:
    """One `platform-backup <name>` run as a systemd service + timer on the backup node."""

    name: str  # platform-backup subcommand
    lock: str  # jobs sharing a lock never overlap
    on_calendar: str | None = None
    every_seconds: int | None = None
    timeout: str = "6h"


@dataclass(frozen=True)
class Backups:
    """How a service is backed up to the stack's bucket by components/operations."""

    packages: tuple[str, ...]  # Debian packages the jobs need beyond the service's own
    jobs: Callable[[BackupSettings], list[BackupJob]]
    daily_kind: str  # the `kind` label of the backup that must succeed every day
    # extra alert rules about this service's backups (e.g. point-in-time recovery)
    alert_rules: Callable[[BackupSettings], list[dict[str, Any]]] = lambda _settings: []


@dataclass(frozen=True)
class DataService:
    """One registry entry: everything the other tiers iterate over."""

    role: str  # settings key under `data:`, address-plan role, Linode label part, tag
    title: str
    block: int  # its address block in the data subnet (0, 1, 2, ...): never reuse or reorder
    unit: str  # the systemd unit that serves clients (backup jobs start after it)
    tls_files: TlsFiles  # where its nodes keep the internal CA, their certificate and key
    cluster: type[DataCluster]
    exporter: Exporter
    alert_rules: Callable[[AlertThresholds, int], list[dict[str, Any]]]  # thresholds, node count
    backups: Backups | None = None

    @property
    def alert_group(self) -> str:
        return f"platform-{self.role}"


def alert(name: str, expr: str, for_: str | None, severity: str, summary: str, description: str) -> dict[str, Any]:
    """One Prometheus alerting rule as plain data (PrometheusRule, promtool and tests share it)."""
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def exporter_defaults_file(path: str, args: Sequence[str], extra: Sequence[str] = ()) -> dict[str, Any]:
    """A Debian /etc/default file that hands an exporter its command-line arguments."""
    content = "# Managed by platform-infra (cloud-init).\n"
    content += "".join(f"{line}\n" for line in extra)
    content += f"ARGS={shlex.quote(' '.join(args))}\n"
    return {"path": path, "owner": "root:root", "permissions": "0644", "content": content}
