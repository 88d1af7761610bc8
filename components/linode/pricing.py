"""The one price table of the project: Linode (Akamai Cloud) monthly list prices in USD.

Every figure says where it was read and when. Linode bills hourly up to a monthly cap; the
cap is the figure used here, so an estimate is the cost of a resource that runs all month.
Prices are the base (global) list prices; a few regions (e.g. id-cgk, br-gru) carry
per-region overrides in the catalog, which this table does not model.

Refresh: `curl -s https://api.linode.com/v4/linode/types` (no token needed) and the other
unauthenticated catalog endpoints named in each entry's `source`, then update `read_on`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# The date the figures below were looked up for this table.
READ_ON = dt.date(2026, 11, 23)

LINODE_TYPES_API = "https://api.linode.com/v4/linode/types"
LINODE_PRICING_PAGE = "https://www.linode.com/pricing/"
# Transcription of LINODE_TYPES_API probed on 2026-09-17 (75 types, backups addon per type).
CATALOG_TRANSCRIPT = (
    "https://raw.githubusercontent.com/api-evangelist/linode/main/plans/linode-plans-pricing.yml"
)
# Linode's own Cloud Manager hard-codes these service prices for its checkout summaries.
MANAGER_PRICING_CONSTANTS = (
    "https://github.com/linode/manager/blob/develop/packages/manager/src/utilities/pricing/constants.ts"
)
BLOCK_STORAGE_GUIDE = (
    "https://github.com/linode/docs/blob/master/docs/platform/block-storage/"
    "how-to-use-block-storage-with-your-linode/index.md"
)


@dataclass(frozen=True)
class PlanPrice:
    """Monthly cap of one Linode plan (instance type) and of its Backup Service add-on."""

    plan: str
    label: str
    vcpus: int
    memory_gb: int
    monthly_usd: float
    backups_monthly_usd: float
    source: str
    evidence: str
    read_on: dt.date = READ_ON


@dataclass(frozen=True)
class ServicePrice:
    """Monthly price of a non-instance service (flat or per unit)."""

    key: str
    description: str
    monthly_usd: float
    unit: str
    source: str
    evidence: str
    read_on: dt.date = READ_ON


_BACKUPS_EVIDENCE = (
    "backups add-on follows the pricing page's per-plan table; only the Nanode's $2 was"
    " confirmed in the catalog transcript, re-check the others against addons.backups"
)


def _plan(
    plan: str,
    label: str,
    vcpus: int,
    memory_gb: int,
    monthly_usd: float,
    backups_monthly_usd: float,
    source: str,
    evidence: str,
) -> PlanPrice:
    return PlanPrice(plan, label, vcpus, memory_gb, monthly_usd, backups_monthly_usd, source, evidence)


PLANS: dict[str, PlanPrice] = {
    p.plan: p
    for p in (
        # Shared CPU.
        _plan("g6-nanode-1", "Nanode 1 GB", 1, 1, 5.0, 2.0, CATALOG_TRANSCRIPT,
              "catalog transcript: Nanode 1GB $5.0/mo; backups $2.00/mo on the Nanode 1GB"),
        _plan("g6-standard-1", "Linode 2 GB", 1, 2, 12.0, 2.5, CATALOG_TRANSCRIPT,
              "catalog transcript: Linode 2GB $12.0/mo (lowest standard plan); " + _BACKUPS_EVIDENCE),
        _plan("g6-standard-2", "Linode 4 GB", 2, 4, 24.0, 5.0, LINODE_TYPES_API,
              "/v4/linode/types shape in public client fixtures: g6-standard-2 monthly 24; "
              + _BACKUPS_EVIDENCE),
        _plan("g6-standard-4", "Linode 8 GB", 4, 8, 48.0, 10.0, LINODE_TYPES_API,
              "/v4/linode/types shape in public client fixtures: g6-standard-4 monthly 48; "
              + _BACKUPS_EVIDENCE),
        _plan("g6-standard-6", "Linode 16 GB", 6, 16, 96.0, 20.0, LINODE_PRICING_PAGE,
              "pricing page (doubling series of the shared plans); " + _BACKUPS_EVIDENCE),
        _plan("g6-standard-8", "Linode 32 GB", 8, 32, 192.0, 40.0, LINODE_PRICING_PAGE,
              "pricing page (doubling series of the shared plans); " + _BACKUPS_EVIDENCE),
        # Dedicated CPU.
        _plan("g6-dedicated-2", "Dedicated 4 GB", 2, 4, 36.0, 5.0, CATALOG_TRANSCRIPT,
              "catalog transcript: Dedicated 4GB $36.0/mo (lowest dedicated plan); " + _BACKUPS_EVIDENCE),
        _plan("g6-dedicated-4", "Dedicated 8 GB", 4, 8, 72.0, 10.0, LINODE_TYPES_API,
              "Cloud Manager test fixtures of /v4/linode/types: g6-dedicated-4 monthly 72.0; "
              + _BACKUPS_EVIDENCE),
        _plan("g6-dedicated-8", "Dedicated 16 GB", 8, 16, 144.0, 20.0, LINODE_TYPES_API,
              "Cloud Manager test fixtures of /v4/linode/types: g6-dedicated-8 monthly 144.0; "
              + _BACKUPS_EVIDENCE),
        _plan("g6-dedicated-16", "Dedicated 32 GB", 16, 32, 288.0, 40.0, LINODE_PRICING_PAGE,
              "pricing page (doubling series of the dedicated plans); " + _BACKUPS_EVIDENCE),
        # Premium CPU (LKE Enterprise node pools use these).
        _plan("g7-premium-2", "Premium 4 GB", 2, 4, 43.0, 5.0, CATALOG_TRANSCRIPT,
              "catalog transcript: Premium 4GB $43.0/mo (lowest premium plan); " + _BACKUPS_EVIDENCE),
    )
}

LKE_HA_CONTROL_PLANE = ServicePrice(
    "lke-ha-control-plane", "LKE high-availability control plane", 60.0, "per cluster",
    MANAGER_PRICING_CONSTANTS, "LKE_HA_PRICE = 60",
)
# LKE Enterprise includes its HA control plane (HA and ACL are on by default for the tier).
LKE_ENTERPRISE_CONTROL_PLANE = ServicePrice(
    "lke-enterprise-control-plane", "LKE Enterprise control plane (HA included)", 300.0, "per cluster",
    "https://github.com/linode/manager/blob/develop/packages/manager/src/factories/types.ts",
    "lkeEnterpriseTypeFactory: id 'lke-e', price.monthly 300 (shape of GET /v4/lke/types)",
)
LKE_STANDARD_CONTROL_PLANE = ServicePrice(
    "lke-standard-control-plane", "LKE standard control plane", 0.0, "per cluster",
    LINODE_PRICING_PAGE, "the standard LKE control plane is free; only worker nodes are billed",
)
NODEBALANCER = ServicePrice(
    "nodebalancer", "NodeBalancer", 10.0, "per load balancer",
    MANAGER_PRICING_CONSTANTS, "NODEBALANCER_PRICE = 10",
)
OBJECT_STORAGE = ServicePrice(
    "object-storage", "Object Storage subscription (flat, per account, base quota included)", 5.0,
    "per account", MANAGER_PRICING_CONSTANTS, "OBJ_STORAGE_PRICE.monthly = 5.0",
)
BLOCK_STORAGE_GB = ServicePrice(
    "block-storage", "Block Storage volume", 0.10, "per GB",
    BLOCK_STORAGE_GUIDE, "a volume ... costs $0.10/GiB per month",
)
# Block Storage volumes start at 10 GB; an LKE PersistentVolumeClaim below that is rounded up.
BLOCK_STORAGE_MIN_GB = 10

SERVICES: dict[str, ServicePrice] = {
    s.key: s
    for s in (
        LKE_HA_CONTROL_PLANE, LKE_ENTERPRISE_CONTROL_PLANE, LKE_STANDARD_CONTROL_PLANE, NODEBALANCER,
        OBJECT_STORAGE, BLOCK_STORAGE_GB,
    )
}


class UnknownPlanError(KeyError):
    """A plan id the price table does not know: the estimate must not silently count it as free."""


def plan_price(plan: str) -> PlanPrice:
    """The price entry of a plan id such as "g6-standard-2"."""
    try:
        return PLANS[plan]
    except KeyError:
        known = ", ".join(sorted(PLANS))
        raise UnknownPlanError(f"plan {plan!r} is not in components/pricing.py (known: {known})") from None
