"""cert-manager from its official chart (pinned) and the stack's Let's Encrypt ClusterIssuer.

dev has no TLS and gets neither; staging issues from Let's Encrypt's staging directory (test
certificates, generous rate limits), prod from the production directory. The ClusterIssuer is
a custom resource: it depends on the Helm release, which installs the CRDs first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.chart_sizing import cert_manager_sizing, merge_values
from components.kubernetes.charts import vendored_chart
from components.kubernetes.objects import StackContext, common_labels, namespace_object
from components.settings.kubernetes import TlsSettings

NAMESPACE = "cert-manager"
RELEASE_NAME = "cert-manager"
ACME_DIRECTORIES = {
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
}


def cluster_issuer(tls: TlsSettings, ingress_class: str, ctx: StackContext) -> dict[str, Any] | None:
    """The ACME ClusterIssuer (HTTP-01 through the ingress controller), or None without TLS."""
    if tls.mode == "none":
        return None
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": tls.mode, "labels": common_labels(ctx)},
        "spec": {
            "acme": {
                "server": ACME_DIRECTORIES[tls.mode],
                "email": tls.acme_email,
                "privateKeySecretRef": {"name": f"{tls.mode}-account-key"},
                "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class}}}],
            }
        },
    }


def cert_manager_values() -> dict[str, Any]:
    return {
        "crds": {"enabled": True, "keep": True},  # CRDs survive an uninstall: certificates too
        "replicaCount": 1,
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "prometheus": {"enabled": True},
    }


@dataclass(frozen=True)
class CertManagerArgs:
    tls: TlsSettings
    ingress_class: str
    context: StackContext
    kubernetes_minor: str


class CertManager(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    issuer: k8s.apiextensions.CustomResource | None
    issuer_name: str | None

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:CertManager", name, None, opts)
        ns_doc = namespace_object(NAMESPACE, args.kubernetes_minor, args.context)
        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=ns_doc["metadata"], opts=pulumi.ResourceOptions(parent=self)
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=vendored_chart("cert-manager", args.tls.cert_manager_version),
            version=args.tls.cert_manager_version,
            namespace=NAMESPACE,
            values=merge_values(cert_manager_values(), cert_manager_sizing()),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource]),
        )
        doc = cluster_issuer(args.tls, args.ingress_class, args.context)
        self.issuer = None
        self.issuer_name = None
        if doc is not None:
            self.issuer_name = doc["metadata"]["name"]
            self.issuer = k8s.apiextensions.CustomResource(
                f"{name}-issuer",
                api_version=doc["apiVersion"],
                kind=doc["kind"],
                metadata=doc["metadata"],
                spec=doc["spec"],
                # The CRD exists only once the release is installed.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
            )
        self.register_outputs({"issuer_name": self.issuer_name, "chart_version": args.tls.cert_manager_version})
