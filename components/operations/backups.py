"""Where the logical backups go (one bucket per stack, expiring objects, a key for it alone), and
the Linode Backup Service window of the data VMs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_linode as linode
import pulumi_random as random

from components.linode.labels import check_label
from components.operations.backup_window import LINODE_API_URL, LinodeBackupWindow
from components.settings import BUCKET_SUFFIX_HEX
from components.settings.operations import BackupSettings


def _s3_endpoint(endpoint: str | None, region: str) -> str:
    host = endpoint or f"{region}-1.linodeobjects.com"
    return host if "://" in host else f"https://{host}"


@dataclass(frozen=True)
class BackupStorageArgs:
    # <project>-<stack>-backups; the bucket is named <label>-<8 hex>: bucket names are shared by
    # every customer of a region, so a stable random suffix keeps ours from colliding.
    label: str
    settings: BackupSettings
    protect: bool = False  # prod keeps its backups even if the stack is torn down by mistake


class BackupStorage(pulumi.ComponentResource):
    """Object Storage bucket whose objects expire after the retention, and a key scoped to it."""

    bucket_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    access_key: pulumi.Output[str]  # secret
    secret_key: pulumi.Output[str]  # secret

    def __init__(
        self, name: str, args: BackupStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:operations:BackupStorage", name, None, opts)
        if not args.settings.bucket_region:
            raise ValueError(f"{name}: backups need bucket_region")
        region = args.settings.bucket_region
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(protect=args.protect))
        check_label("bucket", f"{args.label}-{'0' * BUCKET_SUFFIX_HEX}")
        # Stable: a new suffix only if the label or region changes (a new bucket anyway);
        # protected with the bucket, so the name of production's backups never moves.
        self.suffix = random.RandomId(
            f"{name}-suffix",
            byte_length=BUCKET_SUFFIX_HEX // 2,
            keepers={"label": args.label, "region": region},
            opts=kept,
        )
        self.bucket = linode.ObjectStorageBucket(
            f"{name}-bucket",
            label=self.suffix.hex.apply(lambda suffix: check_label("bucket", f"{args.label}-{suffix}")),
            region=region,
            acl="private",
            versioning=False,
            lifecycle_rules=[
                linode.ObjectStorageBucketLifecycleRuleArgs(
                    id="expire-backups",
                    enabled=True,
                    expiration=linode.ObjectStorageBucketLifecycleRuleExpirationArgs(
                        days=args.settings.retention_days
                    ),
                    # A crashed upload must not keep paying for its parts.
                    abort_incomplete_multipart_upload_days=2,
                )
            ],
            opts=kept,
        )
        self.key = linode.ObjectStorageKey(
            f"{name}-key",
            label=f"{args.label}-writer",
            bucket_accesses=[
                linode.ObjectStorageKeyBucketAccessArgs(
                    bucket_name=self.bucket.label, region=self.bucket.region, permissions="read_write"
                )
            ],
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(additional_secret_outputs=["access_key", "secret_key"])
            ),
        )
        self.bucket_name = self.bucket.label
        self.endpoint = pulumi.Output.all(self.bucket.s3_endpoint, self.bucket.region).apply(
            lambda values: _s3_endpoint(values[0], values[1])
        )
        self.access_key = pulumi.Output.secret(self.key.access_key)
        self.secret_key = pulumi.Output.secret(self.key.secret_key)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "endpoint": self.endpoint,
                "access_key": self.access_key,
                "secret_key": self.secret_key,
            }
        )


@dataclass(frozen=True)
class BackupWindowsArgs:
    instance_ids: Sequence[pulumi.Input[str]]  # data VMs with the Linode Backup Service enabled
    day: str
    window: str  # W0..W22, two-hour UTC slots
    # No token here: the provider reads the stack's linode:token (or LINODE_TOKEN) at each call,
    # so a rotated token is used and none is kept in state (backup_window.py).
    api_url: str = LINODE_API_URL
    depends_on: Sequence[pulumi.Resource] = ()


class BackupWindows(pulumi.ComponentResource):
    """The Linode Backup Service day and window of each data VM, set through the Linode API."""

    def __init__(
        self, name: str, args: BackupWindowsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:operations:BackupWindows", name, None, opts)
        self.windows = [
            LinodeBackupWindow(
                f"{name}-{index}",
                linode_id=instance_id,
                day=args.day,
                window=args.window,
                api_url=args.api_url,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            for index, instance_id in enumerate(args.instance_ids)
        ]
        self.register_outputs({"count": len(self.windows), "window": args.window, "day": args.day})


def _nth(index: int) -> Callable[[Sequence[str]], str]:
    def pick(values: Sequence[str]) -> str:
        return str(values[index])

    return pick


def backup_windows(
    settings: BackupSettings,
    instance_ids: Mapping[str, pulumi.Output[list[str]]],
    node_counts: Mapping[str, int],
) -> BackupWindows | None:
    """The Backup Service window of every data VM, when the stack names one.

    The settings loader has already refused a window without the Backup Service on the data
    VMs, and a window without a `linode:token` secret (the provider reads it at each call).
    """
    if not settings.linode_backup_window:
        return None
    assert settings.linode_backup_day is not None  # the settings model sets both together
    ids: list[pulumi.Input[str]] = []
    for role, count in node_counts.items():
        role_ids = instance_ids[role]
        ids += [role_ids.apply(_nth(i)) for i in range(count)]
    return BackupWindows(
        "backup-window",
        BackupWindowsArgs(
            instance_ids=ids, day=settings.linode_backup_day, window=settings.linode_backup_window
        ),
    )
