"""Prometheus alerting rules for the platform, rendered from stack config (pure).

The rule groups are plain dicts so the same data feeds the PrometheusRule custom resource
(monitoring.py), `promtool check rules` and `promtool test rules` (tests/validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from components.data.plugin import BACKUP_METRIC_PREFIX, alert
from components.data.services import SERVICES
from components.kubernetes.ingress import HttpMetrics
from components.settings.operations import AlertThresholds, BackupSettings


@dataclass(frozen=True)
class AlertTopology:
    """How many nodes each data service should have (from the data tier's settings), by role."""

    node_counts: Mapping[str, int]




def _availability_rules(t: AlertThresholds) -> list[dict[str, Any]]:
    return [
        alert(
            "ServiceDown",
            "up == 0",
            t.service_down_for,
            "critical",
            "{{ $labels.job }} target {{ $labels.instance }} is down",
            f"Prometheus could not scrape {{{{ $labels.instance }}}} for {t.service_down_for}.",
        ),
        alert(
            "HostHighCpu",
            "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[2m])))"
            f" > {t.cpu_percent:g}",
            t.cpu_for,
            "warning",
            "CPU above {t}% on {{{{ $labels.instance }}}}".format(t=f"{t.cpu_percent:g}"),
            "CPU busy {{ $value | humanize }}% for " + t.cpu_for + ".",
        ),
        alert(
            "HostHighMemory",
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 90",
            "5m",
            "warning",
            "Memory above 90% on {{ $labels.instance }}",
            "Memory in use {{ $value | humanize }}%.",
        ),
        alert(
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
        alert(
            "HighErrorRate",
            f"{errors} / {total} > {t.error_ratio:g}",
            t.error_for,
            "critical",
            f"More than {t.error_ratio:.1%} of requests to {{{{ $labels.{by} }}}} fail",
            "5xx ratio {{ $value | humanizePercentage }} over 5 minutes.",
        ),
        alert(
            "HighLatencyP95",
            f"{p95} > {t.p95_latency_seconds:g}",
            t.latency_for,
            "warning",
            f"p95 latency of {{{{ $labels.{by} }}}} above {t.p95_latency_seconds * 1000:g} ms",
            "p95 request duration {{ $value | humanizeDuration }}.",
        ),
    ]


def _backup_rules(backups: BackupSettings, node_counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every backup job reports its result; each service's daily backup must be fresh; then the
    services' own backup rules (e.g. MariaDB's point-in-time recovery)."""
    success = f"{BACKUP_METRIC_PREFIX}_last_success_timestamp_seconds"
    stale_seconds = backups.stale_after_hours * 3600
    services = [entry for role, entry in SERVICES.items() if entry.backups and role in node_counts]
    daily = "|".join(entry.backups.daily_kind for entry in services if entry.backups)
    rules = [
        alert(
            "BackupFailed",
            f"{BACKUP_METRIC_PREFIX}_last_run_success == 0",
            None,
            "critical",
            "{{ $labels.kind }} backup failed on {{ $labels.instance }}",
            "The last {{ $labels.kind }} run exited with an error; see its journal.",
        ),
        alert(
            "BackupStale",
            f'time() - {success}{{kind=~"{daily}"}} > {stale_seconds}',
            None,
            "critical",
            "No successful {{ $labels.kind }} backup for " + f"{backups.stale_after_hours}h",
            "The newest successful backup is {{ $value | humanizeDuration }} old.",
        ),
    ]
    for entry in services:
        if entry.backups:
            rules += entry.backups.alert_rules(backups)
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
    ]
    groups += [
        {"name": entry.alert_group, "rules": entry.alert_rules(thresholds, topology.node_counts[role])}
        for role, entry in SERVICES.items()
        if role in topology.node_counts
    ]
    if backups is not None and backups.enabled:
        groups.append(
            {
                "name": "platform-backups",
                "rules": _backup_rules(backups, topology.node_counts),
            }
        )
    return {"groups": groups}


def alert_names(rules: Mapping[str, Any]) -> list[str]:
    return [rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def render_rules_yaml(rules: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(rules), sort_keys=False, width=1000)


