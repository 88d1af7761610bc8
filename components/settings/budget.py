"""Settings for config key platform-infra:budget (monthly budget and cost guardrails)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, field_validator

from components.settings.common import StrictModel
from components.settings.environment import Environment


class CurrencyRate(StrictModel):
    """How many euros one US dollar buys, with where and when the figure was read.

    Linode bills in USD while the budgets are set in EUR; the rate lives in config so a
    reviewer can see (and refresh) the figure the cost guardrail relies on.
    """

    eur_per_usd: float = Field(gt=0)
    source: str = Field(min_length=1)
    read_on: dt.date

    @field_validator("eur_per_usd")
    @classmethod
    def _plausible_rate(cls, value: float) -> float:
        if not 0.5 <= value <= 1.5:
            raise ValueError("a USD->EUR rate between 0.5 and 1.5 (EUR per USD)")
        return value


# Latest ECB reference rate found offline (1 EUR = 1.0411 USD on 2025-02-28); a weaker dollar
# than that only makes the estimate pessimistic, which is the safe side for a budget guard.
DEFAULT_RATE = CurrencyRate(
    eur_per_usd=round(1 / 1.0411, 4),
    source="ECB euro foreign exchange reference rate USD, 2025-02-28 (1 EUR = 1.0411 USD)",
    read_on=dt.date(2025, 2, 28),
)


class BudgetSettings(StrictModel):
    """Monthly budget of one stack in EUR and how far the estimate may exceed it."""

    monthly_eur: float = Field(gt=0)
    allowed_overrun_eur: float = Field(default=0.0, ge=0)
    usd_to_eur: CurrencyRate = DEFAULT_RATE

    @field_validator("monthly_eur")
    @classmethod
    def _sane_budget(cls, value: float) -> float:
        if value > 100_000:
            raise ValueError("a monthly budget in EUR greater than 0 and at most 100000")
        return value

    @property
    def limit_eur(self) -> float:
        """The highest estimated monthly cost that still passes the guardrail."""
        return self.monthly_eur + self.allowed_overrun_eur


# The monthly budget the requirements give each kind of environment (~100 / ~300 / ~1000 EUR);
# a stack's own platform-infra:budget may be lower, never higher.
REFERENCE_BUDGETS_EUR: dict[Environment, float] = {"development": 100.0, "staging": 300.0, "production": 1000.0}
