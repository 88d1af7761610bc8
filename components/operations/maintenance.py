"""Maintenance windows on the VMs: security updates applied unattended, reboots only in the window.

Pure: returns a cloud-config fragment that the foundation merges into every VM's document.

- Only Debian-Security is upgraded unattended (the origins list is cleared first).
- `any` window (dev): unattended-upgrades reboots by itself as soon as an update needs it.
- `weekends` / `daily` windows: apt's upgrade timer is moved to the window's start (and made
  non-persistent, so a VM that was off does not catch up outside the window), unattended-
  upgrades never reboots by itself, and a systemd timer inside the window reboots only when
  /var/run/reboot-required exists. Cluster members get staggered reboot times by node index
  so a Galera/Redis/RabbitMQ cluster never loses two members to the same reboot.

Linode's own host maintenance is governed by the instance's maintenance_policy
("linode/migrate": live migration, no reboot); LKE picks the times of its control-plane
patches itself (pulumi-linode 6.8.0 exposes no LKE maintenance window), see docs/RUNBOOK.md.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from components.settings.operations import MaintenanceWindow

REBOOT_UNIT = "platform-maintenance-reboot"
UPGRADE_DELAY_MINUTES = 10
FIRST_REBOOT_AFTER_MINUTES = 30
REBOOT_STAGGER_MINUTES = 15
# A reboot must start early enough to be back up before the window closes.
REBOOT_MARGIN_MINUTES = 10

AUTO_UPGRADES = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


def _unattended_upgrades(automatic_reboot: bool) -> str:
    lines = [
        "// Managed by platform-infra (cloud-init): security updates only.",
        "#clear Unattended-Upgrade::Origins-Pattern;",
        "Unattended-Upgrade::Origins-Pattern {",
        '  "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
        '  "origin=Debian,codename=${distro_codename},label=Debian-Security";',
        "};",
        'Unattended-Upgrade::Remove-Unused-Kernel-Packages "true";',
        f'Unattended-Upgrade::Automatic-Reboot "{"true" if automatic_reboot else "false"}";',
        'Unattended-Upgrade::Automatic-Reboot-WithUsers "true";',
    ]
    if automatic_reboot:
        lines.append('Unattended-Upgrade::Automatic-Reboot-Time "now";')
    return "\n".join(lines) + "\n"


def _calendar_days(window: MaintenanceWindow) -> str:
    return "Sat,Sun *-*-*" if window.kind == "weekends" else "*-*-*"


def _minutes(moment: time) -> int:
    return 24 * 60 if moment == time.max else moment.hour * 60 + moment.minute


def reboot_time(window: MaintenanceWindow, node_index: int = 0) -> time:
    """When node `node_index` checks for a pending reboot, inside the window."""
    start, end = _minutes(window.start_time), _minutes(window.end_time)
    latest = end - REBOOT_MARGIN_MINUTES
    slots = max(1, (latest - start - FIRST_REBOOT_AFTER_MINUTES) // REBOOT_STAGGER_MINUTES + 1)
    at = start + FIRST_REBOOT_AFTER_MINUTES + (node_index % slots) * REBOOT_STAGGER_MINUTES
    if at > latest:
        raise ValueError(
            f"maintenance window {window.start}-{window.end} is too short: reboots need "
            f"{FIRST_REBOOT_AFTER_MINUTES + REBOOT_MARGIN_MINUTES} minutes after the upgrade starts"
        )
    return (datetime.min + timedelta(minutes=at)).time()


def _unit(sections: dict[str, list[tuple[str, str]]]) -> str:
    """systemd unit text from sections of (key, value) pairs (keys may repeat, e.g. to reset)."""
    blocks = []
    for section, entries in sections.items():
        blocks.append("\n".join([f"[{section}]", *(f"{key}={value}" for key, value in entries)]))
    return "# Managed by platform-infra (cloud-init).\n" + "\n\n".join(blocks) + "\n"


def _file(path: str, content: str) -> dict[str, Any]:
    return {"path": path, "owner": "root:root", "permissions": "0644", "content": content}


def maintenance_cloud_config(window: MaintenanceWindow, node_index: int = 0) -> dict[str, Any]:
    """Cloud-config fragment: unattended security upgrades, reboots only inside `window`."""
    files = [_file("/etc/apt/apt.conf.d/20auto-upgrades", AUTO_UPGRADES)]
    if window.kind == "any":
        files.append(
            _file(
                "/etc/apt/apt.conf.d/52platform-unattended-upgrades",
                _unattended_upgrades(automatic_reboot=True),
            )
        )
        return {"packages": ["unattended-upgrades"], "write_files": files}

    days = _calendar_days(window)
    upgrade_at = f"{days} {window.start_time.strftime('%H:%M')}:00"
    reboot_at = f"{days} {reboot_time(window, node_index).strftime('%H:%M')}:00"
    files += [
        _file(
            "/etc/apt/apt.conf.d/52platform-unattended-upgrades", _unattended_upgrades(automatic_reboot=False)
        ),
        _file(
            "/etc/systemd/system/apt-daily-upgrade.timer.d/10-maintenance-window.conf",
            _unit(
                {
                    "Timer": [
                        ("OnCalendar", ""),  # drop Debian's 06:00 default
                        ("OnCalendar", upgrade_at),
                        ("RandomizedDelaySec", f"{UPGRADE_DELAY_MINUTES}m"),
                        ("Persistent", "false"),
                    ]
                }
            ),
        ),
        _file(
            f"/etc/systemd/system/{REBOOT_UNIT}.service",
            _unit(
                {
                    "Unit": [
                        ("Description", "Reboot inside the maintenance window when an update needs it"),
                        ("ConditionPathExists", "/var/run/reboot-required"),
                        ("After", "apt-daily-upgrade.service"),
                    ],
                    "Service": [("Type", "oneshot"), ("ExecStart", "/bin/systemctl reboot")],
                }
            ),
        ),
        _file(
            f"/etc/systemd/system/{REBOOT_UNIT}.timer",
            _unit(
                {
                    "Unit": [
                        ("Description", f"Maintenance window {window.kind} {window.start}-{window.end} UTC")
                    ],
                    "Timer": [
                        ("OnCalendar", reboot_at),
                        ("AccuracySec", "1min"),
                        ("Persistent", "false"),  # never catch up a missed reboot outside the window
                    ],
                    "Install": [("WantedBy", "timers.target")],
                }
            ),
        ),
    ]
    return {
        "packages": ["unattended-upgrades"],
        "write_files": files,
        "runcmd": [
            ["timedatectl", "set-timezone", "UTC"],
            ["systemctl", "daemon-reload"],
            ["systemctl", "restart", "apt-daily-upgrade.timer"],
            ["systemctl", "enable", "--now", f"{REBOOT_UNIT}.timer"],
        ],
    }
