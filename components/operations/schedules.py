"""Backup jobs on the data VMs as systemd services and timers, from the stack's schedules (pure).

The fragment ships components/operations/backup_scripts/platform_backup.py (the script the integration
tests run for real), its environment file with the bucket key (so the fragment is secret),
and one oneshot service + timer per job. MariaDB jobs that run mariabackup share a lock so a
full, an incremental and a verification never overlap.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.data.plugin import BackupJob
from components.data.services import service
from components.operations.exporters import TEXTFILE_DIRECTORY
from components.settings.operations import BackupSettings

SCRIPT_SOURCE = Path(__file__).parent / "backup_scripts" / "platform_backup.py"
SCRIPT_PATH = "/usr/local/sbin/platform-backup"
ENV_PATH = "/etc/platform-backup/env"
STATE_DIR = "/var/lib/platform-backup"
WORK_DIR = "/var/tmp/platform-backup"
UNIT_PREFIX = "platform-backup"



@dataclass(frozen=True)
class BackupTarget:
    """Where a role's backups go: the bucket, its S3 endpoint and the bucket-scoped key."""

    endpoint: str  # https://<cluster>.linodeobjects.com
    bucket: str
    access_key: str
    secret_key: str
    prefix: str  # "<stack>/<role>"
    s3_region: str = "us-east-1"  # signature region; Linode accepts any with path-style URLs


def backup_node_index(nodes: int) -> int:
    """Backups run on a replica or one Galera node (never the primary when there is a choice)."""
    return 1 if nodes >= 2 else 0


def backup_jobs(role: str, settings: BackupSettings) -> list[BackupJob]:
    """The service's backup jobs (its registry entry), none for a service without backups."""
    backups = service(role).backups
    return backups.jobs(settings) if backups else []


def render_unit(sections: dict[str, list[tuple[str, str]]]) -> str:
    """systemd unit text from sections of (key, value) pairs."""
    blocks = [
        "\n".join([f"[{name}]", *(f"{key}={value}" for key, value in entries)])
        for name, entries in sections.items()
    ]
    return "# Managed by platform-infra (cloud-init).\n" + "\n\n".join(blocks) + "\n"


def service_unit(job: BackupJob, role: str) -> str:
    return render_unit(
        {
            "Unit": [
                ("Description", f"platform backup: {job.name}"),
                ("Wants", "network-online.target"),
                ("After", f"network-online.target {service(role).unit}"),
            ],
            "Service": [
                ("Type", "oneshot"),
                ("EnvironmentFile", ENV_PATH),
                (
                    "ExecStart",
                    f"/usr/bin/flock --wait 3600 /run/{UNIT_PREFIX}-{job.lock}.lock {SCRIPT_PATH} {job.name}",
                ),
                ("TimeoutStartSec", job.timeout),
                ("Nice", "10"),
                ("IOSchedulingClass", "best-effort"),
                ("IOSchedulingPriority", "7"),
                ("PrivateTmp", "true"),
            ],
        }
    )


def timer_unit(job: BackupJob) -> str:
    if job.on_calendar:
        timer = [("OnCalendar", job.on_calendar), ("Persistent", "true"), ("RandomizedDelaySec", "60")]
    else:
        timer = [("OnBootSec", "2min"), ("OnUnitActiveSec", f"{job.every_seconds}s"), ("AccuracySec", "10s")]
    return render_unit(
        {
            "Unit": [("Description", f"schedule of platform backup: {job.name}")],
            "Timer": timer,
            "Install": [("WantedBy", "timers.target")],
        }
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def environment_file(target: BackupTarget) -> str:
    values = {
        "PLATFORM_BACKUP_S3_ENDPOINT": target.endpoint,
        "PLATFORM_BACKUP_S3_REGION": target.s3_region,
        "PLATFORM_BACKUP_BUCKET": target.bucket,
        "PLATFORM_BACKUP_PREFIX": target.prefix,
        "PLATFORM_BACKUP_ACCESS_KEY": target.access_key,
        "PLATFORM_BACKUP_SECRET_KEY": target.secret_key,
        "PLATFORM_BACKUP_STATE_DIR": STATE_DIR,
        "PLATFORM_BACKUP_WORK_DIR": WORK_DIR,
        "PLATFORM_BACKUP_TEXTFILE_DIR": TEXTFILE_DIRECTORY,
    }
    return "# Managed by platform-infra (cloud-init). Holds the bucket key: root only.\n" + "".join(
        f"{key}={_quote(value)}\n" for key, value in values.items()
    )


def _file(path: str, content: str, permissions: str = "0644") -> dict[str, Any]:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


def _compressed_file(path: str, content: str, permissions: str) -> dict[str, Any]:
    """A large file shipped gzip-compressed (cloud-init `encoding: gz+b64`): Linode caps user
    data at 65,535 bytes (policy/rules.py user-data-size), and the backup script alone is a
    third of that. mtime=0 keeps the bytes, and so the user data, the same from run to run."""
    packed = base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()
    return {**_file(path, packed, permissions), "encoding": "gz+b64"}


def file_content(entry: dict[str, Any]) -> str:
    """The text a write_files entry puts on disk, whatever its encoding."""
    if entry.get("encoding") == "gz+b64":
        return gzip.decompress(base64.b64decode(entry["content"])).decode()
    return str(entry["content"])


def _packages(role: str) -> tuple[str, ...]:
    backups = service(role).backups
    return backups.packages if backups else ()


def backup_cloud_config(role: str, settings: BackupSettings, target: BackupTarget) -> dict[str, Any]:
    """Cloud-config fragment for the node that takes a role's backups."""
    jobs = backup_jobs(role, settings)
    files = [
        _compressed_file(SCRIPT_PATH, SCRIPT_SOURCE.read_text(), "0755"),
        _file(ENV_PATH, environment_file(target), "0600"),
    ]
    for job in jobs:
        files.append(_file(f"/etc/systemd/system/{UNIT_PREFIX}-{job.name}.service", service_unit(job, role)))
        files.append(_file(f"/etc/systemd/system/{UNIT_PREFIX}-{job.name}.timer", timer_unit(job)))
    return {
        "packages": ["python3-boto3", "zstd", *_packages(role)],
        "write_files": files,
        "runcmd": [
            ["install", "-d", "-m", "0700", STATE_DIR, WORK_DIR],
            ["systemctl", "daemon-reload"],
            *(["systemctl", "enable", "--now", f"{UNIT_PREFIX}-{job.name}.timer"] for job in jobs),
        ],
    }
