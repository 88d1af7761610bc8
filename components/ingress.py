"""The ingress controller: Traefik Proxy from its official Helm chart, pinned.

Why Traefik: ingress-nginx was retired in March 2026; Traefik is actively released (chart 40.x
ships Traefik v3.7), speaks the standard `networking.k8s.io/v1` Ingress, and covers every edge
rule of the seeds (security headers, per-client rate limit, compression, HTTPS redirect) with
first-class Middleware objects instead of snippet annotations. Its chart's defaults already
meet the `restricted` Pod Security profile, so its namespace can enforce it too.

Entry per stack: `none` = ClusterIP only (developers use `kubectl port-forward`), `basic` = one
NodeBalancer, `ha` = NodeBalancer with active+passive health checks, >= 2 replicas spread over
nodes and a PodDisruptionBudget. A NodeBalancer is always behind its own Cloud Firewall and
speaks PROXY protocol v2 so Traefik sees (and rate-limits) the real client address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.charts import vendored_chart
from components.lke import NODEBALANCER_RANGE
from components.settings.kubernetes import IngressSettings
from components.workload_manifests import StackContext, namespace_object

TRAEFIK_CHART = "traefik"
RELEASE_NAME = "traefik"
INGRESS_CLASS = "traefik"
LB_ANNOTATION = "service.beta.kubernetes.io/linode-loadbalancer-"


def load_balancer_annotations(settings: IngressSettings, firewall_id: Any) -> dict[str, Any]:
    """Linode CCM Service annotations (linode-cloud-controller-manager docs/configuration)."""
    if settings.load_balancer == "none":
        return {}
    annotations: dict[str, Any] = {
        f"{LB_ANNOTATION}default-proxy-protocol": "v2",
        f"{LB_ANNOTATION}firewall-id": firewall_id,
        f"{LB_ANNOTATION}check-type": "connection",
    }
    if settings.load_balancer == "ha":
        annotations.update(
            {
                f"{LB_ANNOTATION}check-interval": "5",
                f"{LB_ANNOTATION}check-timeout": "3",
                f"{LB_ANNOTATION}check-attempts": "2",
                f"{LB_ANNOTATION}check-passive": "true",
            }
        )
    return annotations


def service_spec(settings: IngressSettings) -> dict[str, Any]:
    """The Service: ClusterIP without a NodeBalancer. Behind one, externalTrafficPolicy Local keeps
    the NodeBalancer's own address as the source (Cluster would SNAT it to a node's), so Traefik
    can tell the PROXY headers it trusts from anything else."""
    if settings.load_balancer == "none":
        return {"type": "ClusterIP"}
    return {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}


def traefik_values(settings: IngressSettings, firewall_id: Any = None) -> dict[str, Any]:
    """Helm values of the Traefik chart for this stack's entry mode."""
    # The chart labels its pods app.kubernetes.io/instance=<release>-<namespace>.
    selector = {
        "app.kubernetes.io/name": "traefik",
        "app.kubernetes.io/instance": f"{RELEASE_NAME}-{settings.namespace}",
    }
    behind_nodebalancer = settings.load_balancer != "none"
    values: dict[str, Any] = {
        "deployment": {"replicas": settings.replicas},
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CLASS},
        "providers": {
            "kubernetesCRD": {"enabled": True, "allowCrossNamespace": False},
            "kubernetesIngress": {"enabled": True},
        },
        "service": {
            # Chart >= 40 reads the Service type from service.spec (service.type is ignored).
            "spec": service_spec(settings),
            "annotations": load_balancer_annotations(settings, firewall_id),
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "logs": {"access": {"enabled": True}},
        # The request metrics the HTTP alerts read (traefik_service_*), on the pod port "metrics"
        # that the monitoring release's PodMonitor scrapes.
        "metrics": {"prometheus": {"entryPoint": "metrics", "addServicesLabels": True, "addEntryPointsLabels": True}},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule" if settings.load_balancer == "ha" else "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ],
        "podDisruptionBudget": {"enabled": settings.replicas > 1, "maxUnavailable": 1},
    }
    if behind_nodebalancer:
        # Only NodeBalancers may set the client address through the PROXY header.
        proxy = {"proxyProtocol": {"trustedIPs": [NODEBALANCER_RANGE]}}
        values["ports"] = {"web": dict(proxy), "websecure": dict(proxy)}
    return values


def nodebalancer_firewall_rules(public_cidrs: Sequence[str]) -> list[linode.FirewallInboundArgs]:
    ipv4 = [c for c in public_cidrs if ":" not in c]
    ipv6 = [c for c in public_cidrs if ":" in c] or (["::/0"] if "0.0.0.0/0" in ipv4 else [])
    return [
        linode.FirewallInboundArgs(
            label="http-https", action="ACCEPT", protocol="TCP", ports="80,443", ipv4s=ipv4, ipv6s=ipv6 or None
        )
    ]


@dataclass(frozen=True)
class IngressControllerArgs:
    settings: IngressSettings
    context: StackContext
    kubernetes_minor: str
    firewall_label: str
    tags: Sequence[str] = field(default_factory=tuple)


class IngressController(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: str
    ingress_class: str

    def __init__(self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:IngressController", name, None, opts)
        settings = args.settings
        self.namespace = settings.namespace
        self.ingress_class = INGRESS_CLASS
        self.firewall: linode.Firewall | None = None
        firewall_id: pulumi.Input[str] | None = None
        if settings.load_balancer != "none":
            # Linode resource: the explicit Kubernetes provider is not inherited here.
            self.firewall = linode.Firewall(
                f"{name}-nodebalancer",
                label=args.firewall_label,
                inbound_policy="DROP",
                outbound_policy="ACCEPT",
                inbounds=nodebalancer_firewall_rules(settings.public_cidrs),
                tags=list(args.tags),
                opts=pulumi.ResourceOptions(parent=self),
            )
            firewall_id = self.firewall.id
        k8s_opts = pulumi.ResourceOptions(parent=self)
        ns_doc = namespace_object(settings.namespace, args.kubernetes_minor, args.context)
        self.namespace_resource = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns_doc["metadata"], opts=k8s_opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-traefik",
            name=RELEASE_NAME,
            chart=vendored_chart(TRAEFIK_CHART, settings.chart_version),
            version=settings.chart_version,
            namespace=settings.namespace,
            values=traefik_values(settings, firewall_id),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource]),
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "ingress_class": self.ingress_class,
                "chart_version": settings.chart_version,
                "nodebalancer_firewall_id": firewall_id,
            }
        )
