"""Operations step 1, before the data VMs: what operations puts on each of them.

Per data role, a RoleAddon: exporters (ports opened to the monitoring sources only), backup
timers on the role's backup node (they need the bucket and its key, which `__main__` creates
first), journal shipping to the cluster's log endpoint, and security upgrades inside the
maintenance window. The data tier merges these fragments into each VM's user data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.data.services import SERVICES
from components.foundation.address_plan import AddressPlan
from components.foundation.cloud_init import merge_cloud_configs
from components.foundation.role_addon import RoleAddon
from components.operations.backups import BackupStorage
from components.operations.certificate_expiry import certificate_expiry_cloud_config
from components.operations.exporters import exporter_inbound_rules, exporters_cloud_config
from components.operations.logging import LogPushCredentials, journal_shipping_cloud_config
from components.operations.maintenance import maintenance_cloud_config
from components.operations.schedules import BackupTarget, backup_cloud_config, backup_node_index
from components.settings import StackSettings


@dataclass(frozen=True)
class VmAddonsArgs:
    settings: StackSettings
    plan: AddressPlan
    backup_storage: BackupStorage | None  # None: the stack takes no logical backups
    log_push: LogPushCredentials | None  # None: the VMs do not ship their journals
    # Where the cluster connects from (foundation.reach.app_source_cidrs): Prometheus runs there.
    app_sources: pulumi.Input[Sequence[str]]


def log_push_url(settings: StackSettings) -> str | None:
    """Where the data VMs push their journals: the cluster's ingress, HTTPS where TLS is on."""
    logging = settings.operations.logging
    if not (logging.enabled and logging.vm_push_host):
        return None
    scheme = "http" if settings.kubernetes.tls.mode == "none" else "https"
    return f"{scheme}://{logging.vm_push_host}/loki/api/v1/push"


def _role_fragment(
    settings: StackSettings,
    role: str,
    index: int,
    address: str,
    backup: Mapping[str, str] | None,
    push: tuple[str, str] | None,
) -> dict[str, Any]:
    ops = settings.operations
    # Security upgrades and reboots inside the stack's window, staggered per node so a cluster
    # never loses two members at once.
    fragments: list[dict[str, Any]] = [maintenance_cloud_config(ops.maintenance.window, index)]
    if ops.monitoring.enabled:
        fragments.append(exporters_cloud_config(role, address, listen_all=settings.kubernetes.data_path != "vpc"))
        if settings.data.tls:
            # The internal CA and node certificates' expiry, through the node exporter.
            fragments.append(certificate_expiry_cloud_config(role))
    nodes = settings.data.services[role].nodes
    if backup is not None and index == backup_node_index(nodes):
        target = BackupTarget(
            endpoint=backup["endpoint"],
            bucket=backup["bucket"],
            access_key=backup["access_key"],
            secret_key=backup["secret_key"],
            prefix=f"{settings.stack}/{role}",
        )
        fragments.append(backup_cloud_config(role, ops.backups, target))
    if push is not None:
        fragments.append(journal_shipping_cloud_config(push[0], push[1], settings.stack, role))
    return merge_cloud_configs(*fragments)


def vm_addons(args: VmAddonsArgs) -> dict[str, RoleAddon]:
    """One RoleAddon per registered data service."""
    settings, storage = args.settings, args.backup_storage
    backup_values: pulumi.Output[Mapping[str, str]] | None = None
    if storage is not None:
        backup_values = pulumi.Output.all(
            endpoint=storage.endpoint,
            bucket=storage.bucket_name,
            access_key=storage.access_key,
            secret_key=storage.secret_key,
        )
    push_url = log_push_url(settings) if args.log_push else None
    push_password = args.log_push.password if args.log_push else None
    secret = backup_values is not None or push_password is not None
    # Prometheus runs in the cluster: it reaches the exporters the way the app pods reach the data.
    monitoring_sources = args.app_sources
    addons: dict[str, RoleAddon] = {}
    for role in SERVICES:
        addresses = args.plan.addresses(role, settings.data.services[role].nodes)

        def cloud_config(
            index: int, role: str = role, addresses: list[str] = addresses
        ) -> pulumi.Input[Mapping[str, Any]]:
            fragment = pulumi.Output.all(
                pulumi.Output.from_input(backup_values), pulumi.Output.from_input(push_password)
            ).apply(
                lambda pair: _role_fragment(
                    settings,
                    role,
                    index,
                    addresses[index],
                    pair[0],
                    (push_url, pair[1]) if push_url and pair[1] else None,
                )
            )
            return pulumi.Output.secret(fragment) if secret else fragment

        rules = (
            exporter_inbound_rules(role, monitoring_sources) if settings.operations.monitoring.enabled else ()
        )
        addons[role] = RoleAddon(cloud_config=cloud_config, inbound_rules=rules)
    return addons
