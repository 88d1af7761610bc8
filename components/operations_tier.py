"""The operations tier: backups, maintenance, monitoring and central logs, built in two steps.

1. `build_operations_tier(...)` before the data tier: the backup bucket and key, the log-push
   password, and `addons` (one RoleAddon per data role: exporters, backup timers on the backup
   node, journal shipping; exporter ports opened to the cluster's subnet only). The data tier
   receives `addons` through `build_data_tier(..., addons=operations.addons)`.
2. `operations.attach(...)` once the data VMs and the cluster exist: the Linode Backup Service
   window of the data VMs, the monitoring and logging stacks in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.address_plan import AddressPlan
from components.alert_rules import AlertTopology, HttpMetrics, alert_rule_groups
from components.backup_schedule import BackupTarget, backup_cloud_config, backup_node_index
from components.backups import BackupStorage, BackupStorageArgs, BackupWindows, BackupWindowsArgs
from components.certificate_expiry import certificate_alert_group, certificate_expiry_cloud_config
from components.cloud_init import merge_cloud_configs
from components.exporters import DATA_ROLES, exporter_inbound_rules, exporters_cloud_config
from components.kubernetes_tier import app_source_cidrs
from components.logging_stack import (
    LoggingStack,
    LoggingStackArgs,
    LogPushCredentials,
    journal_shipping_cloud_config,
)
from components.maintenance import maintenance_cloud_config
from components.monitoring import Monitoring, MonitoringArgs
from components.role_addon import RoleAddon
from components.settings import SettingsError, StackSettings
from components.stack_config import ALERT_SMTP_PASSWORD, ALERT_WEBHOOK_URL, LINODE_TOKEN, StackSecrets

# Traefik (the cluster's ingress) names its request metrics like this.
TRAEFIK_HTTP_METRICS = HttpMetrics(
    requests_total="traefik_service_requests_total",
    duration_bucket="traefik_service_request_duration_seconds_bucket",
    code_label="code",
    group_label="service",
)


def _nth(index: int) -> Any:
    def pick(values: Sequence[Any]) -> str:
        return str(values[index])

    return pick


def role_node_counts(settings: StackSettings) -> dict[str, int]:
    data = settings.data
    return {"mariadb": data.mariadb.nodes, "redis": data.redis.nodes, "rabbitmq": data.rabbitmq.nodes}


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
        fragments.append(
            exporters_cloud_config(role, address, listen_all=settings.kubernetes.data_path != "vpc")
        )
        if settings.data.tls:
            fragments.append(certificate_expiry_cloud_config(role))
    if backup is not None and index == backup_node_index(role_node_counts(settings)[role]):
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


@dataclass
class OperationsTier:
    settings: StackSettings
    secrets: StackSecrets
    plan: AddressPlan
    backups: BackupStorage | None
    push_password: LogPushCredentials | None
    addons: dict[str, RoleAddon]
    backup_windows: BackupWindows | None = None
    monitoring: Monitoring | None = None
    logging: LoggingStack | None = None
    exports: dict[str, Any] = field(default_factory=dict)

    def attach(
        self,
        data_instance_ids: Mapping[str, pulumi.Input[Sequence[str]]] | None = None,
        kubernetes_provider: k8s.Provider | None = None,
        ingress_class: str | None = None,
        cluster_issuer: str | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        node_names: Mapping[str, str] | None = None,
        host_aliases: Sequence[Mapping[str, Any]] = (),
    ) -> OperationsTier:
        """Second step: needs the data VMs (backup windows) and the cluster (monitoring, logs)."""
        ops = self.settings.operations
        backups = ops.backups
        if backups.linode_backup_window and data_instance_ids is not None:
            if not self.settings.data.backups_enabled:
                raise SettingsError(
                    f"{self.settings.project}:operations.backups.linode_backup_window: got "
                    f"{backups.linode_backup_window!r}; allowed: only with "
                    f"{self.settings.project}:data.backups_enabled: true"
                )
            token = self.secrets.get(LINODE_TOKEN)
            if token is None:
                raise SettingsError(
                    "linode:token: missing; the backup window is set through the Linode API, set it "
                    "with `pulumi config set --secret linode:token <token>`"
                )
            ids: list[pulumi.Input[str]] = []
            for role, count in role_node_counts(self.settings).items():
                role_ids = pulumi.Output.from_input(data_instance_ids[role])
                ids += [role_ids.apply(_nth(i)) for i in range(count)]
            assert backups.linode_backup_day is not None
            self.backup_windows = BackupWindows(
                "backup-window",
                BackupWindowsArgs(
                    instance_ids=ids,
                    day=backups.linode_backup_day,
                    window=backups.linode_backup_window,
                    token=token,
                    depends_on=tuple(depends_on),
                ),
            )
        if kubernetes_provider is None:
            return self
        in_cluster = pulumi.ResourceOptions(
            providers={"kubernetes": kubernetes_provider}, depends_on=list(depends_on)
        )
        if ops.logging.enabled:
            self.logging = LoggingStack(
                "logging",
                LoggingStackArgs(
                    settings=ops.logging,
                    light=ops.monitoring.light,
                    push_password=self.push_password.password if self.push_password else None,
                    push_password_hash=self.push_password.bcrypt_hash if self.push_password else None,
                    ingress_class=ingress_class,
                    cluster_issuer=cluster_issuer,
                ),
                opts=in_cluster,
            )
        if ops.monitoring.enabled:
            counts = role_node_counts(self.settings)
            topology = AlertTopology(counts["mariadb"], counts["redis"], counts["rabbitmq"])
            rules = alert_rule_groups(
                ops.monitoring.alerts, topology, backups if backups.enabled else None, TRAEFIK_HTTP_METRICS
            )
            rules["groups"].append(certificate_alert_group(self.settings.data.tls))
            self.monitoring = Monitoring(
                "monitoring",
                MonitoringArgs(
                    settings=ops.monitoring,
                    stack=self.settings.stack,
                    # Scrape by node name, pinned like the app pods' (VPC or private-network address).
                    targets={
                        role: [(node_names or {}).get(a, a) for a in self.plan.addresses(role, count)]
                        for role, count in counts.items()
                    },
                    host_aliases=tuple(host_aliases),
                    rules=rules,
                    webhook_url=self.secrets.get(ALERT_WEBHOOK_URL),
                    smtp_password=self.secrets.get(ALERT_SMTP_PASSWORD),
                    loki_url=self.logging.query_url if self.logging else None,
                ),
                opts=in_cluster,
            )
            self.exports["grafana_admin_password"] = self.monitoring.grafana_admin_password
        return self


def build_operations_tier(
    settings: StackSettings, secrets: StackSecrets, plan: AddressPlan
) -> OperationsTier:
    """First step (before the data tier): bucket, key, log-push password and the role addons."""
    ops = settings.operations
    storage: BackupStorage | None = None
    backup_values: pulumi.Output[Mapping[str, str]] | None = None
    if ops.backups.enabled:
        storage = BackupStorage(
            "backups",
            BackupStorageArgs(
                label=settings.label("backups"), settings=ops.backups, protect=settings.stack == "prod"
            ),
        )
        backup_values = pulumi.Output.all(
            endpoint=storage.endpoint,
            bucket=storage.bucket_name,
            access_key=storage.access_key,
            secret_key=storage.secret_key,
        )
    push_password: LogPushCredentials | None = None
    push_url: str | None = None
    if ops.logging.enabled and ops.logging.vm_push_host:
        push_password = LogPushCredentials("log-push")
        scheme = "http" if settings.kubernetes.tls.mode == "none" else "https"
        push_url = f"{scheme}://{ops.logging.vm_push_host}/loki/api/v1/push"

    # Prometheus runs in the cluster: it reaches the exporters the way the app pods reach the data.
    monitoring_sources = app_source_cidrs(settings.kubernetes, plan)
    addons: dict[str, RoleAddon] = {}
    for role in DATA_ROLES:
        count = role_node_counts(settings)[role]
        addresses = plan.addresses(role, count)

        def cloud_config(
            index: int, role: str = role, addresses: list[str] = addresses
        ) -> pulumi.Input[Mapping[str, Any]]:
            backup = (
                pulumi.Output.from_input(backup_values)
                if backup_values is not None
                else pulumi.Output.from_input(None)
            )
            password = (
                pulumi.Output.from_input(push_password.password)
                if push_password
                else pulumi.Output.from_input(None)
            )
            fragment = pulumi.Output.all(backup, password).apply(
                lambda pair: _role_fragment(
                    settings,
                    role,
                    index,
                    addresses[index],
                    pair[0],
                    (push_url, pair[1]) if push_url and pair[1] else None,
                )
            )
            return (
                pulumi.Output.secret(fragment) if (backup_values is not None or push_password) else fragment
            )

        rules = exporter_inbound_rules(role, monitoring_sources) if ops.monitoring.enabled else ()
        addons[role] = RoleAddon(cloud_config=cloud_config, inbound_rules=rules)

    tier = OperationsTier(
        settings=settings,
        secrets=secrets,
        plan=plan,
        backups=storage,
        push_password=push_password,
        addons=addons,
    )
    if storage is not None:
        tier.exports["backup_bucket"] = storage.bucket_name
        tier.exports["backup_endpoint"] = storage.endpoint
    return tier
