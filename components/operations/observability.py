"""Operations step 2, once the data VMs and the cluster exist: monitoring and central logs in the
cluster, scraping the data VMs' exporters the way the app pods reach the data tier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.foundation.address_plan import AddressPlan
from components.kubernetes.ingress import INGRESS_CONTROLLER
from components.operations.alert_rules import AlertTopology, alert_rule_groups
from components.operations.certificate_expiry import certificate_alert_group
from components.operations.logging import LoggingStack, LoggingStackArgs, LogPushCredentials
from components.operations.monitoring import Monitoring, MonitoringArgs
from components.settings import StackSettings
from components.settings.stack_config import ALERT_SMTP_PASSWORD, ALERT_WEBHOOK_URL, StackSecrets


@dataclass(frozen=True)
class ObservabilityArgs:
    settings: StackSettings
    secrets: StackSecrets
    plan: AddressPlan
    kubernetes_provider: k8s.Provider
    ingress_class: str
    cluster_issuer: str | None
    log_push: LogPushCredentials | None
    node_names: Mapping[str, str]  # data VM address -> node name, as the app pods use
    host_aliases: Sequence[Mapping[str, Any]]  # node name -> address pods dial
    depends_on: Sequence[pulumi.Resource] = ()


@dataclass(frozen=True)
class Observability:
    monitoring: Monitoring | None
    logging: LoggingStack | None
    exports: dict[str, Any] = field(default_factory=dict)


def build_observability(args: ObservabilityArgs) -> Observability:
    settings = args.settings
    ops = settings.operations
    in_cluster = pulumi.ResourceOptions(
        providers={"kubernetes": args.kubernetes_provider}, depends_on=list(args.depends_on)
    )
    logging: LoggingStack | None = None
    if ops.logging.enabled:
        logging = LoggingStack(
            "logging",
            LoggingStackArgs(
                settings=ops.logging,
                light=ops.monitoring.light,
                push_password=args.log_push.password if args.log_push else None,
                push_password_hash=args.log_push.bcrypt_hash if args.log_push else None,
                ingress_class=args.ingress_class,
                cluster_issuer=args.cluster_issuer,
            ),
            opts=in_cluster,
        )
    monitoring: Monitoring | None = None
    exports: dict[str, Any] = {}
    if ops.monitoring.enabled:
        counts = settings.data.node_counts
        backups = ops.backups
        rules = alert_rule_groups(
            ops.monitoring.alerts,
            AlertTopology(counts),
            backups if backups.enabled else None,
            INGRESS_CONTROLLER.http_metrics,
        )
        rules["groups"].append(certificate_alert_group(settings.data.tls))
        monitoring = Monitoring(
            "monitoring",
            MonitoringArgs(
                settings=ops.monitoring,
                stack=settings.stack,
                # Scrape by node name, pinned like the app pods' (VPC or private-network address).
                targets={
                    role: [args.node_names.get(a, a) for a in args.plan.addresses(role, count)]
                    for role, count in counts.items()
                },
                host_aliases=tuple(args.host_aliases),
                rules=rules,
                webhook_url=args.secrets.get(ALERT_WEBHOOK_URL),
                smtp_password=args.secrets.get(ALERT_SMTP_PASSWORD),
                loki_url=logging.query_url if logging else None,
            ),
            opts=in_cluster,
        )
        exports["grafana_admin_password"] = monitoring.grafana_admin_password
    return Observability(monitoring=monitoring, logging=logging, exports=exports)
