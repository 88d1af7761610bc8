"""Maintenance windows: security updates unattended, reboots only inside the stack's window."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.foundation.cloud_init import merge_cloud_configs, render_cloud_config
from components.operations.maintenance import REBOOT_UNIT, maintenance_cloud_config, reboot_time
from components.settings.operations import MaintenanceWindow
from tools.offline import assert_valid_cloud_config

PROD = MaintenanceWindow(kind="daily", start="02:00", end="04:00")
STAGING = MaintenanceWindow(kind="weekends")
DEV = MaintenanceWindow(kind="any")


def _file(doc: dict[str, Any], path: str) -> str:
    return next(f["content"] for f in doc["write_files"] if f["path"] == path)


def _unit_values(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_prod_reboots_only_between_two_and_four_utc_staggered_per_node() -> None:
    times = [reboot_time(PROD, index).strftime("%H:%M") for index in range(3)]
    assert times == ["02:30", "02:45", "03:00"]
    for index in range(3):
        timer = _file(maintenance_cloud_config(PROD, index), f"/etc/systemd/system/{REBOOT_UNIT}.timer")
        assert _unit_values(timer, "OnCalendar") == [f"*-*-* {times[index]}:00"]
        assert _unit_values(timer, "Persistent") == ["false"]


def test_windowed_stacks_never_let_unattended_upgrades_reboot_by_itself() -> None:
    for window in (PROD, STAGING):
        doc = maintenance_cloud_config(window)
        config = _file(doc, "/etc/apt/apt.conf.d/52platform-unattended-upgrades")
        assert 'Unattended-Upgrade::Automatic-Reboot "false";' in config
        service = _file(doc, f"/etc/systemd/system/{REBOOT_UNIT}.service")
        assert "ConditionPathExists=/var/run/reboot-required" in service
        assert ["systemctl", "enable", "--now", f"{REBOOT_UNIT}.timer"] in doc["runcmd"]


def test_upgrades_themselves_run_at_the_window_start_and_never_catch_up_later() -> None:
    dropin = _file(
        maintenance_cloud_config(PROD),
        "/etc/systemd/system/apt-daily-upgrade.timer.d/10-maintenance-window.conf",
    )
    assert _unit_values(dropin, "OnCalendar") == ["", "*-*-* 02:00:00"]  # reset Debian's default first
    assert _unit_values(dropin, "Persistent") == ["false"]


def test_staging_reboots_on_weekends_only() -> None:
    timer = _file(maintenance_cloud_config(STAGING), f"/etc/systemd/system/{REBOOT_UNIT}.timer")
    assert _unit_values(timer, "OnCalendar") == ["Sat,Sun *-*-* 00:30:00"]


def test_dev_reboots_whenever_an_update_needs_it() -> None:
    doc = maintenance_cloud_config(DEV)
    config = _file(doc, "/etc/apt/apt.conf.d/52platform-unattended-upgrades")
    assert 'Unattended-Upgrade::Automatic-Reboot "true";' in config
    assert not any(REBOOT_UNIT in f["path"] for f in doc["write_files"])


def test_only_security_origins_are_upgraded() -> None:
    config = _file(maintenance_cloud_config(PROD), "/etc/apt/apt.conf.d/52platform-unattended-upgrades")
    assert "#clear Unattended-Upgrade::Origins-Pattern;" in config
    origins = [line for line in config.splitlines() if line.strip().startswith('"origin=')]
    assert origins and all("label=Debian-Security" in line for line in origins)


def test_window_too_short_for_a_reboot_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        reboot_time(MaintenanceWindow(kind="daily", start="02:00", end="02:20"))


def test_many_nodes_wrap_around_inside_the_window() -> None:
    assert all(reboot_time(PROD, index).strftime("%H:%M") <= "03:50" for index in range(12))


def test_window_settings_reject_reversed_or_malformed_times() -> None:
    with pytest.raises(ValueError, match="allowed: a time after start 04:00"):
        MaintenanceWindow(kind="daily", start="04:00", end="02:00")
    with pytest.raises(ValueError, match="HH:MM"):
        MaintenanceWindow(kind="daily", start="2am", end="04:00")


@pytest.mark.parametrize("window", [PROD, STAGING], ids=["prod", "staging"])
def test_calendar_expressions_are_accepted_by_systemd(window: MaintenanceWindow) -> None:
    doc = maintenance_cloud_config(window, node_index=2)
    expressions = [
        value
        for f in doc["write_files"]
        if f["path"].endswith((".timer", ".conf"))
        for value in _unit_values(f["content"], "OnCalendar")
        if value
    ]
    assert len(expressions) == 2
    done = subprocess.run(
        [shutil.which("systemd-analyze") or "systemd-analyze", "calendar", *expressions],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("window", [PROD, STAGING, DEV], ids=["prod", "staging", "dev"])
def test_fragment_passes_cloud_init_schema(window: MaintenanceWindow, tmp_path: Path) -> None:
    text = render_cloud_config(merge_cloud_configs({"package_update": True}, maintenance_cloud_config(window)))
    assert yaml.safe_load(text)["write_files"]
    assert_valid_cloud_config(text, tmp_path / "user-data")
