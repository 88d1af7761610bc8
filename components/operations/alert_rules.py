"""Prometheus alerting rules for the platform, rendered from stack config (pure).

The rule groups are plain dicts so the same data feeds the PrometheusRule custom resource
(monitoring.py), `promtool check rules` and `promtool test rules` (tests/validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from components.kubernetes.ingress import HttpMetrics
from components.operations.exporters import SCRAPE_JOBS
from components.settings.operations import AlertThresholds, BackupSettings

BACKUP_METRIC_PREFIX = "platform_backup"
# Backup kinds whose success timestamps the scripts publish through the textfile collector.
BACKUP_KINDS = ("full", "incremental", "binlog", "verify", "redis", "rabbitmq")


@dataclass(frozen=True)
class AlertTopology:
    """How many nodes each data service should have (from the data tier's settings)."""

    mariadb_nodes: int
    redis_nodes: int
    rabbitmq_nodes: int


def _alert(
    name: str, expr: str, for_: str | None, severity: str, summary: str, description: str
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def _availability_rules(t: AlertThresholds) -> list[dict[str, Any]]:
    return [
        _alert(
            "ServiceDown",
            "up == 0",
            t.service_down_for,
            "critical",
            "{{ $labels.job }} target {{ $labels.instance }} is down",
            f"Prometheus could not scrape {{{{ $labels.instance }}}} for {t.service_down_for}.",
        ),
        _alert(
            "HostHighCpu",
            "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[2m])))"
            f" > {t.cpu_percent:g}",
            t.cpu_for,
            "warning",
            "CPU above {t}% on {{{{ $labels.instance }}}}".format(t=f"{t.cpu_percent:g}"),
            "CPU busy {{ $value | humanize }}% for " + t.cpu_for + ".",
        ),
        _alert(
            "HostHighMemory",
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 90",
            "5m",
            "warning",
            "Memory above 90% on {{ $labels.instance }}",
            "Memory in use {{ $value | humanize }}%.",
        ),
        _alert(
            "HostDiskFilling",
            'predict_linear(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}[1h], '
            f"{t.disk_fill_hours} * 3600) < 0"
            ' and node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}'
            ' / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"} < 0.25',
            "15m",
            "warning",
            "Disk {{ $labels.mountpoint }} on {{ $labels.instance }} fills within "
            f"{t.disk_fill_hours}h",
            "At the last hour's rate the filesystem runs out of space within "
            f"{t.disk_fill_hours} hours.",
        ),
    ]


def _http_rules(t: AlertThresholds, http: HttpMetrics) -> list[dict[str, Any]]:
    by = http.group_label
    errors = f'sum by ({by}) (rate({http.requests_total}{{{http.code_label}=~"5.."}}[5m]))'
    total = f"sum by ({by}) (rate({http.requests_total}[5m]))"
    p95 = f"histogram_quantile(0.95, sum by ({by}, le) (rate({http.duration_bucket}[5m])))"
    return [
        _alert(
            "HighErrorRate",
            f"{errors} / {total} > {t.error_ratio:g}",
            t.error_for,
            "critical",
            f"More than {t.error_ratio:.0%} of requests to {{{{ $labels.{by} }}}} fail",
            "5xx ratio {{ $value | humanizePercentage }} over 5 minutes.",
        ),
        _alert(
            "HighLatencyP95",
            f"{p95} > {t.p95_latency_seconds:g}",
            t.latency_for,
            "warning",
            f"p95 latency of {{{{ $labels.{by} }}}} above {t.p95_latency_seconds * 1000:g} ms",
            "p95 request duration {{ $value | humanizeDuration }}.",
        ),
    ]


def _mariadb_rules(t: AlertThresholds, nodes: int) -> list[dict[str, Any]]:
    rules = [
        _alert(
            "MariaDbDown",
            "mysql_up == 0",
            t.service_down_for,
            "critical",
            "MariaDB on {{ $labels.instance }} does not answer",
            "mysqld_exporter cannot connect to the server.",
        )
    ]
    if nodes >= 3:
        rules.append(
            _alert(
                "GaleraClusterTooSmall",
                f"mysql_global_status_wsrep_cluster_size < {nodes}",
                "1m",
                "critical",
                f"Galera cluster has fewer than {nodes} members",
                "{{ $labels.instance }} sees {{ $value }} members in its cluster.",
            )
        )
        rules.append(
            _alert(
                "GaleraNodeNotReady",
                "mysql_global_status_wsrep_ready == 0",
                "1m",
                "critical",
                "Galera node {{ $labels.instance }} does not accept queries",
                "wsrep_ready is OFF: the node is not part of the primary component.",
            )
        )
    elif nodes == 2:
        rules.append(
            _alert(
                "MariaDbReplicationBroken",
                "mysql_slave_status_slave_io_running == 0 or mysql_slave_status_slave_sql_running == 0",
                "1m",
                "critical",
                "MariaDB replication stopped on {{ $labels.instance }}",
                "The replica's IO or SQL thread is not running.",
            )
        )
        rules.append(
            _alert(
                "MariaDbReplicationLag",
                "mysql_slave_status_seconds_behind_master > 300",
                "5m",
                "warning",
                "MariaDB replica {{ $labels.instance }} lags more than 5 minutes",
                "Seconds behind the primary: {{ $value }}.",
            )
        )
    return rules


def _redis_rules(nodes: int) -> list[dict[str, Any]]:
    rules = [
        _alert(
            "RedisNoPrimary",
            '(count(redis_instance_info{role="master"}) or vector(0)) < 1',
            "1m",
            "critical",
            "No Redis node reports the primary role",
            "Writes fail until Sentinel promotes a replica or an operator intervenes.",
        )
    ]
    if nodes >= 2:
        rules.append(
            _alert(
                "RedisReplicationBroken",
                f'(sum(redis_connected_slaves and on (instance) redis_instance_info{{role="master"}})'
                f" or vector(0)) < {nodes - 1} or redis_master_link_up == 0",
                "2m",
                "critical",
                "Redis replication is broken",
                f"The primary should have {nodes - 1} connected replicas, or a replica lost its link.",
            )
        )
    return rules


def _rabbitmq_rules(t: AlertThresholds, nodes: int) -> list[dict[str, Any]]:
    job = SCRAPE_JOBS["rabbitmq"]
    return [
        _alert(
            "RabbitMqNodeDown",
            f'(count(up{{job="{job}"}} == 1) or vector(0)) < {nodes}',
            t.service_down_for,
            "critical",
            f"Fewer than {nodes} RabbitMQ nodes are up",
            "{{ $value }} RabbitMQ nodes answer their metrics endpoint.",
        ),
        _alert(
            "RabbitMqQueueBacklog",
            f"sum by (instance) (rabbitmq_queue_messages_ready) > {t.queue_backlog_messages}",
            t.queue_backlog_for,
            "warning",
            "RabbitMQ backlog on {{ $labels.instance }}",
            "{{ $value }} messages wait for consumers: workers are down or too slow.",
        ),
    ]


def _backup_rules(backups: BackupSettings, incremental: bool) -> list[dict[str, Any]]:
    success = f"{BACKUP_METRIC_PREFIX}_last_success_timestamp_seconds"
    stale_seconds = backups.stale_after_hours * 3600
    binlog_stale_seconds = 3 * backups.binlog_ship_interval_seconds
    verify_stale_seconds = backups.verify_stale_after_days * 86400
    rules = [
        _alert(
            "BackupFailed",
            f"{BACKUP_METRIC_PREFIX}_last_run_success == 0",
            None,
            "critical",
            "{{ $labels.kind }} backup failed on {{ $labels.instance }}",
            "The last {{ $labels.kind }} run exited with an error; see its journal.",
        ),
        _alert(
            "BackupStale",
            f'time() - {success}{{kind=~"full|redis|rabbitmq"}} > {stale_seconds}',
            None,
            "critical",
            "No successful {{ $labels.kind }} backup for " + f"{backups.stale_after_hours}h",
            "The newest successful backup is {{ $value | humanizeDuration }} old.",
        ),
        _alert(
            "BackupMissing",
            f'absent({success}{{kind="full"}})',
            f"{backups.stale_after_hours}h",
            "critical",
            "No full MariaDB backup has ever reported success",
            "The backup timer is not running or cannot write its metric.",
        ),
        _alert(
            "BinlogShippingStale",
            f'time() - {success}{{kind="binlog"}} > {binlog_stale_seconds}',
            None,
            "critical",
            "Binary logs not shipped for {{ $value | humanizeDuration }}",
            "Point-in-time recovery would lose more than the RPO.",
        ),
        _alert(
            "BackupVerificationStale",
            f'time() - {success}{{kind="verify"}} > {verify_stale_seconds}',
            None,
            "warning",
            "Backups not verified for " + f"{backups.verify_stale_after_days} days",
            "The weekly restore test has not succeeded recently.",
        ),
    ]
    if incremental:
        rules.append(
            _alert(
                "IncrementalBackupStale",
                f'time() - {success}{{kind="incremental"}} > {stale_seconds}',
                None,
                "warning",
                "No incremental MariaDB backup for " + f"{backups.stale_after_hours}h",
                "The incremental timer has not succeeded recently.",
            )
        )
    return rules


def alert_rule_groups(
    thresholds: AlertThresholds,
    topology: AlertTopology,
    backups: BackupSettings | None,
    http: HttpMetrics | None = None,
) -> dict[str, Any]:
    """The `groups:` document of a Prometheus rule file. Backup rules only when backups run."""
    groups: list[dict[str, Any]] = [
        {"name": "platform-availability", "rules": _availability_rules(thresholds)},
        {"name": "platform-http", "rules": _http_rules(thresholds, http or HttpMetrics())},
        {"name": "platform-mariadb", "rules": _mariadb_rules(thresholds, topology.mariadb_nodes)},
        {"name": "platform-redis", "rules": _redis_rules(topology.redis_nodes)},
        {"name": "platform-rabbitmq", "rules": _rabbitmq_rules(thresholds, topology.rabbitmq_nodes)},
    ]
    if backups is not None and backups.enabled:
        groups.append(
            {
                "name": "platform-backups",
                "rules": _backup_rules(backups, backups.incremental_schedule is not None),
            }
        )
    return {"groups": groups}


def alert_names(rules: Mapping[str, Any]) -> list[str]:
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def render_rules_yaml(rules: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(rules), sort_keys=False, width=1000)


