"""BackupStorage and BackupWindows under Pulumi mocks."""

from __future__ import annotations

from components.backups import BackupStorage, BackupStorageArgs, BackupWindows, BackupWindowsArgs
from components.settings.operations import BackupSettings
from tests.harness import is_secret, resolve, run_component

SETTINGS = BackupSettings(bucket_region="eu-central", retention_days=30)


def _storage() -> BackupStorage:
    return BackupStorage("backups", BackupStorageArgs(label="platform-infra-prod-backups", settings=SETTINGS))


def test_bucket_expires_objects_after_the_configured_retention() -> None:
    _, records = run_component(_storage)
    bucket = next(r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket")
    assert bucket.inputs["label"] == "platform-infra-prod-backups"
    assert bucket.inputs["region"] == "eu-central"
    assert bucket.inputs["acl"] == "private"
    [rule] = bucket.inputs["lifecycleRules"]
    assert rule["enabled"] is True
    assert rule["expiration"]["days"] == 30
    assert rule["abortIncompleteMultipartUploadDays"] == 2


def test_key_is_limited_to_the_backup_bucket_alone() -> None:
    _, records = run_component(_storage)
    key = next(r for r in records if r.type == "linode:index/objectStorageKey:ObjectStorageKey")
    assert key.inputs["bucketAccesses"] == [
        {"bucketName": "platform-infra-prod-backups", "region": "eu-central", "permissions": "read_write"}
    ]
    assert "regions" not in key.inputs  # no right to create buckets anywhere


def test_key_and_endpoint_are_exposed_with_the_secret_parts_secret() -> None:
    storage, records = run_component(_storage)
    assert is_secret(storage.secret_key) and is_secret(storage.access_key)
    assert resolve(storage.endpoint) == "https://eu-central-1.linodeobjects.com"
    assert resolve(storage.bucket_name) == "platform-infra-prod-backups"
    assert all(r.parent for r in records if r.type.startswith("linode:"))


def test_retention_change_follows_config() -> None:
    short = BackupSettings(bucket_region="eu-central", retention_days=7)
    _, records = run_component(
        lambda: BackupStorage(
            "backups", BackupStorageArgs(label="platform-infra-dev-backups", settings=short)
        )
    )
    bucket = next(r for r in records if r.type == "linode:index/objectStorageBucket:ObjectStorageBucket")
    assert bucket.inputs["lifecycleRules"][0]["expiration"]["days"] == 7


def test_backup_window_is_set_on_every_data_vm_with_a_secret_token() -> None:
    _, records = run_component(
        lambda: BackupWindows(
            "backup-window",
            BackupWindowsArgs(
                instance_ids=["41001", "41002", "41003"], day="Sunday", window="W2", token="tok"
            ),
        )
    )
    windows = [r for r in records if r.type == "pulumi-python:dynamic:Resource"]
    assert sorted((w.inputs["linode_id"], w.inputs["day"], w.inputs["window"]) for w in windows) == [
        ("41001", "Sunday", "W2"),
        ("41002", "Sunday", "W2"),
        ("41003", "Sunday", "W2"),
    ]
    assert all(w.inputs["api_url"] == "https://api.linode.com/v4" for w in windows)
    assert all("token" in w.secret_inputs for w in windows)
