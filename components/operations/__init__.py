"""The operations tier, in two steps: what goes on the data VMs (before them), then monitoring
and logs in the cluster (after it); backups and maintenance windows."""

from components.operations.addons import VmAddonsArgs, log_push_url, vm_addons
from components.operations.backups import BackupStorage, BackupStorageArgs, backup_windows
from components.operations.logging import LogPushCredentials
from components.operations.maintenance import maintenance_cloud_config
from components.operations.observability import Observability, ObservabilityArgs, build_observability

__all__ = [
    "BackupStorage",
    "BackupStorageArgs",
    "LogPushCredentials",
    "Observability",
    "ObservabilityArgs",
    "VmAddonsArgs",
    "backup_windows",
    "build_observability",
    "log_push_url",
    "maintenance_cloud_config",
    "vm_addons",
]
