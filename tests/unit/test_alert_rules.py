"""Alert rules follow the stack's topology and thresholds (pure)."""

from __future__ import annotations

from typing import Any

import yaml

from components.kubernetes.ingress import HttpMetrics
from components.operations.alert_rules import (
    AlertTopology,
    alert_names,
    alert_rule_groups,
    render_rules_yaml,
)
from components.settings.operations import AlertThresholds, BackupSettings

BACKUPS = BackupSettings(bucket_region="es-mad", retention_days=30, incremental_schedule="*-*-* 00/6:15:00")


def _rule(rules: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == name)


def test_galera_size_alert_uses_the_configured_node_count() -> None:
    rules = alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 5, "redis": 3, "rabbitmq": 3}), BACKUPS)
    assert _rule(rules, "GaleraClusterTooSmall")["expr"] == "mysql_global_status_wsrep_cluster_size < 5"


def test_single_node_dev_has_no_replication_or_galera_alerts() -> None:
    names = alert_names(
        alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 1, "redis": 1, "rabbitmq": 1}), None)
    )
    assert "ServiceDown" in names and "RedisNoPrimary" in names
    assert not {"GaleraClusterTooSmall", "MariaDbReplicationBroken", "RedisReplicationBroken"} & set(names)


def test_primary_replica_staging_watches_replication_instead_of_galera() -> None:
    names = alert_names(
        alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 2, "redis": 2, "rabbitmq": 2}), BACKUPS)
    )
    assert {"MariaDbReplicationBroken", "RedisReplicationBroken"} <= set(names)
    assert "GaleraClusterTooSmall" not in names


def test_thresholds_come_from_config() -> None:
    thresholds = AlertThresholds(cpu_percent=65, cpu_for="10m", p95_latency_seconds=0.35, service_down_for="45s")
    rules = alert_rule_groups(thresholds, AlertTopology({"mariadb": 3, "redis": 3, "rabbitmq": 3}), BACKUPS)
    assert _rule(rules, "HostHighCpu")["expr"].endswith("> 65")
    assert _rule(rules, "HostHighCpu")["for"] == "10m"
    assert _rule(rules, "HighLatencyP95")["expr"].endswith("> 0.35")
    assert _rule(rules, "ServiceDown")["for"] == "45s"
    assert _rule(rules, "ServiceDown")["labels"]["severity"] == "critical"


def test_backup_alerts_only_when_backups_run_and_incrementals_only_when_scheduled() -> None:
    assert "BackupFailed" not in alert_names(
        alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 1, "redis": 1, "rabbitmq": 1}), None)
    )
    daily_only = BackupSettings(bucket_region="es-mad", retention_days=7)
    names = alert_names(
        alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 2, "redis": 2, "rabbitmq": 2}), daily_only)
    )
    assert "BackupStale" in names and "IncrementalBackupStale" not in names


def test_binlog_staleness_is_three_shipping_intervals() -> None:
    backups = BackupSettings(bucket_region="es-mad", retention_days=30, binlog_ship_interval_seconds=120)
    rules = alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 3, "redis": 3, "rabbitmq": 3}), backups)
    assert _rule(rules, "BinlogShippingStale")["expr"].endswith("> 360")


def test_http_metric_names_are_configurable() -> None:
    http = HttpMetrics(requests_total="traefik_service_requests_total", group_label="exported_service")
    rules = alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 1, "redis": 1, "rabbitmq": 1}), None, http)
    assert "traefik_service_requests_total" in _rule(rules, "HighErrorRate")["expr"]
    assert "sum by (exported_service)" in _rule(rules, "HighErrorRate")["expr"]


def test_rendered_yaml_round_trips() -> None:
    rules = alert_rule_groups(AlertThresholds(), AlertTopology({"mariadb": 3, "redis": 3, "rabbitmq": 3}), BACKUPS)
    assert yaml.safe_load(render_rules_yaml(rules)) == rules


def test_error_rate_alert_defaults_to_the_seeds_objective_of_under_a_tenth_of_a_percent() -> None:
    topology = AlertTopology({"mariadb": 3, "redis": 3, "rabbitmq": 3})
    rule = _rule(alert_rule_groups(AlertThresholds(), topology, BACKUPS), "HighErrorRate")
    assert rule["expr"].endswith("> 0.001")
    assert "More than 0.1% of requests" in rule["annotations"]["summary"]
