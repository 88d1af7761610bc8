"""Settings for config key platform-infra:operations (backups, maintenance, monitoring, logs)."""

from __future__ import annotations

from components.settings.common import StrictModel


class OperationsSettings(StrictModel):
    """Filled in by the issue that owns this section."""
