"""Central logs: Loki, Grafana Alloy for the pods, and Alloy on the data VMs for their journals.

Promtail reached end of life, so both shippers are Grafana Alloy. In the cluster Alloy runs as a
DaemonSet reading the logs of its own node's pods through the Kubernetes API; on the data VMs Alloy (Grafana's Debian
repository) reads the systemd journal and pushes to Loki's gateway, published through the
cluster's ingress at `logging.vm_push_host` with basic auth (TLS where the stack has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.chart_sizing import alloy_hardening, alloy_sizing, loki_hardening, loki_sizing, merge_values
from components.kubernetes.charts import vendored_chart
from components.settings.operations import LoggingSettings

LOKI_RELEASE = "loki"
ALLOY_RELEASE = "alloy"
STORAGE_CLASS = "linode-block-storage-retain"
PUSH_USER = "vm-journal"
LOKI_HTTP_PORT = 3100  # the chart's Service <release> (port http-metrics) in single-binary mode
NODE_NAME_ENV = "NODE_NAME"


def loki_service_url(namespace: str) -> str:
    """Loki itself, for clients inside the cluster (Alloy's pushes, Grafana's queries).

    They go around the gateway on purpose: the gateway is the door for clients outside the
    cluster (the data VMs, through the ingress) and, where those push, demands basic auth on
    every path; in-cluster clients would need that password too and gain nothing from it
    (Loki runs without multi-tenancy).
    """
    return f"http://{LOKI_RELEASE}.{namespace}.svc.cluster.local:{LOKI_HTTP_PORT}"


def loki_values(settings: LoggingSettings, light: bool, push_password_hash: str | None) -> dict[str, Any]:
    """Loki in single-binary mode on a block-storage volume, retention from config."""
    values: dict[str, Any] = {
        "deploymentMode": "SingleBinary",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": "2024-04-01",
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": f"{settings.retention_hours}h"},
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
        },
        "singleBinary": {
            "replicas": 1,
            "persistence": {
                "enabled": True,
                "size": f"{settings.storage_gi}Gi",
                "storageClass": STORAGE_CLASS,
            },
            "resources": {
                "requests": {"cpu": "100m" if light else "250m", "memory": "256Mi" if light else "1Gi"}
            },
        },
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "gateway": {"enabled": True},
    }
    if push_password_hash is not None:
        # The gateway checks the VMs' basic auth; in-cluster clients use the same gateway.
        values["gateway"]["basicAuth"] = {
            "enabled": True,
            "htpasswd": f"{PUSH_USER}:{push_password_hash}",
        }
    return values


def alloy_pod_logs_config(loki_push_url: str) -> str:
    """Alloy configuration (its own syntax) shipping the log lines of the pods on its own node.

    Alloy runs as a DaemonSet: each instance discovers only the pods scheduled on its node (a
    field selector on spec.nodeName, from the downward API), so every pod is tailed exactly once.
    """
    return f"""// Managed by platform-infra: the logs of this node's pods to Loki.
discovery.kubernetes "pods" {{
  role = "pod"
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("{NODE_NAME_ENV}")
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    target_label  = "app"
  }}
}}

loki.source.kubernetes "pods" {{
  targets    = discovery.relabel.pods.output
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = "{loki_push_url}"
  }}
}}
"""


def alloy_values(loki_push_url: str) -> dict[str, Any]:
    return {
        "alloy": {
            "configMap": {"create": True, "content": alloy_pod_logs_config(loki_push_url)},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "extraEnv": [{"name": NODE_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        },
        "controller": {"type": "daemonset"},
    }


def journal_alloy_config(push_url: str, password: str, stack: str, role: str) -> str:
    """Alloy on a data VM: the systemd journal, labelled with stack/role/unit, to Loki."""
    return f"""// Managed by platform-infra (cloud-init): this VM's journal to Loki.
loki.relabel "journal" {{
  forward_to = []
  rule {{
    source_labels = ["__journal__systemd_unit"]
    target_label  = "unit"
  }}
  rule {{
    source_labels = ["__journal_priority_keyword"]
    target_label  = "level"
  }}
}}

loki.source.journal "system" {{
  max_age       = "12h"
  relabel_rules = loki.relabel.journal.rules
  labels        = {{ stack = "{stack}", role = "{role}", job = "journal" }}
  forward_to    = [loki.write.central.receiver]
}}

loki.write "central" {{
  endpoint {{
    url = "{push_url}"
    basic_auth {{
      username = "{PUSH_USER}"
      password = "{password}"
    }}
  }}
  external_labels = {{ host = constants.hostname }}
}}
"""


GRAFANA_APT_KEY_URL = "https://apt.grafana.com/gpg.key"


def journal_shipping_cloud_config(push_url: str, password: str, stack: str, role: str) -> dict[str, Any]:
    """Cloud-config fragment: Alloy from Grafana's Debian repository shipping the journal."""
    return {
        "apt": {
            "sources": {
                "grafana": {
                    "source": "deb [signed-by=$KEY_FILE] https://apt.grafana.com stable main",
                    "keyid": "B53AE77BADB630A683046005963FA27710458545",
                    "keyserver": "keyserver.ubuntu.com",
                }
            }
        },
        "packages": ["alloy"],
        "write_files": [
            {
                "path": "/etc/alloy/config.alloy",
                "owner": "root:root",
                "permissions": "0640",
                "content": journal_alloy_config(push_url, password, stack, role),
            },
            {
                "path": "/etc/systemd/system/alloy.service.d/10-journal.conf",
                "owner": "root:root",
                "permissions": "0644",
                # Reading the journal needs the systemd-journal group.
                "content": (
                    "# Managed by platform-infra (cloud-init).\n[Service]\nSupplementaryGroups=systemd-journal\n"
                ),
            },
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "alloy"],
            ["systemctl", "restart", "alloy"],
        ],
    }


class LogPushCredentials(pulumi.ComponentResource):
    """The basic-auth password the data VMs use to push their journals (made before the VMs)."""

    password: pulumi.Output[str]  # secret
    bcrypt_hash: pulumi.Output[str]  # secret

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:operations:LogPushCredentials", name, None, opts)
        generated = random.RandomPassword(
            f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.password = pulumi.Output.secret(generated.result)
        self.bcrypt_hash = pulumi.Output.secret(generated.bcrypt_hash)
        self.register_outputs({"password": self.password, "bcrypt_hash": self.bcrypt_hash})


@dataclass(frozen=True)
class LoggingStackArgs:
    settings: LoggingSettings
    light: bool
    push_password: pulumi.Input[str] | None = None  # secret; None: the VMs do not push
    push_password_hash: pulumi.Input[str] | None = None  # bcrypt of it, for the gateway
    ingress_class: str | None = None  # the cluster's ingress, for the VMs' push endpoint
    cluster_issuer: str | None = None  # cert-manager issuer for that endpoint's TLS


class LoggingStack(pulumi.ComponentResource):
    """Loki + Alloy in the cluster; the VMs' push URL and password for their journal shippers."""

    push_url: str | None
    query_url: str

    def __init__(self, name: str, args: LoggingStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:operations:LoggingStack", name, None, opts)
        settings = args.settings
        namespace = settings.namespace
        child = pulumi.ResourceOptions(parent=self)
        # Alloy's DaemonSet reads host paths, so the namespace cannot enforce "restricted".
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
        pushing = settings.vm_push_host is not None and args.push_password_hash is not None
        values: Any = pulumi.Output.from_input(args.push_password_hash if pushing else None).apply(
            lambda digest: merge_values(
                loki_values(settings, args.light, digest), loki_sizing(args.light), loki_hardening()
            )
        )
        self.loki = k8s.helm.v3.Release(
            f"{name}-loki",
            name=LOKI_RELEASE,
            chart=vendored_chart("loki", settings.loki_chart_version),
            version=settings.loki_chart_version,
            namespace=namespace,
            values=pulumi.Output.secret(values),
            atomic=True,
            cleanup_on_fail=True,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
        )
        self.query_url = loki_service_url(namespace)
        in_cluster_push = f"{self.query_url}/loki/api/v1/push"
        self.alloy = k8s.helm.v3.Release(
            f"{name}-alloy",
            name=ALLOY_RELEASE,
            chart=vendored_chart("alloy", settings.alloy_chart_version),
            version=settings.alloy_chart_version,
            namespace=namespace,
            values=merge_values(alloy_values(in_cluster_push), alloy_sizing(), alloy_hardening()),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.loki]),
        )
        self.push_url = None
        if pushing and settings.vm_push_host:
            scheme = "https" if args.cluster_issuer else "http"
            self.push_url = f"{scheme}://{settings.vm_push_host}/loki/api/v1/push"
            annotations = (
                {"cert-manager.io/cluster-issuer": args.cluster_issuer} if args.cluster_issuer else {}
            )
            rule = {
                "host": settings.vm_push_host,
                "http": {
                    "paths": [
                        {
                            "path": "/loki/api/v1/push",
                            "pathType": "Exact",
                            "backend": {
                                "service": {"name": f"{LOKI_RELEASE}-gateway", "port": {"number": 80}}
                            },
                        }
                    ]
                },
            }
            spec: Any = {"rules": [rule]}
            if args.ingress_class:
                spec["ingressClassName"] = args.ingress_class
            if args.cluster_issuer:
                spec["tls"] = [{"hosts": [settings.vm_push_host], "secretName": "loki-push-tls"}]
            metadata: Any = {
                "name": "loki-push",
                "namespace": namespace,
                "annotations": annotations,
            }
            self.push_ingress = k8s.networking.v1.Ingress(
                f"{name}-push",
                metadata=metadata,
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.loki]),
            )
        self.register_outputs(
            {
                "namespace": namespace,
                "query_url": self.query_url,
                "push_url": self.push_url,
            }
        )
