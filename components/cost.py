"""Monthly cost estimate of a stack from its resource records (pure, no Pulumi).

A record is anything with `type`, `name` and `inputs` (the Pulumi wire-format inputs, so
camelCase keys: `backupsEnabled`, `controlPlane`, ...), e.g. the resources of
`tests/harness.py`'s ProgramRun or the adapted resources of the policy pack. Secret markers
from Pulumi mocks are unwrapped first. Prices come from `components/pricing.py` only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from components import pricing
from components.settings.budget import BudgetSettings

# The signature Pulumi's RPC layer (and its mocks) uses to mark a secret value.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

INSTANCE = "linode:index/instance:Instance"
LKE_CLUSTER = "linode:index/lkeCluster:LkeCluster"
LKE_NODE_POOL = "linode:index/lkeNodePool:LkeNodePool"
NODEBALANCER = "linode:index/nodeBalancer:NodeBalancer"
OBJECT_STORAGE_BUCKET = "linode:index/objectStorageBucket:ObjectStorageBucket"
VOLUME = "linode:index/volume:Volume"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_PVC = "kubernetes:core/v1:PersistentVolumeClaim"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


class ResourceRecord(Protocol):
    """What the estimate needs from a resource."""

    @property
    def type(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def inputs(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CostItem:
    """One priced quantity, enough to redo the arithmetic by hand."""

    description: str
    quantity: float
    unit_usd: float
    price_key: str

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_usd


@dataclass(frozen=True)
class CostLine:
    """The estimated monthly cost of one resource."""

    type: str
    name: str
    items: tuple[CostItem, ...]
    # Cost if autoscaling reaches its maximum (equal to monthly_usd without autoscaling).
    max_monthly_usd: float

    @property
    def monthly_usd(self) -> float:
        return sum(item.monthly_usd for item in self.items)

    @property
    def detail(self) -> str:
        return "; ".join(
            f"{item.quantity:g} x {item.description} @ ${item.unit_usd:.2f}" for item in self.items
        )


@dataclass(frozen=True)
class StackCost:
    """Cost lines of a stack and the total against its budget."""

    lines: tuple[CostLine, ...]
    budget: BudgetSettings

    @property
    def total_usd(self) -> float:
        return round(sum(line.monthly_usd for line in self.lines), 2)

    @property
    def max_total_usd(self) -> float:
        return round(sum(line.max_monthly_usd for line in self.lines), 2)

    @property
    def total_eur(self) -> float:
        return round(self.total_usd * self.budget.usd_to_eur.eur_per_usd, 2)

    @property
    def max_total_eur(self) -> float:
        return round(self.max_total_usd * self.budget.usd_to_eur.eur_per_usd, 2)

    @property
    def within_budget(self) -> bool:
        return self.total_eur <= self.budget.limit_eur

    @property
    def headroom_eur(self) -> float:
        """Budget left (negative: overrun) after the estimated total."""
        return round(self.budget.limit_eur - self.total_eur, 2)


def unwrap_secrets(value: Any, path: str = "") -> tuple[Any, frozenset[str]]:
    """Strip Pulumi secret markers; return the plain value and the dotted paths that were secret."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            plain, inner = unwrap_secrets(value.get("value"), path)
            return plain, inner | {path}
        result: dict[str, Any] = {}
        secret_paths: set[str] = set()
        for key, item in value.items():
            plain, inner = unwrap_secrets(item, f"{path}.{key}" if path else str(key))
            result[str(key)] = plain
            secret_paths |= inner
        return result, frozenset(secret_paths)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items: list[Any] = []
        secret_paths = set()
        for index, item in enumerate(value):
            plain, inner = unwrap_secrets(item, f"{path}[{index}]")
            items.append(plain)
            secret_paths |= inner
        return items, frozenset(secret_paths)
    return value, frozenset()


def plain_inputs(record: ResourceRecord) -> dict[str, Any]:
    plain, _ = unwrap_secrets(record.inputs)
    return dict(plain) if isinstance(plain, Mapping) else {}


def _count(value: Any, default: int = 0) -> int:
    # Mocks deliver integers as floats (3.0).
    return int(value) if isinstance(value, int | float) else default


def _plan_item(plan: str, count: int, what: str) -> CostItem:
    price = pricing.plan_price(plan)
    return CostItem(f"{what} {plan} ({price.vcpus} vCPU/{price.memory_gb} GB)", count, price.monthly_usd,
                    plan)


def _pool_items(pool: Mapping[str, Any], count_key: str) -> tuple[CostItem, float]:
    plan = str(pool.get("type", ""))
    autoscaler = pool.get("autoscaler") or {}
    count = _count(pool.get(count_key), _count(autoscaler.get("min"), 1))
    max_count = max(count, _count(autoscaler.get("max"), count)) if autoscaler else count
    item = _plan_item(plan, count, "LKE node")
    return item, max_count * item.unit_usd


_QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<unit>Ki|Mi|Gi|Ti|K|M|G|T)?$")
_BYTES_PER_UNIT = {
    None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9,
    "T": 10**12,
}


def storage_gb(quantity: str) -> int:
    """A Kubernetes storage quantity ("20Gi", "500Mi") as whole GiB, rounded up."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise ValueError(f"unrecognised storage quantity {quantity!r}")
    size_bytes = float(match["number"]) * _BYTES_PER_UNIT[match["unit"]]
    return math.ceil(size_bytes / 2**30)


def _load_balancer_services(values: Any) -> int:
    """How many `service: {type: LoadBalancer}` (or `service: {spec: {type: ...}}`, Traefik's chart
    since v40) blocks a chart's values hold (any depth). The chart tests check this count against
    the Services Helm really renders (tests/validation/test_helm_releases.py)."""
    if isinstance(values, Mapping):
        service = values.get("service")
        spec = service.get("spec") if isinstance(service, Mapping) else None
        own = 1 if isinstance(service, Mapping) and "LoadBalancer" in (
            service.get("type"), spec.get("type") if isinstance(spec, Mapping) else None) else 0
        return own + sum(_load_balancer_services(item) for item in values.values())
    if isinstance(values, list):
        return sum(_load_balancer_services(item) for item in values)
    return 0


def chart_volumes(values: Any, path: str = "values", replicas: float = 1) -> list[tuple[str, float, int]]:
    """Volumes a chart's values claim, by the common chart conventions: `persistence: {enabled,
    size}` and `volumeClaimTemplate.spec.resources.requests.storage`, times the `replicas` set
    beside them. Each as (where, replicas, GB per volume rounded up to Block Storage's minimum)."""
    found: list[tuple[str, float, int]] = []
    if isinstance(values, Mapping):
        if isinstance(values.get("replicas"), int | float):
            replicas = float(values["replicas"])
        persistence = values.get("persistence")
        if isinstance(persistence, Mapping) and persistence.get("enabled", True) and persistence.get("size"):
            size = max(storage_gb(str(persistence["size"])), pricing.BLOCK_STORAGE_MIN_GB)
            found.append((f"{path}.persistence", replicas, size))
        template = values.get("volumeClaimTemplate")
        requested = (((template or {}).get("spec") or {}).get("resources") or {}).get("requests", {}).get(
            "storage") if isinstance(template, Mapping) else None
        if requested:
            size = max(storage_gb(str(requested)), pricing.BLOCK_STORAGE_MIN_GB)
            found.append((f"{path}.volumeClaimTemplate", replicas, size))
        for key, item in values.items():
            if key not in ("persistence", "volumeClaimTemplate"):
                found += chart_volumes(item, f"{path}.{key}", replicas)
    elif isinstance(values, list):
        for index, item in enumerate(values):
            found += chart_volumes(item, f"{path}[{index}]", replicas)
    return found


def estimate_resource(record: ResourceRecord, *, first_bucket: bool = True) -> CostLine | None:
    """The monthly cost of one resource, or None for resources Linode does not bill for."""
    inputs = plain_inputs(record)
    items: list[CostItem] = []
    max_extra = 0.0
    if record.type == INSTANCE:
        plan = str(inputs.get("type", ""))
        items.append(_plan_item(plan, 1, "instance"))
        if inputs.get("backupsEnabled") or inputs.get("backups_enabled"):
            price = pricing.plan_price(plan)
            items.append(CostItem(f"Backup Service for {plan}", 1, price.backups_monthly_usd, plan))
    elif record.type == LKE_CLUSTER:
        control_plane = inputs.get("controlPlane") or {}
        if str(inputs.get("tier") or "standard") == "enterprise":
            service = pricing.LKE_ENTERPRISE_CONTROL_PLANE
        elif control_plane.get("highAvailability"):
            service = pricing.LKE_HA_CONTROL_PLANE
        else:
            service = pricing.LKE_STANDARD_CONTROL_PLANE
        items.append(CostItem(service.description, 1, service.monthly_usd, service.key))
        for pool in inputs.get("pools") or []:
            item, pool_max = _pool_items(pool, "count")
            items.append(item)
            max_extra += pool_max - item.monthly_usd
    elif record.type == LKE_NODE_POOL:
        item, pool_max = _pool_items(inputs, "nodeCount")
        items.append(item)
        max_extra += pool_max - item.monthly_usd
    elif record.type == NODEBALANCER:
        items.append(CostItem(pricing.NODEBALANCER.description, 1, pricing.NODEBALANCER.monthly_usd,
                              pricing.NODEBALANCER.key))
    elif record.type == K8S_SERVICE:
        # On LKE a Service of type LoadBalancer makes the cloud controller create a NodeBalancer.
        if (inputs.get("spec") or {}).get("type") != "LoadBalancer":
            return None
        items.append(CostItem("NodeBalancer created by LKE for a LoadBalancer Service", 1,
                              pricing.NODEBALANCER.monthly_usd, pricing.NODEBALANCER.key))
    elif record.type == HELM_RELEASE:
        values = inputs.get("values") or {}
        # A chart whose values ask for a LoadBalancer Service (e.g. the ingress controller) makes
        # LKE create a NodeBalancer just like a plain Service does.
        balancers = _load_balancer_services(values)
        if balancers:
            items.append(CostItem("NodeBalancer created by LKE for the chart's LoadBalancer Service",
                                  balancers, pricing.NODEBALANCER.monthly_usd, pricing.NODEBALANCER.key))
        # Persistent volumes the chart claims become LKE Block Storage volumes.
        for where, replicas, size_gb in chart_volumes(values):
            items.append(CostItem(f"GB of Block Storage ({replicas:g} x {where})", replicas * size_gb,
                                  pricing.BLOCK_STORAGE_GB.monthly_usd, pricing.BLOCK_STORAGE_GB.key))
        if not items:
            return None
    elif record.type == OBJECT_STORAGE_BUCKET:
        if not first_bucket:
            return None
        items.append(CostItem(pricing.OBJECT_STORAGE.description, 1, pricing.OBJECT_STORAGE.monthly_usd,
                              pricing.OBJECT_STORAGE.key))
    elif record.type == VOLUME:
        size = max(_count(inputs.get("size"), pricing.BLOCK_STORAGE_MIN_GB), pricing.BLOCK_STORAGE_MIN_GB)
        items.append(CostItem("GB of Block Storage", size, pricing.BLOCK_STORAGE_GB.monthly_usd,
                              pricing.BLOCK_STORAGE_GB.key))
    elif record.type == K8S_PVC:
        requested = (((inputs.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
        if not requested:
            return None
        size = max(storage_gb(str(requested)), pricing.BLOCK_STORAGE_MIN_GB)
        items.append(CostItem("GB of Block Storage (LKE volume)", size, pricing.BLOCK_STORAGE_GB.monthly_usd,
                              pricing.BLOCK_STORAGE_GB.key))
    else:
        return None
    line_items = tuple(items)
    monthly = sum(item.monthly_usd for item in line_items)
    return CostLine(record.type, record.name, line_items, monthly + max_extra)


def estimate_stack(records: Iterable[ResourceRecord], budget: BudgetSettings) -> StackCost:
    """Cost lines of every billed resource and the total against the budget."""
    lines: list[CostLine] = []
    seen_bucket = False
    for record in records:
        line = estimate_resource(record, first_bucket=not seen_bucket)
        if record.type == OBJECT_STORAGE_BUCKET:
            seen_bucket = True
        if line is not None:
            lines.append(line)
    return StackCost(tuple(lines), budget)
