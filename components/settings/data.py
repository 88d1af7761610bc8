"""Settings for config key platform-infra:data (MariaDB, Redis, RabbitMQ sizing, TLS)."""

from __future__ import annotations

from components.settings.common import StrictModel


class DataSettings(StrictModel):
    """Filled in by the issue that owns this section."""
