"""The ingress controller is described once, in kubernetes/ingress.py: the NetworkPolicies that
admit it, the Ingresses, the scrape job and the alert rules and dashboard all take its facts
from there, per stack, so another controller is a change to that one module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.kubernetes.ingress import INGRESS_CONTROLLER
from tests.helpers import STACKS, ProgramRuns
from tools.offline import ProgramRun, ResourceRecord, load_stack_settings, unwrap_secret

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
RELEASE = "kubernetes:helm.sh/v3:Release"


def release_values(run: ProgramRun, chart: str) -> dict[str, Any]:
    (release,) = [r for r in run.of_type(RELEASE) if chart in r.inputs["chart"]]
    values: dict[str, Any] = unwrap_secret(release.inputs["values"])[0]
    return values


def controller_policies(run: ProgramRun) -> list[ResourceRecord]:
    return [
        r
        for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.inputs["metadata"]["name"].startswith("allow-ingress-controller-to-")
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_network_policies_admit_the_pods_the_ingress_module_describes(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    namespace = load_stack_settings(stack).kubernetes.ingress.namespace
    policies = controller_policies(run)
    assert policies
    for policy in policies:
        (peer,) = policy.inputs["spec"]["ingress"][0]["from"]
        assert peer["podSelector"] == INGRESS_CONTROLLER.pod_selector()
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": namespace}
    # The controller's own pods carry those labels (the chart's spread constraint selects them).
    (spread,) = release_values(run, "traefik")["topologySpreadConstraints"]
    assert INGRESS_CONTROLLER.pod_labels.items() <= spread["labelSelector"]["matchLabels"].items()
    ingresses = run.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    assert {i.inputs["spec"]["ingressClassName"] for i in ingresses} <= {INGRESS_CONTROLLER.ingress_class}


@pytest.mark.parametrize("stack", STACKS)
def test_monitoring_scrapes_and_alerts_on_the_metrics_the_ingress_module_names(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    values = release_values(run, "kube-prometheus-stack")
    assert values["prometheus"]["additionalPodMonitors"] == [INGRESS_CONTROLLER.pod_monitor()]
    assert values["prometheus"]["additionalPodMonitors"][0]["selector"] == INGRESS_CONTROLLER.pod_selector()
    rules = {
        rule["alert"]: rule["expr"]
        for group in values["additionalPrometheusRulesMap"]["platform"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    http = INGRESS_CONTROLLER.http_metrics
    assert f'{http.requests_total}{{{http.code_label}=~"5.."}}' in rules["HighErrorRate"]
    assert f"sum by ({http.group_label}, le) (rate({http.duration_bucket}[5m]))" in rules["HighLatencyP95"]
    (dashboard,) = [
        r for r in run.of_type("kubernetes:core/v1:ConfigMap") if r.inputs["metadata"]["name"] == "platform-overview"
    ]
    exprs = [p["targets"][0]["expr"] for p in json.loads(dashboard.inputs["data"]["platform-overview.json"])["panels"]]
    assert any(http.requests_total in expr for expr in exprs)
    assert any(http.duration_bucket in expr for expr in exprs)


def test_no_source_module_but_the_ingress_module_names_the_controller() -> None:
    naming = sorted(
        str(path.relative_to(COMPONENTS)) for path in COMPONENTS.rglob("*.py") if "traefik" in path.read_text().lower()
    )
    assert naming == ["kubernetes/ingress.py"]
