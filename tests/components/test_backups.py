"""BackupStorage and BackupWindows under Pulumi mocks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pytest

from components.data.services import stack_address_plan
from components.foundation.reach import app_source_cidrs
from components.foundation.role_addon import RoleAddon
from components.operations import (
    BackupStorage,
    BackupStorageArgs,
    LogPushCredentials,
    VmAddonsArgs,
    backup_windows,
    log_push_url,
    vm_addons,
)
from components.operations.backups import BackupWindows, BackupWindowsArgs
from components.operations.schedules import backup_node_index
from components.settings import SettingsError, StackSettings, load_settings
from components.settings.operations import BackupSettings
from tests.helpers import STACKS, settings_of
from tools.offline import is_secret, resolve, run_component, stack_values

SETTINGS = BackupSettings(bucket_region="eu-central", retention_days=30)


# Bucket names are global per region: <label>-<8 hex> from a RandomId (stable, see backups.py).
BUCKET_NAME = r"platform-infra-prod-backups-[0-9a-f]{8}"


def _storage() -> BackupStorage:
    return BackupStorage("backups", BackupStorageArgs(label="platform-infra-prod-backups", settings=SETTINGS))


def test_bucket_expires_objects_after_the_configured_retention() -> None:
    _, records = run_component(_storage)
    bucket = next(r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket")
    assert re.fullmatch(BUCKET_NAME, bucket.inputs["label"])
    assert bucket.inputs["region"] == "eu-central"
    assert bucket.inputs["acl"] == "private"
    [rule] = bucket.inputs["lifecycleRules"]
    assert rule["enabled"] is True
    assert rule["expiration"]["days"] == 30
    assert rule["abortIncompleteMultipartUploadDays"] == 2


def test_key_is_limited_to_the_backup_bucket_alone() -> None:
    _, records = run_component(_storage)
    key = next(r for r in records if r.type == "linode:index/objectStorageKey:ObjectStorageKey")
    bucket = next(r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket")
    assert key.inputs["bucketAccesses"] == [
        {"bucketName": bucket.inputs["label"], "region": "eu-central", "permissions": "read_write"}
    ]
    assert "regions" not in key.inputs  # no right to create buckets anywhere


def test_key_and_endpoint_are_exposed_with_the_secret_parts_secret() -> None:
    storage, records = run_component(_storage)
    assert is_secret(storage.secret_key) and is_secret(storage.access_key)
    assert resolve(storage.endpoint) == "https://eu-central-1.linodeobjects.com"
    assert re.fullmatch(BUCKET_NAME, resolve(storage.bucket_name))
    assert all(r.parent for r in records if r.type.startswith("linode:"))


def test_retention_change_follows_config() -> None:
    short = BackupSettings(bucket_region="eu-central", retention_days=7)
    _, records = run_component(
        lambda: BackupStorage("backups", BackupStorageArgs(label="platform-infra-dev-backups", settings=short))
    )
    bucket = next(r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket")
    assert bucket.inputs["lifecycleRules"][0]["expiration"]["days"] == 7


def test_backup_window_is_set_on_every_data_vm_and_keeps_no_token_in_state() -> None:
    _, records = run_component(
        lambda: BackupWindows(
            "backup-window",
            BackupWindowsArgs(instance_ids=["41001", "41002", "41003"], day="Sunday", window="W2"),
        )
    )
    windows = [r for r in records if r.type == "pulumi-python:dynamic:Resource"]
    assert sorted((w.inputs["linode_id"], w.inputs["day"], w.inputs["window"]) for w in windows) == [
        ("41001", "Sunday", "W2"),
        ("41002", "Sunday", "W2"),
        ("41003", "Sunday", "W2"),
    ]
    assert all(w.inputs["api_url"] == "https://api.linode.com/v4" for w in windows)
    # The provider reads linode:token when it runs, so a rotated token is used (backup_window.py).
    assert all("token" not in w.inputs for w in windows)


# --- the operations tier per stack: bucket, role addons, backup windows -------------------------

def _settings(stack: str) -> StackSettings:
    return settings_of(stack)


def _with_linode_backup_window() -> list[str]:
    return [stack for stack in STACKS if settings_of(stack).operations.backups.linode_backup_window]


@dataclass(frozen=True)
class _Step1:
    """What __main__ builds for operations before the data VMs."""

    storage: BackupStorage | None
    addons: dict[str, RoleAddon]


def _tier(settings: StackSettings) -> _Step1:
    ops = settings.operations
    storage = (
        BackupStorage(
            "backups",
            BackupStorageArgs(label=settings.label("backups"), settings=ops.backups, protect=settings.stack == "prod"),
        )
        if ops.backups.enabled
        else None
    )
    log_push = LogPushCredentials("log-push") if log_push_url(settings) else None
    plan = stack_address_plan(settings.network)
    return _Step1(
        storage,
        vm_addons(
            VmAddonsArgs(
                settings=settings,
                plan=plan,
                backup_storage=storage,
                log_push=log_push,
                app_sources=app_sources_of(settings),
            )
        ),
    )


def _node_counts(settings: StackSettings) -> dict[str, int]:
    return settings.data.node_counts


@pytest.mark.parametrize("stack", STACKS)
def test_bucket_exists_where_backups_run_with_the_stacks_retention(stack: str) -> None:
    settings = _settings(stack)
    _, records = run_component(lambda: _tier(settings), stack=stack)
    buckets = [r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket"]
    if not settings.operations.backups.enabled:
        assert buckets == []
        return
    [bucket] = buckets
    assert re.fullmatch(f"platform-infra-{stack}-backups-[0-9a-f]{{8}}", bucket.inputs["label"])
    assert (
        bucket.inputs["lifecycleRules"][0]["expiration"]["days"] == settings.operations.backups.retention_days
    )
    assert bucket.protect == settings.production


@pytest.mark.parametrize("stack", [s for s in STACKS if settings_of(s).operations.backups.enabled])
def test_backup_timers_only_on_the_backup_node_and_from_config(stack: str) -> None:
    settings = _settings(stack)
    nodes = settings.data.mariadb.nodes
    tier, _ = run_component(lambda: _tier(settings), stack=stack)
    backup_node = backup_node_index(nodes)
    docs = {i: resolve(tier.addons["mariadb"].cloud_config(i)) for i in range(nodes)}
    assert is_secret(tier.addons["mariadb"].cloud_config(backup_node))
    paths = {i: {f["path"] for f in doc["write_files"]} for i, doc in docs.items()}
    assert "/etc/systemd/system/platform-backup-mariadb-full.timer" in paths[backup_node]
    assert all("/usr/local/sbin/platform-backup" not in paths[i] for i in docs if i != backup_node)
    full = next(f for f in docs[backup_node]["write_files"] if f["path"].endswith("mariadb-full.timer"))
    assert f"OnCalendar={settings.operations.backups.full_schedule}" in full["content"]
    has_incremental = any(p.endswith("mariadb-incremental.timer") for p in paths[backup_node])
    assert has_incremental == (settings.operations.backups.incremental_schedule is not None)
    env = next(f for f in docs[backup_node]["write_files"] if f["path"] == "/etc/platform-backup/env")
    assert f'PLATFORM_BACKUP_PREFIX="{stack}/mariadb"' in env["content"]
    assert 'PLATFORM_BACKUP_ACCESS_KEY="AKFAKE' in env["content"]


# Private-network /32s of two LKE nodes, as foundation.reach.lke_node_private_sources yields them.
NODE_SOURCES = ("192.168.200.7/32", "192.168.200.8/32")


def app_sources_of(settings: StackSettings) -> tuple[str, ...]:
    sources = app_source_cidrs(settings.kubernetes, stack_address_plan(settings.network), NODE_SOURCES)
    assert isinstance(sources, tuple)
    return sources


@pytest.mark.parametrize("stack", STACKS)
def test_exporter_ports_open_to_the_cluster_sources_only(stack: str) -> None:
    settings = _settings(stack)
    tier, _ = run_component(lambda: _tier(settings), stack=stack)
    # Prometheus runs in the cluster: the VPC app subnet (Enterprise) or, for a standard-tier
    # cluster outside the VPC, its nodes' private-network addresses (never the shared /17).
    cluster = (str(settings.network.subnets["app"]),) if settings.kubernetes.data_path == "vpc" else NODE_SOURCES
    for role in ("mariadb", "redis", "rabbitmq"):
        [rule] = [resolve(r) for r in tier.addons[role].inbound_rules]
        assert rule.sources == cluster and rule.protocol == "TCP"
        assert rule.ports.startswith("9100,")


@pytest.mark.parametrize("stack", _with_linode_backup_window())
def test_the_configured_backup_window_is_set_on_every_data_vm(stack: str) -> None:
    settings = _settings(stack)
    backups = settings.operations.backups
    counts = _node_counts(settings)
    ids = {role: [str(41000 + 10 * n + i) for i in range(count)] for n, (role, count) in enumerate(counts.items())}

    def build() -> object:
        outputs = {role: pulumi.Output.from_input(values) for role, values in ids.items()}
        return backup_windows(backups, outputs, counts)

    _, records = run_component(build, stack=stack)
    windows = [r for r in records if r.type == "pulumi-python:dynamic:Resource"]
    assert len(windows) == sum(counts.values())
    assert {(w.inputs["day"], w.inputs["window"]) for w in windows} == {
        (backups.linode_backup_day, backups.linode_backup_window)
    }
    assert sorted(w.inputs["linode_id"] for w in windows) == sorted(i for v in ids.values() for i in v)


@pytest.mark.parametrize("stack", _with_linode_backup_window())
def test_backup_window_without_the_backup_service_is_a_config_error(stack: str) -> None:
    values = stack_values(stack)
    data = json.loads(values["data"])
    values["data"] = json.dumps({**data, "backups_enabled": False})
    with pytest.raises(SettingsError, match=r"operations.backups.linode_backup_window.*data.backups_enabled"):
        load_settings("platform-infra", stack, values)
