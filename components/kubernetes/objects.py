"""What every object the platform puts in a cluster shares: who it belongs to, its labels, and
the namespaces it lives in (plain dicts, no Pulumi).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PART_OF = "platform-infra"


@dataclass(frozen=True)
class StackContext:
    """Who the objects belong to: names and labels derived from project and stack."""

    project: str
    stack: str
    cluster_issuer: str | None = None  # None: no TLS

    @property
    def tls(self) -> bool:
        return self.cluster_issuer is not None


def common_labels(ctx: StackContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
        "platform.example/environment": ctx.stack,
    }


def object_meta(name: str, namespace: str | None, ctx: StackContext, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(common_labels(ctx))}
    if namespace is not None:
        meta["namespace"] = namespace
    for key, value in extra.items():
        if key == "labels":
            meta["labels"].update(value)
        elif value:
            meta[key] = value
    return meta


def pod_security_labels(kubernetes_minor: str) -> dict[str, str]:
    """Pod Security Admission: enforce, audit and warn on the `restricted` profile."""
    labels: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = f"v{kubernetes_minor}"
    return labels


def namespace_object(name: str, kubernetes_minor: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": object_meta(name, None, ctx, labels=pod_security_labels(kubernetes_minor)),
    }
