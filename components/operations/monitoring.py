"""Prometheus, Alertmanager and Grafana (kube-prometheus-stack, pinned) with the platform's rules.

The pure functions render the chart's values: scrape jobs for the exporters on the data VMs
(over the VPC; their firewalls admit only the cluster's subnet), the alert rules from
alert_rules.py, Alertmanager receivers (e-mail and webhook; their secrets arrive as Outputs),
and a Grafana dashboard provisioned through the chart's sidecar (ConfigMaps labelled
grafana_dashboard). `light` (dev) keeps one small Prometheus and short retention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.cert_manager import NAMESPACE as CERT_MANAGER_NAMESPACE
from components.kubernetes.cert_manager import RELEASE_NAME as CERT_MANAGER_RELEASE
from components.kubernetes.chart_sizing import (
    kube_prometheus_stack_hardening,
    kube_prometheus_stack_sizing,
    merge_values,
)
from components.kubernetes.charts import vendored_chart
from components.kubernetes.ingress import INGRESS_CONTROLLER
from components.operations.exporters import NODE_EXPORTER_PORT, NODE_JOB, exporter_port, scrape_job
from components.settings.operations import MonitoringSettings, ReceiverSettings

CHART = "kube-prometheus-stack"
RELEASE_NAME = "monitoring"
DASHBOARD_LABEL = "grafana_dashboard"
STORAGE_CLASS = "linode-block-storage-retain"


def scrape_configs(targets: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Static scrape jobs: node exporter on every data VM, each service's exporter on its role."""
    node_targets = [
        {"targets": [f"{address}:{NODE_EXPORTER_PORT}" for address in addresses], "labels": {"role": role}}
        for role, addresses in targets.items()
        if addresses
    ]
    jobs: list[dict[str, Any]] = [{"job_name": NODE_JOB, "static_configs": node_targets}]
    for role, addresses in targets.items():
        if not addresses:
            continue
        jobs.append(
            {
                "job_name": scrape_job(role),
                "static_configs": [
                    {
                        "targets": [f"{address}:{exporter_port(role)}" for address in addresses],
                        "labels": {"role": role},
                    }
                ],
            }
        )
    return jobs


def alertmanager_config(
    receivers: ReceiverSettings, webhook_url: str | None, smtp_password: str | None
) -> dict[str, Any]:
    """Route everything to the configured receivers; critical alerts repeat more often."""
    default: dict[str, Any] = {"name": "platform"}
    if receivers.email_to:
        email: dict[str, Any] = {
            "to": ", ".join(receivers.email_to),
            "from": receivers.email_from,
            "smarthost": receivers.smtp_smarthost,
            "require_tls": True,
            "send_resolved": True,
        }
        if receivers.smtp_username:
            email["auth_username"] = receivers.smtp_username
        if smtp_password:
            email["auth_password"] = smtp_password
        default["email_configs"] = [email]
    if webhook_url:
        default["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "platform",
            "group_by": ["alertname", "job", "instance"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": "platform", "matchers": ['severity="critical"'], "repeat_interval": "1h"},
                # The chart's always-firing heartbeat is not an incident.
                {"receiver": "null", "matchers": ['alertname="Watchdog"']},
            ],
        },
        "receivers": [default, {"name": "null"}],
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["instance"],
            }
        ],
    }


def _panel(panel_id: int, title: str, expr: str, unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr}],
    }


def platform_dashboard(stack: str) -> dict[str, Any]:
    """The platform's key metrics on one page: resources, latency, errors, databases, workers, backups."""
    http = INGRESS_CONTROLLER.http_metrics  # request metrics as the ingress controller names them
    by = http.group_label
    specs = [
        (
            "CPU busy by host",
            '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))',
            "percent",
        ),
        (
            "Memory in use by host",
            "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
            "percent",
        ),
        (
            "p95 request latency",
            f"histogram_quantile(0.95, sum by ({by}, le) (rate({http.duration_bucket}[5m])))",
            "s",
        ),
        (
            "5xx ratio",
            f'sum by ({by}) (rate({http.requests_total}{{{http.code_label}=~"5.."}}[5m]))'
            f" / sum by ({by}) (rate({http.requests_total}[5m]))",
            "percentunit",
        ),
        ("Galera cluster size", "mysql_global_status_wsrep_cluster_size", "short"),
        ("MariaDB queries per second", "rate(mysql_global_status_questions[5m])", "reqps"),
        ("Redis role (1 = primary)", 'redis_instance_info{role="master"}', "short"),
        ("RabbitMQ messages ready", "sum by (instance) (rabbitmq_queue_messages_ready)", "short"),
        ("Age of the newest backup", "time() - platform_backup_last_success_timestamp_seconds", "s"),
        ("Disk free", 'node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"}', "bytes"),
    ]
    panels = [
        _panel(index + 1, title, expr, unit, x=(index % 2) * 12, y=(index // 2) * 8)
        for index, (title, expr, unit) in enumerate(specs)
    ]
    return {
        "uid": f"platform-{stack}",
        "title": f"Platform overview ({stack})",
        "tags": ["platform-infra", stack],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def cert_manager_service_monitor() -> dict[str, Any]:
    """Scrape cert-manager's controller Service (its metrics port, created by prometheus.enabled)."""
    return {
        "name": "cert-manager",
        "namespaceSelector": {"matchNames": [CERT_MANAGER_NAMESPACE]},
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "cert-manager",
                "app.kubernetes.io/instance": CERT_MANAGER_RELEASE,
                "app.kubernetes.io/component": "controller",
            }
        },
        "endpoints": [{"port": "tcp-prometheus-servicemonitor", "path": "/metrics", "interval": "60s"}],
    }


def monitoring_values(
    settings: MonitoringSettings,
    targets: Mapping[str, Sequence[str]],
    rules: Mapping[str, Any],
    alertmanager: Mapping[str, Any],
    loki_url: str | None,
    host_aliases: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Helm values of kube-prometheus-stack for this stack."""
    light = settings.light
    prometheus_resources = (
        {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
        if light
        else {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    )
    values: dict[str, Any] = {
        "fullnameOverride": RELEASE_NAME,
        "crds": {"enabled": True},
        # LKE manages the control plane: its components cannot be scraped from inside.
        "kubeEtcd": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "defaultRules": {"create": True, "rules": {"etcd": False, "kubeSchedulerAlerting": False}},
        "additionalPrometheusRulesMap": {"platform": dict(rules)},
        "prometheus": {
            "prometheusSpec": {
                "replicas": 1 if light else 2,
                "retention": settings.retention,
                "resources": prometheus_resources,
                "ruleSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "additionalScrapeConfigs": scrape_configs(targets),
                **({"hostAliases": [dict(alias) for alias in host_aliases]} if host_aliases else {}),
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": STORAGE_CLASS,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{settings.storage_gi}Gi"}},
                        }
                    }
                },
            },
            # cert-manager's certificate metrics feed the expiry alert. The ServiceMonitor belongs to
            # this release (which installs its CRD): cert-manager's own would be installed before
            # the CRD exists on a new cluster, and Helm would refuse it.
            "additionalServiceMonitors": [cert_manager_service_monitor()],
            # The ingress controller's request metrics feed the error-rate and latency alerts.
            "additionalPodMonitors": [INGRESS_CONTROLLER.pod_monitor()],
        },
        "alertmanager": {
            "config": dict(alertmanager),
            "alertmanagerSpec": {
                "replicas": 1 if light else 2,
                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            },
        },
        "grafana": {
            "admin": {
                "existingSecret": f"{RELEASE_NAME}-grafana-admin",
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "defaultDashboardsTimezone": "utc",
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL, "searchNamespace": "ALL"}},
            "persistence": {"enabled": not light, "size": "5Gi", "storageClassName": STORAGE_CLASS},
        },
    }
    if loki_url:
        values["grafana"]["additionalDataSources"] = [
            {"name": "Loki", "type": "loki", "uid": "loki", "url": loki_url, "access": "proxy"}
        ]
    return values


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    stack: str
    targets: Mapping[str, Sequence[str]]  # role -> data VM names (or VPC addresses)
    rules: Mapping[str, Any]  # alert_rules.alert_rule_groups(...)
    webhook_url: pulumi.Input[str] | None = None  # secret
    smtp_password: pulumi.Input[str] | None = None  # secret
    loki_url: str | None = None
    # Data node name -> the address Prometheus dials for it (an Output on the private network).
    host_aliases: Sequence[Mapping[str, Any]] = ()


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack in its own namespace, the platform dashboard and the Grafana login."""

    grafana_admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:operations:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = args.settings.namespace
        # The chart's node-exporter DaemonSet needs host access, so this namespace cannot
        # enforce the restricted Pod Security profile; it warns about it instead.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "privileged",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False, opts=child)
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        self.grafana_secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": f"{RELEASE_NAME}-grafana-admin", "namespace": namespace},
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=in_namespace,
        )
        self.dashboards = k8s.core.v1.ConfigMap(
            f"{name}-dashboard-platform",
            metadata={"name": "platform-overview", "namespace": namespace, "labels": {DASHBOARD_LABEL: "1"}},
            data={"platform-overview.json": json.dumps(platform_dashboard(args.stack), indent=1)},
            opts=in_namespace,
        )
        secrets = pulumi.Output.all(
            pulumi.Output.from_input(args.webhook_url),
            pulumi.Output.from_input(args.smtp_password),
            pulumi.Output.from_input([dict(alias) for alias in args.host_aliases]),
        )
        values: pulumi.Output[Any] = secrets.apply(
            lambda pair: merge_values(
                monitoring_values(
                    args.settings,
                    args.targets,
                    args.rules,
                    alertmanager_config(args.settings.receivers, pair[0], pair[1]),
                    args.loki_url,
                    pair[2],
                ),
                kube_prometheus_stack_sizing(args.settings.light),
                kube_prometheus_stack_hardening(),
            )
        )
        has_secrets = args.webhook_url is not None or args.smtp_password is not None
        self.release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=RELEASE_NAME,
            chart=vendored_chart(CHART, args.settings.kube_prometheus_stack_version),
            version=args.settings.kube_prometheus_stack_version,
            namespace=namespace,
            values=pulumi.Output.secret(values) if has_secrets else values,
            atomic=True,
            cleanup_on_fail=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, self.grafana_secret]),
        )
        self.register_outputs(
            {
                "namespace": namespace,
                "chart_version": args.settings.kube_prometheus_stack_version,
                "grafana_admin_password": self.grafana_admin_password,
            }
        )
