"""Requests and limits for the containers the charts leave unsized (pure).

Without requests a container is BestEffort: evicted first under node pressure and invisible to
the scheduler's capacity math; without limits one leak can starve a node. Rendered with the real
charts (tests/validation/test_helm_releases.py), every container of every release is sized.
Each function returns a fragment of the chart's values; `merge_values` lays it over the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sized(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


SIDECAR = sized("10m", "32Mi", "100m", "128Mi")  # config reloaders, dashboard/rule watchers, hooks


def merge_values(base: Mapping[str, Any], *extras: Mapping[str, Any]) -> dict[str, Any]:
    """Each of `extras` over `base`, mappings merged key by key (what Helm does with values files)."""
    merged = dict(base)
    for extra in extras:
        for key, value in extra.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_values(merged[key], value)
            else:
                merged[key] = value
    return merged


def cert_manager_sizing() -> dict[str, Any]:
    return {
        "resources": {"limits": {"cpu": "500m"}},
        "cainjector": {"resources": sized("10m", "64Mi", "500m", "256Mi")},
        "webhook": {"resources": sized("10m", "32Mi", "200m", "128Mi")},
        "startupapicheck": {"resources": SIDECAR},
    }


def loki_sizing(light: bool) -> dict[str, Any]:
    return {
        "singleBinary": {"resources": {"limits": {"cpu": "1" if light else "2", "memory": "1Gi" if light else "4Gi"}}},
        "gateway": {"resources": sized("10m", "32Mi", "200m", "128Mi")},
        "sidecar": {"resources": SIDECAR},
    }


def alloy_sizing() -> dict[str, Any]:
    return {"alloy": {"resources": {"limits": {"cpu": "500m"}}}, "configReloader": {"resources": SIDECAR}}


def kube_prometheus_stack_sizing(light: bool) -> dict[str, Any]:
    return {
        "prometheusOperator": {
            "resources": sized("50m", "128Mi", "500m", "512Mi"),
            "admissionWebhooks": {"patch": {"resources": SIDECAR}},
        },
        "prometheus-node-exporter": {"resources": sized("10m", "32Mi", "200m", "128Mi")},
        "kube-state-metrics": {"resources": sized("10m", "64Mi", "200m", "256Mi")},
        "grafana": {
            "resources": sized("50m", "128Mi" if light else "256Mi", "500m", "512Mi"),
            "sidecar": {"resources": SIDECAR},
        },
    }


# --- security contexts the charts leave open ---------------------------------------------------

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}
RUNTIME_DEFAULT_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}
ALLOY_UID = 473  # the `alloy` user of Grafana's Alloy image


def alloy_hardening() -> dict[str, Any]:
    """Alloy reads pod logs through the Kubernetes API (no host paths), so it needs no root: the
    image's own user, no privilege escalation or capabilities, a read-only root filesystem with
    its storage path (positions) on an emptyDir."""
    return {
        "global": {
            "podSecurityContext": {
                "runAsNonRoot": True,
                "runAsUser": ALLOY_UID,
                "runAsGroup": ALLOY_UID,
                "fsGroup": ALLOY_UID,
                **RUNTIME_DEFAULT_SECCOMP,
            }
        },
        "alloy": {
            "securityContext": RESTRICTED_CONTAINER,
            "mounts": {"extra": [{"name": "storage", "mountPath": "/tmp/alloy"}]},
        },
        "configReloader": {"securityContext": RESTRICTED_CONTAINER},
        "controller": {"volumes": {"extra": [{"name": "storage", "emptyDir": {}}]}},
    }


def loki_hardening() -> dict[str, Any]:
    """The chart runs Loki and its gateway as non-root already; add the runtime's seccomp profile.
    No rules sidecar: the platform's alerts live in Prometheus, Loki's ruler has none to load, and
    the sidecar would need to read every Secret of the cluster."""
    return {
        "loki": {"podSecurityContext": RUNTIME_DEFAULT_SECCOMP},
        "gateway": {"podSecurityContext": RUNTIME_DEFAULT_SECCOMP},
        "sidecar": {"rules": {"enabled": False}},
    }


def kube_prometheus_stack_hardening() -> dict[str, Any]:
    """The node exporter's container without privilege escalation or capabilities, with seccomp;
    Grafana without its root init container that chowns the volume (the pod's fsGroup does it)."""
    return {
        "prometheus-node-exporter": {
            "securityContext": RUNTIME_DEFAULT_SECCOMP,
            "containerSecurityContext": RESTRICTED_CONTAINER,
        },
        "grafana": {"initChownData": {"enabled": False}},
    }
