"""The monthly cost estimate: each billed resource priced from the one table, totals against budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from components.linode import pricing
from components.settings.budget import REFERENCE_BUDGETS_EUR, BudgetSettings
from policy import cost


@dataclass(frozen=True)
class Record:
    type: str
    name: str
    inputs: dict[str, Any] = field(default_factory=dict)


BUDGET = BudgetSettings(monthly_eur=300)


def test_every_price_says_where_it_comes_from_and_when() -> None:
    entries: list[pricing.PlanPrice | pricing.ServicePrice] = [
        *pricing.PLANS.values(), *pricing.SERVICES.values()]
    assert len(entries) >= 10
    for entry in entries:
        assert entry.source.startswith("https://"), entry
        assert entry.evidence, entry
        assert entry.read_on == pricing.READ_ON
    assert pricing.PLANS["g6-nanode-1"].monthly_usd == 5.0
    assert pricing.PLANS["g6-standard-2"].monthly_usd == 24.0
    assert pricing.LKE_HA_CONTROL_PLANE.monthly_usd == 60.0
    assert pricing.NODEBALANCER.monthly_usd == 10.0


def test_instance_costs_its_plan_plus_backups_when_enabled() -> None:
    plain = cost.estimate_resource(Record(cost.INSTANCE, "bastion", {"type": "g6-nanode-1"}))
    backed_up = cost.estimate_resource(
        Record(cost.INSTANCE, "db-0", {"type": "g6-dedicated-4", "backupsEnabled": True}))
    assert plain is not None and plain.monthly_usd == 5.0
    assert backed_up is not None and backed_up.monthly_usd == 72.0 + 10.0
    assert "Backup Service for g6-dedicated-4" in backed_up.detail


def test_lke_cluster_costs_ha_control_plane_and_nodes_with_autoscaling_ceiling() -> None:
    cluster = Record(cost.LKE_CLUSTER, "lke", {
        "controlPlane": {"highAvailability": True},
        "pools": [{"type": "g6-standard-4", "count": 3.0, "autoscaler": {"min": 3.0, "max": 6.0}}],
    })
    line = cost.estimate_resource(cluster)
    assert line is not None
    assert line.monthly_usd == 60.0 + 3 * 48.0
    assert line.max_monthly_usd == 60.0 + 6 * 48.0
    enterprise = cost.estimate_resource(Record(cost.LKE_CLUSTER, "lke", {
        "tier": "enterprise", "controlPlane": {"highAvailability": True},
        "pools": [{"type": "g7-premium-2", "count": 3}]}))
    assert enterprise is not None and enterprise.monthly_usd == 300.0 + 3 * 43.0  # HA is part of LKE-E
    standard = cost.estimate_resource(Record(cost.LKE_CLUSTER, "lke", {
        "pools": [{"type": "g6-standard-2", "count": 1}]}))
    assert standard is not None and standard.monthly_usd == 24.0


def test_node_pool_without_count_starts_at_the_autoscaler_minimum() -> None:
    pool = cost.estimate_resource(Record(cost.LKE_NODE_POOL, "pool", {
        "type": "g6-standard-2", "autoscaler": {"min": 2, "max": 4}}))
    assert pool is not None and (pool.monthly_usd, pool.max_monthly_usd) == (48.0, 96.0)


def test_load_balancers_buckets_and_volumes_are_priced() -> None:
    records = [
        Record(cost.NODEBALANCER, "nb"),
        Record(cost.K8S_SERVICE, "traefik", {"spec": {"type": "LoadBalancer"}}),
        Record(cost.K8S_SERVICE, "api", {"spec": {"type": "ClusterIP"}}),
        Record(cost.HELM_RELEASE, "ingress", {"values": {"service": {"type": "LoadBalancer"}}}),
        Record(cost.HELM_RELEASE, "cert-manager", {"values": {"webhook": {"service": {"type": "ClusterIP"}}}}),
        Record(cost.OBJECT_STORAGE_BUCKET, "backups"),
        Record(cost.OBJECT_STORAGE_BUCKET, "logs"),
        Record(cost.VOLUME, "vol", {"size": 50}),
        Record(cost.K8S_PVC, "data", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}}),
        Record("linode:index/firewall:Firewall", "fw"),
    ]
    estimate = cost.estimate_stack(records, BUDGET)
    assert [(line.name, line.monthly_usd) for line in estimate.lines] == [
        ("nb", 10.0), ("traefik", 10.0), ("ingress", 10.0), ("backups", 5.0), ("vol", pytest.approx(5.0)),
        ("data", pytest.approx(1.0)),  # below the 10 GB minimum volume size
    ]
    assert estimate.total_usd == 41.0


def test_secret_wrapped_inputs_are_priced_like_plain_ones() -> None:
    wrapped = {cost.SECRET_SIG_KEY: cost.SECRET_SIG, "value": "g6-standard-1"}
    line = cost.estimate_resource(Record(cost.INSTANCE, "vm", {"type": wrapped}))
    assert line is not None and line.monthly_usd == 12.0


def test_unknown_plan_is_an_error_not_a_free_resource() -> None:
    with pytest.raises(pricing.UnknownPlanError, match="g9-imaginary-1"):
        cost.estimate_resource(Record(cost.INSTANCE, "vm", {"type": "g9-imaginary-1"}))


def test_total_is_converted_to_eur_and_compared_with_budget_plus_overrun() -> None:
    records = [Record(cost.INSTANCE, f"db-{i}", {"type": "g6-dedicated-4"}) for i in range(4)]  # $288
    rate = BUDGET.usd_to_eur.eur_per_usd
    tight = cost.estimate_stack(records, BudgetSettings(monthly_eur=250))
    assert tight.total_usd == 288.0
    assert tight.total_eur == round(288.0 * rate, 2)
    assert tight.within_budget is (288.0 * rate <= 250)
    assert tight.headroom_eur == round(250 - tight.total_eur, 2)
    generous = cost.estimate_stack(records, BudgetSettings(monthly_eur=250, allowed_overrun_eur=50))
    assert generous.within_budget and generous.headroom_eur == round(300 - generous.total_eur, 2)


@pytest.mark.parametrize(("quantity", "gb"), [("20Gi", 20), ("512Mi", 1), ("1Ti", 1024), ("10G", 10)])
def test_storage_quantities_round_up_to_whole_gib(quantity: str, gb: int) -> None:
    assert cost.storage_gb(quantity) == gb


def test_budget_settings_refuse_nonsense_with_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match="greater than 0"):
        BudgetSettings(monthly_eur=0)
    with pytest.raises(ValidationError, match=r"between 0\.5 and 1\.5"):
        BudgetSettings.model_validate({"monthly_eur": 100, "usd_to_eur": {
            "eur_per_usd": 3, "source": "typo", "read_on": "2026-11-23"}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        BudgetSettings.model_validate({"monthly_eur": 100, "monthly_usd": 100})
    assert REFERENCE_BUDGETS_EUR == {"development": 100.0, "staging": 300.0, "production": 1000.0}


def test_chart_volumes_are_priced_per_replica_with_block_storage_minimum() -> None:
    values = {
        "prometheus": {"prometheusSpec": {"replicas": 2, "storageSpec": {"volumeClaimTemplate": {
            "spec": {"resources": {"requests": {"storage": "50Gi"}}}}}}},
        "grafana": {"persistence": {"enabled": True, "size": "5Gi"}},
        "loki": {"persistence": {"enabled": False, "size": "100Gi"}},
    }
    assert sorted(cost.chart_volumes(values)) == [
        ("values.grafana.persistence", 1, 10),
        ("values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate", 2, 50),
    ]
    line = cost.estimate_resource(Record(cost.HELM_RELEASE, "monitoring", {"values": values}))
    assert line is not None and line.monthly_usd == pytest.approx((2 * 50 + 10) * 0.10)
    assert cost.estimate_resource(Record(cost.HELM_RELEASE, "cert-manager", {"values": {"crds": {}}})) is None
