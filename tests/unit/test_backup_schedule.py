"""Backup timers come from the stack's schedules; the shipped script is the tested one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.foundation.cloud_init import merge_cloud_configs, render_cloud_config
from components.operations.schedules import (
    ENV_PATH,
    SCRIPT_PATH,
    SCRIPT_SOURCE,
    BackupTarget,
    backup_cloud_config,
    backup_jobs,
    backup_node_index,
    file_content,
)
from components.settings.operations import BackupSettings
from tools.offline import assert_valid_cloud_config

PROD = BackupSettings(
    bucket_region="eu-central",
    retention_days=30,
    full_schedule="*-*-* 01:15:00",
    incremental_schedule="*-*-* 07/6:15:00",
    binlog_ship_interval_seconds=120,
    verify_schedule="Sun *-*-* 05:00:00",
)
STAGING = BackupSettings(bucket_region="eu-central", retention_days=14)
TARGET = BackupTarget(
    endpoint="https://eu-central-1.linodeobjects.com",
    bucket="platform-infra-prod-backups",
    access_key="AKEXAMPLE",
    secret_key='s3cr"t',
    prefix="prod/mariadb",
)


def _files(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in doc["write_files"]}


def _values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_prod_mariadb_gets_full_incremental_binlog_and_verify_timers_from_config() -> None:
    files = _files(backup_cloud_config("mariadb", PROD, TARGET))
    calendar = {
        name: _values(files[f"/etc/systemd/system/platform-backup-{name}.timer"]["content"], "OnCalendar")
        for name in ("mariadb-full", "mariadb-incremental", "verify")
    }
    assert calendar == {
        "mariadb-full": ["*-*-* 01:15:00"],
        "mariadb-incremental": ["*-*-* 07/6:15:00"],
        "verify": ["Sun *-*-* 05:00:00"],
    }
    binlog = files["/etc/systemd/system/platform-backup-binlog-ship.timer"]["content"]
    assert _values(binlog, "OnUnitActiveSec") == ["120s"]


def test_staging_without_incremental_schedule_has_no_incremental_timer() -> None:
    names = [job.name for job in backup_jobs("mariadb", STAGING)]
    assert names == ["mariadb-full", "binlog-ship", "verify"]


def test_mariabackup_jobs_share_a_lock_and_binlog_shipping_does_not() -> None:
    files = _files(backup_cloud_config("mariadb", PROD, TARGET))

    def exec_start(name: str) -> str:
        return _values(files[f"/etc/systemd/system/platform-backup-{name}.service"]["content"], "ExecStart")[
            0
        ]

    assert exec_start("mariadb-full").split()[3] == exec_start("verify").split()[3]
    assert exec_start("binlog-ship").split()[3] != exec_start("mariadb-full").split()[3]
    assert exec_start("mariadb-full").endswith(f"{SCRIPT_PATH} mariadb-full")


def test_shipped_script_is_the_one_the_integration_tests_run() -> None:
    script = _files(backup_cloud_config("mariadb", PROD, TARGET))[SCRIPT_PATH]
    assert file_content(script) == SCRIPT_SOURCE.read_text()
    assert script["permissions"] == "0755"
    # Shipped compressed: the user-data budget (policy rule user-data-size) needs the room.
    assert script["encoding"] == "gz+b64" and len(script["content"]) < len(SCRIPT_SOURCE.read_text()) / 2


def test_bucket_key_lives_only_in_the_root_only_environment_file() -> None:
    doc = backup_cloud_config("mariadb", PROD, TARGET)
    env = _files(doc)[ENV_PATH]
    assert env["permissions"] == "0600"
    assert 'PLATFORM_BACKUP_SECRET_KEY="s3cr\\"t"' in env["content"]
    others = [f["content"] for f in doc["write_files"] if f["path"] != ENV_PATH]
    assert not any("AKEXAMPLE" in text for text in others)


def test_redis_and_rabbitmq_get_their_daily_dumps() -> None:
    redis = _files(backup_cloud_config("redis", PROD, TARGET))
    rabbit = _files(backup_cloud_config("rabbitmq", PROD, TARGET))
    assert _values(redis["/etc/systemd/system/platform-backup-redis-snapshot.timer"]["content"], "OnCalendar")
    assert "/etc/systemd/system/platform-backup-rabbitmq-definitions.timer" in rabbit


def test_backups_run_on_a_replica_when_there_is_one() -> None:
    assert [backup_node_index(n) for n in (1, 2, 3)] == [0, 1, 1]


def test_timers_are_enabled_by_cloud_init() -> None:
    doc = backup_cloud_config("mariadb", PROD, TARGET)
    assert ["systemctl", "enable", "--now", "platform-backup-mariadb-full.timer"] in doc["runcmd"]
    assert {"python3-boto3", "zstd", "mariadb-backup"} <= set(doc["packages"])


def test_schedules_are_validated_when_config_is_read() -> None:
    with pytest.raises(ValueError, match="OnCalendar"):
        BackupSettings(bucket_region="eu-central", retention_days=30, full_schedule="every night")
    with pytest.raises(ValueError, match="bucket_region"):
        BackupSettings(retention_days=30)


def test_stack_schedules_are_accepted_by_systemd() -> None:
    expressions = [job.on_calendar for job in backup_jobs("mariadb", PROD) if job.on_calendar]
    expressions += [PROD.redis_schedule, PROD.rabbitmq_schedule]
    done = subprocess.run(
        [shutil.which("systemd-analyze") or "systemd-analyze", "calendar", *expressions],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Next elapse") == len(expressions)


@pytest.mark.parametrize("role", ["mariadb", "redis", "rabbitmq"])
def test_fragment_passes_cloud_init_schema(role: str, tmp_path: Path) -> None:
    text = render_cloud_config(
        merge_cloud_configs({"package_update": True}, backup_cloud_config(role, PROD, TARGET))
    )
    assert_valid_cloud_config(text, tmp_path / "user-data")


def test_linode_backup_window_settings_accept_only_two_hour_slots_with_a_day() -> None:
    settings = BackupSettings(
        bucket_region="eu-central", retention_days=30, linode_backup_window="W2", linode_backup_day="Sunday"
    )
    assert (settings.linode_backup_window, settings.linode_backup_day) == ("W2", "Sunday")
    with pytest.raises(ValueError, match="W0, W2"):
        BackupSettings(bucket_region="eu-central", linode_backup_window="W3", linode_backup_day="Sunday")
    with pytest.raises(ValueError, match="set together"):
        BackupSettings(bucket_region="eu-central", linode_backup_window="W2")
    with pytest.raises(ValueError, match="less than or equal to 300"):
        BackupSettings(bucket_region="eu-central", binlog_ship_interval_seconds=600)
