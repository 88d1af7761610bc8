"""Settings for config key platform-infra:budget (monthly budget and cost guardrails)."""

from __future__ import annotations

from components.settings.common import StrictModel


class BudgetSettings(StrictModel):
    """Filled in by the issue that owns this section."""
