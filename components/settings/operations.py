"""Settings for config key platform-infra:operations (backups, maintenance, monitoring, logs)."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.linode.catalog import OBJECT_STORAGE_REGIONS
from components.settings.common import KeyedError, StackRequired, StrictModel

# systemd OnCalendar expressions ("*-*-* 01:30:00", "Sun *-*-* 05:00:00", "*-*-* 00/6:15:00",
# "daily", "weekly"). A light shape check here; tests/unit/test_backup_schedule.py runs the
# stacks' expressions through `systemd-analyze calendar` for the real verdict.
_ON_CALENDAR = re.compile(
    r"^(minutely|hourly|daily|weekly|monthly|"
    r"((Mon|Tue|Wed|Thu|Fri|Sat|Sun)([-,](Mon|Tue|Wed|Thu|Fri|Sat|Sun))* )?"
    r"[0-9*/,.-]+-[0-9*/,.-]+-[0-9*/,.-]+ [0-9*/,.]+:[0-9*/,.]+(:[0-9*/,.]+)?)$"
)
_BUCKET_REGION_ALLOWED = (
    f"allowed: a Linode region with Object Storage: {', '.join(sorted(OBJECT_STORAGE_REGIONS))}"
)
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")

# Linode backup windows are two hours long and start on even UTC hours: W0 = 00:00-02:00,
# W2 = 02:00-04:00, ... W22 = 22:00-24:00 (Linode API v4, Linode.backups.schedule.window).
LINODE_BACKUP_WINDOWS = tuple(f"W{hour}" for hour in range(0, 24, 2))
LINODE_BACKUP_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _check_on_calendar(value: str) -> str:
    if not _ON_CALENDAR.match(value):
        raise ValueError(
            "a systemd OnCalendar expression such as '*-*-* 01:30:00', 'Sun *-*-* 05:00:00' "
            "or '*-*-* 00/6:15:00'"
        )
    return value


def parse_hhmm(value: str) -> time:
    """'02:00' -> time(2, 0); '24:00' -> time.max (end of day)."""
    if value == "24:00":
        return time.max
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class BackupSettings(StrictModel):
    """Logical backups of the data services to Object Storage, plus Linode's own disk backups."""

    enabled: bool = True
    bucket_region: str | None = Field(default=None, description=_BUCKET_REGION_ALLOWED)
    retention_days: Annotated[int, StackRequired(unless_false="enabled")] = Field(default=7, ge=1, le=3650)
    full_schedule: str = "*-*-* 01:15:00"
    # None: no incrementals (each run is a full backup on the full schedule only).
    incremental_schedule: str | None = None
    binlog_ship_interval_seconds: int = Field(default=300, ge=30, le=300)
    verify_schedule: str = "Sun *-*-* 05:00:00"
    redis_schedule: str = "*-*-* 01:45:00"
    rabbitmq_schedule: str = "*-*-* 01:50:00"
    # A backup older than this raises BackupStale (a day plus slack for a slow run).
    stale_after_hours: int = Field(default=26, ge=1, le=24 * 14)
    verify_stale_after_days: int = Field(default=8, ge=1, le=60)
    # Linode Backup Service schedule of the data VMs; the service itself is switched on by
    # platform-infra:data.backups_enabled (the data tier owns the VMs).
    linode_backup_window: str | None = None
    linode_backup_day: str | None = None

    @field_validator("full_schedule", "verify_schedule", "redis_schedule", "rabbitmq_schedule")
    @classmethod
    def _schedules(cls, value: str) -> str:
        return _check_on_calendar(value)

    @field_validator("incremental_schedule")
    @classmethod
    def _incremental(cls, value: str | None) -> str | None:
        return None if value is None else _check_on_calendar(value)

    @field_validator("linode_backup_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None and value not in LINODE_BACKUP_WINDOWS:
            raise ValueError(f"one of {', '.join(LINODE_BACKUP_WINDOWS)} (two-hour UTC windows)")
        return value

    @field_validator("linode_backup_day")
    @classmethod
    def _day(cls, value: str | None) -> str | None:
        if value is not None and value not in LINODE_BACKUP_DAYS:
            raise ValueError(f"one of {', '.join(LINODE_BACKUP_DAYS)}")
        return value

    @field_validator("bucket_region")
    @classmethod
    def _bucket_region(cls, value: str | None) -> str | None:
        if value is not None and value not in OBJECT_STORAGE_REGIONS:
            raise ValueError(_BUCKET_REGION_ALLOWED)
        return value

    @model_validator(mode="after")
    def _bucket_when_enabled(self) -> BackupSettings:
        if self.enabled and not self.bucket_region:
            raise KeyedError("bucket_region", None, f"{_BUCKET_REGION_ALLOWED}; required while enabled is true")
        return self

    @model_validator(mode="after")
    def _window_and_day_together(self) -> BackupSettings:
        if self.linode_backup_window is not None and self.linode_backup_day is None:
            raise KeyedError("linode_backup_day", None, "allowed: a weekday, set together with linode_backup_window")
        if self.linode_backup_day is not None and self.linode_backup_window is None:
            raise KeyedError(
                "linode_backup_window", None,
                "allowed: a window W0..W22, set together with linode_backup_day",
            )
        return self


class MaintenanceWindow(StrictModel):
    """When unattended upgrades may reboot a VM (UTC).

    any: whenever an update needs it; weekends: Saturday and Sunday between start and end;
    daily: every day between start and end.
    """

    kind: Literal["any", "weekends", "daily"]
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("a UTC time HH:MM between 00:00 and 24:00")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if parse_hhmm(self.start) >= parse_hhmm(self.end):
            raise KeyedError(
                "end", self.end, f"allowed: a time after start {self.start} (windows do not cross midnight)"
            )
        return self

    @property
    def start_time(self) -> time:
        return parse_hhmm(self.start)

    @property
    def end_time(self) -> time:
        return parse_hhmm(self.end)


class MaintenanceSettings(StrictModel):
    window: MaintenanceWindow
    # Linode host maintenance: live-migrate (no reboot) rather than power off/on.
    host_maintenance_policy: Literal["linode/migrate", "linode/power_off_on"] = "linode/migrate"


class AlertThresholds(StrictModel):
    service_down_for: str = "30s"
    cpu_percent: float = Field(default=80, gt=0, le=100)
    cpu_for: str = "5m"
    # The platform's objective (error rate below 0.1%): more 5xx than that over
    # error_for is an incident, not noise to tolerate.
    error_ratio: float = Field(default=0.001, gt=0, lt=1)
    error_for: str = "5m"
    p95_latency_seconds: float = Field(default=0.2, gt=0)
    latency_for: str = "5m"
    disk_fill_hours: int = Field(default=4, ge=1, le=168)
    queue_backlog_messages: int = Field(default=1000, ge=1)
    queue_backlog_for: str = "10m"

    @field_validator("service_down_for", "cpu_for", "error_for", "latency_for", "queue_backlog_for")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]+(s|m|h)", value):
            raise ValueError("a Prometheus duration such as 30s, 5m or 1h")
        return value


_RECEIVER_HELP = {"email_from": "an e-mail address", "smtp_smarthost": "host:port of the SMTP relay"}
_CHART_VERSION_ALLOWED = "allowed: an exact chart version such as 1.2.3"


class ReceiverSettings(StrictModel):
    email_to: tuple[str, ...] = ()
    email_from: str | None = Field(default=None, pattern=_EMAIL, description="allowed: an e-mail address")
    smtp_smarthost: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$", description="allowed: host:port of the SMTP relay"
    )
    smtp_username: str | None = None
    # Secrets never live here: the SMTP password and the webhook URL are the `secure:` keys
    # platform-infra:alert_smtp_password and platform-infra:alert_webhook_url (optional).

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not re.fullmatch(_EMAIL, address):
                raise ValueError("e-mail addresses like ops@example.com")
        return value

    @model_validator(mode="after")
    def _email_complete(self) -> ReceiverSettings:
        if self.email_to:
            for key in ("email_from", "smtp_smarthost"):
                if not getattr(self, key):
                    raise KeyedError(key, None, f"allowed: required when email_to is set ({_RECEIVER_HELP[key]})")
        return self


class MonitoringSettings(StrictModel):
    enabled: bool = True
    # light: one small Prometheus, no Alertmanager replicas, short retention (dev).
    light: bool = False
    namespace: str = "monitoring"
    kube_prometheus_stack_version: str = Field(
        default="87.14.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description=_CHART_VERSION_ALLOWED
    )
    retention: Annotated[str, StackRequired()] = Field(
        default="15d", pattern=r"^[0-9]+(h|d|w)$", description="allowed: a Prometheus retention such as 15d, 2w or 72h"
    )
    storage_gi: Annotated[int, StackRequired()] = Field(default=20, ge=1, le=1000)
    alerts: AlertThresholds = AlertThresholds()
    receivers: ReceiverSettings = ReceiverSettings()


class LoggingSettings(StrictModel):
    enabled: bool = True
    namespace: str = "logging"
    loki_chart_version: str = Field(
        default="6.29.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description=_CHART_VERSION_ALLOWED
    )
    alloy_chart_version: str = Field(
        default="1.0.3", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description=_CHART_VERSION_ALLOWED
    )
    retention_hours: Annotated[int, StackRequired()] = Field(default=168, ge=24, le=24 * 400)
    storage_gi: Annotated[int, StackRequired()] = Field(default=10, ge=1, le=1000)
    # Host name (served by the cluster's ingress) where the data VMs push their journals.
    vm_push_host: str | None = Field(
        default=None, pattern=r"^[a-z0-9.-]+$", description="allowed: a lowercase DNS name such as logs.example.org"
    )


class OperationsSettings(StrictModel):
    backups: BackupSettings = Field(description="allowed: {enabled, bucket_region, retention_days, schedules...}")
    maintenance: MaintenanceSettings = Field(description="allowed: {window: {kind, start, end}}")
    monitoring: Annotated[MonitoringSettings, StackRequired()] = MonitoringSettings()
    logging: Annotated[LoggingSettings, StackRequired()] = LoggingSettings()
