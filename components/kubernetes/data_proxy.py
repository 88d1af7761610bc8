"""The in-cluster proxy in front of a data service's nodes, as plain dicts (pure, no Pulumi).

A data service whose connection names a `ClientProxy` (Galera: `database-proxy`) gets, in the
application namespace, HAProxy with the configuration the data tier renders: a ConfigMap, a
Deployment of two hardened replicas spread over the nodes, a ClusterIP Service clients dial, a
PodDisruptionBudget and the NetworkPolicies (app pods -> proxy; proxy -> the nodes on the
client and health ports, nothing else, no DNS: every server is an IP address).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.data.connections import ClientProxy
from components.kubernetes.objects import StackContext, common_labels, object_meta

# The official image, pinned to a patch release of the current HAProxy LTS branch (3.4). Bump it
# by hand with the branch's releases (https://www.haproxy.org/#last); nothing rolls it for us.
PROXY_IMAGE = "haproxy:3.4.6"
PROXY_CONFIG_DIR = "/usr/local/etc/haproxy"  # where the official image looks for its configuration
PROXY_REPLICAS = 2
# Any non-root uid works (HAProxy writes nothing); a high one keeps clear of the nodes' own users.
PROXY_UID = 10001
PROXY_RESOURCES = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
CHECKSUM_ANNOTATION = "checksum/config"

SUPPRESS_PROXY_DIGEST = (
    "CKV_K8S_43",
    f"the official image is pinned to an HAProxy patch release tag ({PROXY_IMAGE}, "
    "components/kubernetes/data_proxy.py); upstream rebuilds that tag only for base-image security fixes",
)


@dataclass(frozen=True)
class ProxyManifest:
    """One proxy to declare: its contract and its rendered configuration."""

    proxy: ClientProxy
    config: Any  # the configuration file's text (an Output where node addresses are)
    checksum: Any  # sha256 of `config`: a change rolls the pods


def config_checksum(config: str) -> str:
    return hashlib.sha256(config.encode()).hexdigest()


def proxy_selector(proxy: ClientProxy) -> dict[str, str]:
    return {"app.kubernetes.io/name": proxy.name, "app.kubernetes.io/instance": proxy.name}


def proxy_destinations(proxy: ClientProxy) -> list[tuple[str, int]]:
    """Every (VPC address, port) the proxy dials: each node's client and health ports."""
    return [(host, port) for host in proxy.hosts for port in (proxy.port, proxy.health_port)]


def _skip_annotations(skips: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, start=1)}


def config_map(manifest: ProxyManifest, namespace: str, ctx: StackContext) -> dict[str, Any]:
    proxy = manifest.proxy
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(proxy.name, namespace, ctx, labels=proxy_selector(proxy)),
        "data": {proxy.config_key: manifest.config},
    }


def service_account(proxy: ClientProxy, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(proxy.name, namespace, ctx, labels=proxy_selector(proxy)),
        "automountServiceAccountToken": False,
    }


def deployment(manifest: ProxyManifest, namespace: str, ctx: StackContext) -> dict[str, Any]:
    """HAProxy pods meeting the `restricted` profile, spread over the nodes."""
    proxy = manifest.proxy
    selector = proxy_selector(proxy)
    health = {"path": proxy.monitor_path, "port": "monitor"}
    container: dict[str, Any] = {
        "name": "haproxy",
        "image": PROXY_IMAGE,
        "imagePullPolicy": "Always",
        # The official image's entrypoint, spelled out: master-worker, foreground, our file.
        "command": ["haproxy", "-W", "-db", "-f", f"{PROXY_CONFIG_DIR}/{proxy.config_key}"],
        "ports": [
            {"name": "client", "containerPort": proxy.port, "protocol": "TCP"},
            {"name": "monitor", "containerPort": proxy.monitor_port, "protocol": "TCP"},
        ],
        "resources": {kind: dict(values) for kind, values in PROXY_RESOURCES.items()},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "runAsGroup": PROXY_UID,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "readinessProbe": {"httpGet": dict(health), "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {
            "httpGet": dict(health),
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "config", "mountPath": PROXY_CONFIG_DIR, "readOnly": True}],
    }
    item = {"key": proxy.config_key, "path": proxy.config_key}
    spread = {"labelSelector": {"matchLabels": dict(selector)}, "topologyKey": "kubernetes.io/hostname"}
    spec: dict[str, Any] = {
        "replicas": PROXY_REPLICAS,
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": {**common_labels(ctx), **selector},
                # A new configuration is a new pod template: the Deployment rolls its pods.
                "annotations": {CHECKSUM_ANNOTATION: manifest.checksum},
            },
            "spec": {
                "serviceAccountName": proxy.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": PROXY_UID,
                    "runAsGroup": PROXY_UID,
                    "fsGroup": PROXY_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                # Never both replicas on one node where the cluster has two; soft, so a
                # one-node cluster or a drain still schedules them (the PDB keeps one up).
                "affinity": {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 100, "podAffinityTerm": dict(spread)}
                        ]
                    }
                },
                "topologySpreadConstraints": [
                    {"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway", **spread},
                ],
                "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": proxy.name, "items": [item]}}],
            },
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(
            proxy.name, namespace, ctx, labels=selector, annotations=_skip_annotations([SUPPRESS_PROXY_DIGEST])
        ),
        "spec": spec,
    }


def service(proxy: ClientProxy, namespace: str, ctx: StackContext) -> dict[str, Any]:
    """What clients dial: `<name>.<namespace>.svc.cluster.local:<port>` (`proxy.host`)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(proxy.name, namespace, ctx, labels=proxy_selector(proxy)),
        "spec": {
            "type": "ClusterIP",
            "selector": proxy_selector(proxy),
            "ports": [{"name": "client", "port": proxy.port, "targetPort": "client", "protocol": "TCP"}],
        },
    }


def disruption_budget(proxy: ClientProxy, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(proxy.name, namespace, ctx, labels=proxy_selector(proxy)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": proxy_selector(proxy)}},
    }


def proxy_network_policies(
    proxy: ClientProxy,
    namespace: str,
    ctx: StackContext,
    app_pods: Mapping[str, Any],
    node_egress: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """App pods -> proxy on its client port; proxy -> the nodes (`node_egress`), nothing else.

    `app_pods` selects the application's pods; `node_egress` are the egress rules to the nodes'
    client and health ports, built like the app tier's data egress (VPC /32s or the private
    network on those ports).
    """
    selector = {"matchLabels": proxy_selector(proxy)}
    port = [{"protocol": "TCP", "port": proxy.port}]
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta(f"allow-app-egress-to-{proxy.name}", namespace, ctx),
            "spec": {
                "podSelector": dict(app_pods),
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": selector}], "ports": port}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta(f"allow-app-to-{proxy.name}", namespace, ctx),
            "spec": {
                "podSelector": selector,
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": dict(app_pods)}], "ports": port}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta(f"allow-{proxy.name}-to-data-tier", namespace, ctx),
            "spec": {
                "podSelector": selector,
                "policyTypes": ["Egress"],
                "egress": [dict(rule) for rule in node_egress],
            },
        },
    ]


def proxy_objects(manifest: ProxyManifest, namespace: str, ctx: StackContext) -> list[dict[str, Any]]:
    """Everything one proxy needs but its NetworkPolicies, in apply order."""
    proxy = manifest.proxy
    if proxy.namespace != namespace:
        raise ValueError(
            f"{proxy.name}: the data tier names it {proxy.host}, but the application runs in namespace {namespace}"
        )
    return [
        config_map(manifest, namespace, ctx),
        service_account(proxy, namespace, ctx),
        deployment(manifest, namespace, ctx),
        service(proxy, namespace, ctx),
        disruption_budget(proxy, namespace, ctx),
    ]
