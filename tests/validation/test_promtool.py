"""The generated alert rules, checked and unit-tested by Prometheus's own promtool.

Each alert gets two promtool test groups: a series that must make it fire (with the exact
labels it must carry) and a close-but-healthy series on which it must stay silent.
The copy given to `promtool test rules` has its annotations removed (promtool compares them
verbatim); `promtool check rules` runs on the real file, annotations and templates included.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.operations.alert_rules import AlertTopology, alert_names, alert_rule_groups, render_rules_yaml
from components.settings.operations import AlertThresholds, BackupSettings

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

BACKUPS = BackupSettings(
    bucket_region="es-mad",
    retention_days=30,
    incremental_schedule="*-*-* 00/6:15:00",
    binlog_ship_interval_seconds=300,
    stale_after_hours=26,
    verify_stale_after_days=8,
)
PROD = AlertTopology({"mariadb": 3, "redis": 3, "rabbitmq": 3})
STAGING = AlertTopology({"mariadb": 2, "redis": 2, "rabbitmq": 2})


@dataclass(frozen=True)
class Case:
    alert: str
    topology: AlertTopology
    interval: str
    eval_time: str
    fire: dict[str, str]  # series -> promtool values notation
    silent: dict[str, str]
    labels: list[dict[str, str]] = field(default_factory=list)  # expected labels of each alert


NODE = 'instance="10.0.1.10:9100",job="node"'
BACKUP_NODE = 'instance="10.0.2.11:9100",job="node"'
MEM_AVAILABLE = f"node_memory_MemAvailable_bytes{{{NODE}}}"
MEM_TOTAL = f"node_memory_MemTotal_bytes{{{NODE}}}"


def backup_success(kind: str) -> str:
    return f'platform_backup_last_success_timestamp_seconds{{{BACKUP_NODE},kind="{kind}"}}'


BACKUP_RUN_FULL = f'platform_backup_last_run_success{{{BACKUP_NODE},kind="full"}}'
FS = 'instance="10.0.1.10:9100",job="node",mountpoint="/",fstype="ext4",device="/dev/sda"'
CASES = [
    Case(
        "ServiceDown",
        PROD,
        "15s",
        "1m",
        fire={f"up{{{NODE}}}": "0x10"},
        # down since 45 s: at 1m it has been down 15 s, short of the 30 s the alert waits
        silent={f"up{{{NODE}}}": "1 1 1 0x7"},
        labels=[{"instance": "10.0.1.10:9100", "job": "node", "severity": "critical"}],
    ),
    Case(
        "HostHighCpu",
        PROD,
        "15s",
        "10m",
        # idle grows 2.25 s per 15 s on one CPU: 85 % busy
        fire={f'node_cpu_seconds_total{{{NODE},cpu="0",mode="idle"}}': "0+2.25x60"},
        # 75 % busy: under the 80 % threshold
        silent={f'node_cpu_seconds_total{{{NODE},cpu="0",mode="idle"}}': "0+3.75x60"},
        labels=[{"instance": "10.0.1.10:9100", "severity": "warning"}],
    ),
    Case(
        "HostHighMemory",
        PROD,
        "1m",
        "10m",
        fire={MEM_AVAILABLE: "5x10", MEM_TOTAL: "100x10"},
        silent={MEM_AVAILABLE: "50x10", MEM_TOTAL: "100x10"},
        labels=[{"instance": "10.0.1.10:9100", "job": "node", "severity": "warning"}],
    ),
    Case(
        "HostDiskFilling",
        PROD,
        "1m",
        "60m",
        # 20 GB free of 100 GB, losing 6 GB an hour: empty in about 3 hours
        fire={
            f"node_filesystem_avail_bytes{{{FS}}}": "20000000000-100000000x70",
            f"node_filesystem_size_bytes{{{FS}}}": "100000000000x70",
        },
        silent={
            f"node_filesystem_avail_bytes{{{FS}}}": "20000000000x70",
            f"node_filesystem_size_bytes{{{FS}}}": "100000000000x70",
        },
        labels=[
            {
                "instance": "10.0.1.10:9100",
                "job": "node",
                "mountpoint": "/",
                "fstype": "ext4",
                "device": "/dev/sda",
                "severity": "warning",
            }
        ],
    ),
    Case(
        "HighErrorRate",
        PROD,
        "15s",
        "10m",
        # The objective is < 0.1% errors: 1% fires (a 5% threshold would stay silent),
        # 0.05% stays silent.
        fire={
            'http_requests_total{service="web",code="500"}': "0+1x60",
            'http_requests_total{service="web",code="200"}': "0+99x60",
        },
        silent={
            'http_requests_total{service="web",code="500"}': "0+1x60",
            'http_requests_total{service="web",code="200"}': "0+1999x60",
        },
        labels=[{"service": "web", "severity": "critical"}],
    ),
    Case(
        "HighLatencyP95",
        PROD,
        "15s",
        "10m",
        # every request takes between 250 and 500 ms
        fire={
            'http_request_duration_seconds_bucket{service="web",le="0.1"}': "0x60",
            'http_request_duration_seconds_bucket{service="web",le="0.25"}': "0x60",
            'http_request_duration_seconds_bucket{service="web",le="0.5"}': "0+100x60",
            'http_request_duration_seconds_bucket{service="web",le="+Inf"}': "0+100x60",
        },
        # 90 % under 100 ms, the rest under 250 ms: p95 about 175 ms
        silent={
            'http_request_duration_seconds_bucket{service="web",le="0.1"}': "0+90x60",
            'http_request_duration_seconds_bucket{service="web",le="0.25"}': "0+100x60",
            'http_request_duration_seconds_bucket{service="web",le="0.5"}': "0+100x60",
            'http_request_duration_seconds_bucket{service="web",le="+Inf"}': "0+100x60",
        },
        labels=[{"service": "web", "severity": "warning"}],
    ),
    Case(
        "MariaDbDown",
        PROD,
        "15s",
        "2m",
        fire={'mysql_up{instance="10.0.2.10:9104",job="mysqld"}': "0x10"},
        silent={'mysql_up{instance="10.0.2.10:9104",job="mysqld"}': "1x10"},
        labels=[{"instance": "10.0.2.10:9104", "job": "mysqld", "severity": "critical"}],
    ),
    Case(
        "GaleraClusterTooSmall",
        PROD,
        "15s",
        "3m",
        fire={'mysql_global_status_wsrep_cluster_size{instance="10.0.2.10:9104",job="mysqld"}': "2x15"},
        silent={'mysql_global_status_wsrep_cluster_size{instance="10.0.2.10:9104",job="mysqld"}': "3x15"},
        labels=[{"instance": "10.0.2.10:9104", "job": "mysqld", "severity": "critical"}],
    ),
    Case(
        "GaleraNodeNotReady",
        PROD,
        "15s",
        "3m",
        fire={'mysql_global_status_wsrep_ready{instance="10.0.2.11:9104",job="mysqld"}': "0x15"},
        silent={'mysql_global_status_wsrep_ready{instance="10.0.2.11:9104",job="mysqld"}': "1x15"},
        labels=[{"instance": "10.0.2.11:9104", "job": "mysqld", "severity": "critical"}],
    ),
    Case(
        "MariaDbReplicationBroken",
        STAGING,
        "15s",
        "3m",
        fire={
            'mysql_slave_status_slave_io_running{instance="10.0.2.11:9104",job="mysqld"}': "0x15",
            'mysql_slave_status_slave_sql_running{instance="10.0.2.11:9104",job="mysqld"}': "1x15",
        },
        silent={
            'mysql_slave_status_slave_io_running{instance="10.0.2.11:9104",job="mysqld"}': "1x15",
            'mysql_slave_status_slave_sql_running{instance="10.0.2.11:9104",job="mysqld"}': "1x15",
        },
        labels=[{"instance": "10.0.2.11:9104", "job": "mysqld", "severity": "critical"}],
    ),
    Case(
        "MariaDbReplicationLag",
        STAGING,
        "1m",
        "10m",
        fire={'mysql_slave_status_seconds_behind_master{instance="10.0.2.11:9104",job="mysqld"}': "900x10"},
        silent={'mysql_slave_status_seconds_behind_master{instance="10.0.2.11:9104",job="mysqld"}': "2x10"},
        labels=[{"instance": "10.0.2.11:9104", "job": "mysqld", "severity": "warning"}],
    ),
    Case(
        "RedisNoPrimary",
        PROD,
        "15s",
        "3m",
        fire={
            f'redis_instance_info{{instance="10.0.3.{n}:9121",job="redis",role="slave"}}': "1x15" for n in (10, 11, 12)
        },
        silent={
            'redis_instance_info{instance="10.0.3.10:9121",job="redis",role="master"}': "1x15",
            'redis_instance_info{instance="10.0.3.11:9121",job="redis",role="slave"}': "1x15",
            'redis_instance_info{instance="10.0.3.12:9121",job="redis",role="slave"}': "1x15",
        },
        labels=[{"severity": "critical"}],
    ),
    Case(
        "RedisReplicationBroken",
        PROD,
        "15s",
        "5m",
        # the primary sees one replica where the prod topology has two
        fire={
            'redis_instance_info{instance="10.0.3.10:9121",job="redis",role="master"}': "1x30",
            'redis_connected_slaves{instance="10.0.3.10:9121",job="redis"}': "1x30",
        },
        silent={
            'redis_instance_info{instance="10.0.3.10:9121",job="redis",role="master"}': "1x30",
            'redis_connected_slaves{instance="10.0.3.10:9121",job="redis"}': "2x30",
            'redis_master_link_up{instance="10.0.3.11:9121",job="redis"}': "1x30",
        },
        labels=[{"severity": "critical"}],
    ),
    Case(
        "RabbitMqNodeDown",
        PROD,
        "15s",
        "2m",
        fire={
            'up{instance="10.0.4.10:15692",job="rabbitmq"}': "1x10",
            'up{instance="10.0.4.11:15692",job="rabbitmq"}': "1x10",
            'up{instance="10.0.4.12:15692",job="rabbitmq"}': "0x10",
        },
        silent={f'up{{instance="10.0.4.{n}:15692",job="rabbitmq"}}': "1x10" for n in (10, 11, 12)},
        labels=[{"severity": "critical"}],
    ),
    Case(
        "RabbitMqQueueBacklog",
        PROD,
        "1m",
        "20m",
        fire={'rabbitmq_queue_messages_ready{instance="10.0.4.10:15692",job="rabbitmq"}': "5000x20"},
        silent={'rabbitmq_queue_messages_ready{instance="10.0.4.10:15692",job="rabbitmq"}': "10x20"},
        labels=[{"instance": "10.0.4.10:15692", "severity": "warning"}],
    ),
    Case(
        "BackupFailed",
        PROD,
        "1m",
        "5m",
        fire={BACKUP_RUN_FULL: "1 1 0x5"},
        silent={BACKUP_RUN_FULL: "1x7"},
        labels=[{"instance": "10.0.2.11:9100", "job": "node", "kind": "full", "severity": "critical"}],
    ),
    Case(
        "BackupStale",
        PROD,
        "1h",
        "30h",
        # last success at t=0, never again: 30 h old
        fire={backup_success("full"): "0x31"},
        # a new success every hour
        silent={backup_success("full"): "0+3600x31"},
        labels=[{"instance": "10.0.2.11:9100", "job": "node", "kind": "full", "severity": "critical"}],
    ),
    Case(
        "BackupMissing",
        PROD,
        "1h",
        "28h",
        fire={backup_success("binlog"): "0+3600x30"},
        silent={backup_success("full"): "0+3600x30"},
        labels=[{"kind": "full", "severity": "critical"}],
    ),
    Case(
        "BinlogShippingStale",
        PROD,
        "1m",
        "20m",
        fire={backup_success("binlog"): "0x21"},
        silent={backup_success("binlog"): "0+60x21"},
        labels=[{"instance": "10.0.2.11:9100", "job": "node", "kind": "binlog", "severity": "critical"}],
    ),
    Case(
        "BackupVerificationStale",
        PROD,
        "1d",
        "9d",
        fire={backup_success("verify"): "0x10"},
        silent={backup_success("verify"): "0+86400x10"},
        labels=[{"instance": "10.0.2.11:9100", "job": "node", "kind": "verify", "severity": "warning"}],
    ),
    Case(
        "IncrementalBackupStale",
        PROD,
        "1h",
        "30h",
        fire={backup_success("incremental"): "0x31"},
        silent={backup_success("incremental"): "0+3600x31"},
        labels=[{"instance": "10.0.2.11:9100", "job": "node", "kind": "incremental", "severity": "warning"}],
    ),
]


def _rules(topology: AlertTopology) -> dict[str, Any]:
    return alert_rule_groups(AlertThresholds(), topology, BACKUPS)


def _without_annotations(rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "groups": [
            {**group, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in group["rules"]]}
            for group in rules["groups"]
        ]
    }


def _series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": series, "values": notation} for series, notation in values.items()]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_is_installed() -> None:
    assert Path(PROMTOOL).exists(), "Debian's prometheus package ships promtool; CI must install it"


@pytest.mark.parametrize(
    "topology",
    [PROD, STAGING, AlertTopology({"mariadb": 1, "redis": 1, "rabbitmq": 1})],
    ids=["prod", "staging", "dev"],
)
def test_generated_rules_pass_promtool_check(topology: AlertTopology, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render_rules_yaml(_rules(topology)))
    result = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names(_rules(topology)))} rules found" in result.stdout


def test_every_generated_alert_has_a_promtool_case() -> None:
    generated = set(alert_names(_rules(PROD))) | set(alert_names(_rules(STAGING)))
    assert generated == {case.alert for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.alert for case in CASES])
def test_alert_fires_on_bad_series_and_stays_silent_on_healthy_one(case: Case, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render_rules_yaml(_without_annotations(_rules(case.topology))))
    expected = [{"exp_labels": labels} for labels in case.labels]
    assert expected, "a firing case must say which labels it expects"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": case.interval,
        "tests": [
            {
                "name": f"{case.alert} fires",
                "interval": case.interval,
                "input_series": _series(case.fire),
                "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": expected}],
            },
            {
                "name": f"{case.alert} stays silent",
                "interval": case.interval,
                "input_series": _series(case.silent),
                "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": []}],
            },
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
