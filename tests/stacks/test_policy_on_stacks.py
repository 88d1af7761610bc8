"""The policy pack's rules over the mocked program of every stack, and the offline preview CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from components.settings.budget import BudgetSettings
from policy import rules
from tests.helpers import STACKS, ProgramRuns, environment_of, settings_of
from tools import preview
from tools.offline import ProgramRun


def views(run: ProgramRun) -> list[rules.ResourceView]:
    return rules.views_from_records(run.resources)


def context(stack: str, budget: BudgetSettings | None) -> rules.StackContext:
    return rules.StackContext(stack, environment_of(stack), budget)


@pytest.mark.parametrize("stack", STACKS)
def test_every_mandatory_rule_passes_on_the_stack(stack: str, program_runs: ProgramRuns) -> None:
    budget = preview.stack_budget(stack)
    assert budget is not None, f"Pulumi.{stack}.yaml has no platform-infra:budget"
    result = rules.evaluate(views(program_runs[stack]), context(stack, budget))
    assert [f"{f.rule}: {f.message}" for f in result.mandatory] == []


@pytest.mark.parametrize("stack", STACKS)
def test_rules_are_fed_the_stack_s_real_firewalls_and_instances(stack: str, program_runs: ProgramRuns) -> None:
    found = {view.type for view in views(program_runs[stack])}
    assert {rules.FIREWALL, rules.INSTANCE, "linode:index/lkeCluster:LkeCluster", "kubernetes:apps/v1:Deployment",
            rules.K8S_INGRESS} <= found
    ingresses = [v for v in views(program_runs[stack]) if v.type == rules.K8S_INGRESS]
    if settings_of(stack).expectations.tls:
        assert all(v.inputs["spec"].get("tls") for v in ingresses)
    # Secretness survives the offline engine: at least the provider-marked root passwords or user data.
    assert all(view.secret_paths is not None for view in views(program_runs[stack]))


@pytest.mark.parametrize("stack", STACKS)
def test_a_firewall_of_the_stack_opened_to_the_internet_is_caught(stack: str, program_runs: ProgramRuns) -> None:
    real = next(view for view in views(program_runs[stack]) if view.type == rules.FIREWALL)
    opened = dataclasses.replace(real, inputs={
        **real.inputs, "inboundPolicy": "ACCEPT",
        "inbounds": [*(real.inputs.get("inbounds") or []),
                     {"label": "ssh-anywhere", "action": "ACCEPT", "protocol": "TCP", "ports": "22",
                      "ipv4s": ["0.0.0.0/0"], "ipv6s": ["::/0"]}],
    })
    result = rules.evaluate([opened], context(stack, BudgetSettings(monthly_eur=1000)))
    assert {f.rule for f in result.mandatory} == {"firewall-inbound-drop", "no-public-data-or-admin-port"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_over_a_tiny_budget_is_caught(stack: str, program_runs: ProgramRuns) -> None:
    result = rules.evaluate(views(program_runs[stack]), context(stack, BudgetSettings(monthly_eur=1)))
    assert [f.rule for f in result.mandatory] == ["monthly-cost-within-budget"]
    assert f"stack {stack} is estimated at" in result.mandatory[0].message


def test_preview_of_all_stacks_passes_and_renders_every_format(tmp_path: Path) -> None:
    markdown, as_json = tmp_path / "preview.md", tmp_path / "preview.json"
    assert preview.main(["--all", "--format", "markdown", "--output", str(markdown)]) == 0
    text = markdown.read_text()
    assert text.startswith(preview.COMMENT_MARKER)
    assert all(f"### {stack}" in text for stack in STACKS) and ":x:" not in text
    last = STACKS[-1]
    assert preview.main(["--stack", last, "--format", "json", "--output", str(as_json)]) == 0
    report = json.loads(as_json.read_text())["stacks"][0]
    assert report["stack"] == last and report["failed"] is False and report["cost"]["within_budget"]
    assert report["resources"] and report["counts"]
    assert report["sizing"]["VMs bastion"].startswith("1 x g6-nanode-1 (1 vCPU/1 GB)")
    assert set(report["sizing"]) >= {"NodeBalancers", "Block Storage", "Compute paid for"}
    assert preview.main(["--stack", STACKS[0], "--format", "text", "--output", str(tmp_path / "one.txt")]) == 0
    assert "within budget" in (tmp_path / "one.txt").read_text()


def test_preview_exits_non_zero_on_a_budget_overrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview, "stack_budget", lambda stack: BudgetSettings(monthly_eur=1))
    out = tmp_path / "preview.md"
    assert preview.main(["--stack", STACKS[0], "--format", "markdown", "--output", str(out)]) == 1
    assert ":x: fails" in out.read_text() and "monthly-cost-within-budget" in out.read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_credentials_rule_sees_the_data_vms_passwords_and_finds_them_secret(
    stack: str, program_runs: ProgramRuns
) -> None:
    data_vms = [v for v in views(program_runs[stack]) if v.type == rules.INSTANCE and v.in_data_tier]
    assert data_vms
    for view in data_vms:
        # The rendered cloud-config of every data VM carries a credential (server or exporter
        # password, Erlang cookie): the rule must recognise it, and the program must keep it secret.
        assert "metadatas[0].userData" in rules.credential_paths(view), view.name
        assert view.is_secret("metadatas[0].userData"), view.name
