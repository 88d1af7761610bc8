"""The ingress controller, all of it: Traefik Proxy from its official Helm chart, pinned.

Why Traefik: ingress-nginx was retired in March 2026; Traefik is actively released (chart 40.x
ships Traefik v3.7), speaks the standard `networking.k8s.io/v1` Ingress, and covers every edge
rule the platform asks for (security headers, per-client rate limit, compression, HTTPS redirect) with
first-class Middleware objects instead of snippet annotations. Its chart's defaults already
meet the `restricted` Pod Security profile, so its namespace can enforce it too.

Entry per stack: `none` = ClusterIP only (developers use `kubectl port-forward`), `basic` = one
NodeBalancer, `ha` = NodeBalancer with active+passive health checks, >= 2 replicas spread over
nodes and a PodDisruptionBudget. A NodeBalancer is always behind its own Cloud Firewall and
speaks PROXY protocol v2 so Traefik sees (and rate-limits) the real client address.

Everything Traefik-specific lives in this module. The rest of the platform knows the
controller only through `INGRESS_CONTROLLER` (ingress class, pod labels, metrics) and the
edge renderers `edge_objects` and `ingress_annotations`, so another controller is one
rewrite of this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.foundation.firewall import InboundRule, inbound_firewall
from components.kubernetes.charts import vendored_chart
from components.kubernetes.lke import NODEBALANCER_RANGE
from components.kubernetes.objects import StackContext, namespace_object, object_meta
from components.settings.kubernetes import IngressSettings, KubernetesSettings

TRAEFIK_CHART = "traefik"
RELEASE_NAME = "traefik"
MIDDLEWARE_API = "traefik.io/v1alpha1"
ROUTER_MIDDLEWARES_ANNOTATION = "traefik.ingress.kubernetes.io/router.middlewares"
HSTS_SECONDS = 31_536_000  # one year: browsers keep to HTTPS across a year of visits
LB_ANNOTATION = "service.beta.kubernetes.io/linode-loadbalancer-"


# --- what other modules may know about the controller --------------------------------------------


@dataclass(frozen=True)
class HttpMetrics:
    """Names of the ingress request metrics (counter with a status-code label, histogram)."""

    requests_total: str = "http_requests_total"
    duration_bucket: str = "http_request_duration_seconds_bucket"
    code_label: str = "code"
    group_label: str = "service"


@dataclass(frozen=True)
class IngressControllerFacts:
    """The controller as NetworkPolicies, cert-manager, Prometheus and the alert rules see it."""

    ingress_class: str
    pod_labels: Mapping[str, str]  # on every controller pod, in whatever namespace it runs
    metrics_port: str  # the pods' named port that serves Prometheus metrics
    metrics_path: str
    http_metrics: HttpMetrics

    def pod_selector(self) -> dict[str, Any]:
        return {"matchLabels": dict(self.pod_labels)}

    def pod_monitor(self) -> dict[str, Any]:
        """The controller's pods as a PodMonitor entry (kube-prometheus-stack values)."""
        return {
            "name": RELEASE_NAME,
            "namespaceSelector": {"any": True},
            "selector": self.pod_selector(),
            "podMetricsEndpoints": [{"port": self.metrics_port, "path": self.metrics_path}],
        }


INGRESS_CONTROLLER = IngressControllerFacts(
    ingress_class="traefik",
    pod_labels=MappingProxyType({"app.kubernetes.io/name": "traefik"}),
    metrics_port="metrics",
    metrics_path="/metrics",
    http_metrics=HttpMetrics(
        requests_total="traefik_service_requests_total",
        duration_bucket="traefik_service_request_duration_seconds_bucket",
        code_label="code",
        group_label="service",
    ),
)


# --- edge rules in the application namespace -----------------------------------------------------


def middleware_names(ctx: StackContext) -> list[str]:
    names = ["security-headers", "rate-limit", "compress"]
    if ctx.tls:
        names.insert(0, "redirect-https")
    return names


def edge_objects(settings: KubernetesSettings, ctx: StackContext) -> list[dict[str, Any]]:
    """The edge rules (headers, rate limit, compression, HTTPS redirect) as Traefik middlewares in the
    application namespace."""
    ns = settings.namespace.name
    headers: dict[str, Any] = {
        "frameDeny": True,  # X-Frame-Options: DENY
        "contentTypeNosniff": True,  # X-Content-Type-Options: nosniff
        "browserXssFilter": True,  # X-XSS-Protection: 1; mode=block
        "referrerPolicy": "strict-origin-when-cross-origin",
    }
    if ctx.tls:
        headers.update({"stsSeconds": HSTS_SECONDS, "stsIncludeSubdomains": True})
    rate = settings.ingress.rate_limit
    middlewares: list[dict[str, Any]] = [
        {
            "apiVersion": MIDDLEWARE_API,
            "kind": "Middleware",
            "metadata": object_meta("security-headers", ns, ctx),
            "spec": {"headers": headers},
        },
        {
            "apiVersion": MIDDLEWARE_API,
            "kind": "Middleware",
            "metadata": object_meta("rate-limit", ns, ctx),
            # No sourceCriterion: Traefik keys the limit on the client address (RemoteAddr),
            # which the NodeBalancer's PROXY protocol header makes the real client.
            "spec": {"rateLimit": {"average": rate.requests_per_second, "period": "1s", "burst": rate.burst}},
        },
        {
            "apiVersion": MIDDLEWARE_API,
            "kind": "Middleware",
            "metadata": object_meta("compress", ns, ctx),
            "spec": {"compress": {"minResponseBodyBytes": 1024}},
        },
    ]
    if ctx.tls:
        middlewares.insert(
            0,
            {
                "apiVersion": MIDDLEWARE_API,
                "kind": "Middleware",
                "metadata": object_meta("redirect-https", ns, ctx),
                "spec": {"redirectScheme": {"scheme": "https", "permanent": True}},
            },
        )
    return middlewares


def ingress_annotations(namespace: str, ctx: StackContext) -> dict[str, str]:
    """What an Ingress in `namespace` carries so the controller applies the edge rules to it."""
    chain = ",".join(f"{namespace}-{name}@kubernetescrd" for name in middleware_names(ctx))
    return {ROUTER_MIDDLEWARES_ANNOTATION: chain}


# --- the controller itself -----------------------------------------------------------------------


def proxy_protocol_sources(backend_ipv4_range: str | None) -> list[str]:
    """Where the NodeBalancer's connections reach Traefik from: the only senders it trusts with a
    PROXY header.

    Classic NodeBalancers reach their backends from 192.168.255.0/24 (Akamai, NodeBalancer
    reference; the LKE node rules admit NodePorts from it); a VPC-backed one from the backend
    range pinned by the `backend-ipv4-range` annotation. Either holds only with
    `externalTrafficPolicy: Local`: with `Cluster` kube-proxy SNATs the connection to a node's
    address and Traefik never sees the NodeBalancer at all.
    """
    return [backend_ipv4_range] if backend_ipv4_range else [NODEBALANCER_RANGE]


def load_balancer_annotations(
    settings: IngressSettings, firewall_id: Any, backend_ipv4_range: str | None = None
) -> dict[str, Any]:
    """Linode CCM Service annotations (linode-cloud-controller-manager docs/configuration)."""
    if settings.load_balancer == "none":
        return {}
    annotations: dict[str, Any] = {
        f"{LB_ANNOTATION}default-proxy-protocol": "v2",
        f"{LB_ANNOTATION}firewall-id": firewall_id,
        f"{LB_ANNOTATION}check-type": "connection",
    }
    if backend_ipv4_range:
        # VPC backends: pin the NodeBalancer's backend range (CCM precedence 1) so it is known here.
        annotations[f"{LB_ANNOTATION}backend-ipv4-range"] = backend_ipv4_range
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


def traefik_values(
    settings: IngressSettings, firewall_id: Any = None, backend_ipv4_range: str | None = None
) -> dict[str, Any]:
    """Helm values of the Traefik chart for this stack's entry mode.

    `backend_ipv4_range`: the VPC range a VPC-backed NodeBalancer reaches the nodes from (LKE
    Enterprise in our VPC); None for a classic NodeBalancer (192.168.255.0/24).
    """
    # The chart labels its pods app.kubernetes.io/instance=<release>-<namespace>.
    selector = {**INGRESS_CONTROLLER.pod_labels, "app.kubernetes.io/instance": f"{RELEASE_NAME}-{settings.namespace}"}
    behind_nodebalancer = settings.load_balancer != "none"
    values: dict[str, Any] = {
        "deployment": {"replicas": settings.replicas},
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": INGRESS_CONTROLLER.ingress_class},
        "providers": {
            "kubernetesCRD": {"enabled": True, "allowCrossNamespace": False},
            "kubernetesIngress": {"enabled": True},
        },
        "service": {
            "annotations": load_balancer_annotations(settings, firewall_id, backend_ipv4_range),
            # The chart copies `service.spec` into the Service (templates/_service.tpl) and has
            # no `service.type`. Local: no SNAT between the NodeBalancer and Traefik, so the PROXY
            # header's sender is the NodeBalancer (nodes without a Traefik pod fail its check).
            "spec": (
                {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
                if behind_nodebalancer
                else {"type": "ClusterIP"}
            ),
        },
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "logs": {"access": {"enabled": True}},
        # The request metrics the HTTP alerts read (traefik_service_*), on the pod port that the
        # monitoring release's PodMonitor scrapes.
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
        # Only the NodeBalancer may set the client address through the PROXY header.
        proxy = {"proxyProtocol": {"trustedIPs": proxy_protocol_sources(backend_ipv4_range)}}
        values["ports"] = {"web": dict(proxy), "websecure": dict(proxy)}
    return values


def nodebalancer_firewall_rules(public_cidrs: Sequence[str]) -> list[InboundRule]:
    """HTTP and HTTPS from the configured public sources; "the whole IPv4 internet" means IPv6 too."""
    ipv4 = [c for c in public_cidrs if ":" not in c]
    ipv6 = [c for c in public_cidrs if ":" in c] or (["::/0"] if "0.0.0.0/0" in ipv4 else [])
    return [InboundRule("http-https", "TCP", "80,443", (*ipv4, *ipv6), public=True)]


@dataclass(frozen=True)
class IngressControllerArgs:
    settings: IngressSettings
    context: StackContext
    kubernetes_minor: str
    firewall_label: str
    tags: Sequence[str] = field(default_factory=tuple)
    # The LKE cluster: the release is deleted before it, so the cloud controller can still
    # remove the NodeBalancer the release's LoadBalancer Service owns.
    cluster: pulumi.Resource | None = None
    # VPC-backed NodeBalancer (LKE Enterprise in our VPC): its pinned backend range; None: classic.
    backend_ipv4_range: str | None = None


class IngressController(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    namespace: str
    ingress_class: str

    def __init__(self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:IngressController", name, None, opts)
        settings = args.settings
        self.namespace = settings.namespace
        self.ingress_class = INGRESS_CONTROLLER.ingress_class
        self.firewall: linode.Firewall | None = None
        firewall_id: pulumi.Input[str] | None = None
        if settings.load_balancer != "none":
            # Linode resource: the explicit Kubernetes provider is not inherited here.
            self.firewall = inbound_firewall(
                f"{name}-nodebalancer",
                args.firewall_label,
                nodebalancer_firewall_rules(settings.public_cidrs),
                args.tags,
                pulumi.ResourceOptions(parent=self),
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
            values=traefik_values(settings, firewall_id, args.backend_ipv4_range),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.namespace_resource, *([args.cluster] if args.cluster else [])]
            ),
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "ingress_class": self.ingress_class,
                "chart_version": settings.chart_version,
                "nodebalancer_firewall_id": firewall_id,
            }
        )
