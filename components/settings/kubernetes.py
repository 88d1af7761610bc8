"""Settings for config key platform-infra:kubernetes (LKE, ingress, cert-manager, workloads)."""

from __future__ import annotations

from components.settings.common import StrictModel


class KubernetesSettings(StrictModel):
    """Filled in by the issue that owns this section."""
