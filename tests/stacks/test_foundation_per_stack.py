"""The whole program per stack under mocks: what the foundation promises holds in every stack."""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import json
import re

import pulumi
import pytest

from tests.helpers import (
    DATA_ROLES,
    STACKS,
    ProgramRuns,
    firewall_of,
    instances,
    role_of,
    settings_of,
    stacks_of_kind,
    vpc_address,
)
from tools.offline import run_program_expecting_error

TAGGABLE = {
    "linode:index/instance:Instance",
    "linode:index/firewall:Firewall",
    "linode:index/lkeCluster:LkeCluster",
    "linode:index/nodeBalancer:NodeBalancer",
    "linode:index/volume:Volume",
}
def accepts_tags(type_: str) -> bool:
    """Whether the installed pulumi_linode resource class takes a `tags` argument."""
    module_name = type_.split(":")[1].split("/")[1]  # linode:index/vpcSubnet:VpcSubnet -> vpcSubnet
    class_name = type_.rsplit(":", 1)[1]
    module = importlib.import_module(f"pulumi_linode.{re.sub(r'(?<!^)(?=[A-Z])', '_', module_name).lower()}")
    return "tags" in inspect.signature(getattr(module, f"{class_name}Args").__init__).parameters


def test_the_taggable_list_matches_the_sdk() -> None:
    for type_ in TAGGABLE:
        assert accepts_tags(type_), type_
    assert not accepts_tags("linode:index/vpc:Vpc")


@pytest.mark.parametrize("stack", STACKS)
def test_every_linode_resource_is_tagged_with_project_env_and_role(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    taggable_here = {r.type for r in run.resources if r.type.startswith("linode:") and accepts_tags(r.type)}
    assert taggable_here <= TAGGABLE | {"linode:index/objectStorageBucket:ObjectStorageBucket"}
    tagged = [r for r in run.resources if r.type.startswith("linode:") and accepts_tags(r.type)]
    assert tagged, "the program declares taggable resources"
    for record in tagged:
        tags = record.inputs.get("tags", [])
        assert "platform-infra" in tags, record.name
        assert f"env:{stack}" in tags, record.name
        assert any(t.startswith("role:") for t in tags), record.name


@pytest.mark.parametrize("stack", STACKS)
def test_every_firewall_drops_inbound_by_default(stack: str, program_runs: ProgramRuns) -> None:
    for firewall in program_runs[stack].of_type("linode:index/firewall:Firewall"):
        assert firewall.inputs["inboundPolicy"] == "DROP", firewall.name


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_bastion_takes_ssh_from_outside_the_vpc(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    bastion = next(i for i in instances(run) if role_of(i) == "bastion")
    bastion_source = f"{vpc_address(bastion)}/32"
    for instance in instances(run):
        ssh_rules = [r for r in firewall_of(run, instance).inputs.get("inbounds", []) if r.get("ports") == "22"]
        assert ssh_rules, f"{instance.name} has an SSH rule"
        sources = [s for rule in ssh_rules for s in rule.get("ipv4s", []) + rule.get("ipv6s", [])]
        if instance is bastion:
            assert bastion_source not in sources
            assert "0.0.0.0/0" not in sources or not settings_of(stack).expectations.narrow_admin_access
        else:
            assert sources == [bastion_source], instance.name


@pytest.mark.parametrize("stack", STACKS)
def test_every_vm_sits_on_a_unique_planned_address_inside_its_tier_subnet(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    subnets = {r.inputs["label"].rsplit("-", 1)[-1]: r for r in run.of_type("linode:index/vpcSubnet:VpcSubnet")}
    addresses = [vpc_address(i) for i in instances(run)]
    assert len(addresses) == len(set(addresses))
    for instance in instances(run):
        tier = "admin" if role_of(instance) == "bastion" else "data"
        vpc = next(i for i in instance.inputs["interfaces"] if i["purpose"] == "vpc")
        assert int(vpc["subnetId"]) == int(subnets[tier].id)
        assert ipaddress.ip_address(vpc_address(instance)) in ipaddress.ip_network(subnets[tier].inputs["ipv4"])
        assert instance.inputs["interfaceGeneration"] == "legacy_config"


@pytest.mark.parametrize("stack", STACKS)
def test_every_child_resource_has_a_component_parent(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    urns = run.by_urn()
    for record in run.resources:
        if record.type.startswith(("linode:", "random:", "tls:")):
            assert record.parent in urns, f"{record.type} {record.name} is not parented to a component"


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_never_appear_in_plain_outputs(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    secrets = [r.outputs["result"] for r in run.of_type("random:index/randomPassword:RandomPassword")]
    plain = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs})
    for secret in secrets:
        assert secret not in plain


@pytest.mark.parametrize("stack", stacks_of_kind("production"))
def test_production_data_vms_are_protected_and_keep_their_disks_on_template_changes(
    stack: str, program_runs: ProgramRuns
) -> None:
    data_vms = [i for i in instances(program_runs[stack]) if role_of(i) in DATA_ROLES]
    assert data_vms, f"{stack} has data VMs"
    for vm in data_vms:
        assert vm.protect, vm.name
        assert "metadatas" in vm.ignore_changes, vm.name


@pytest.mark.parametrize("stack", stacks_of_kind("production"))
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"region": "mars-1"}, "platform-infra:region: got 'mars-1'"),
        ({"admin_cidrs": ["0.0.0.0/0"]}, "platform-infra:admin_cidrs: got '0.0.0.0/0'"),
        ({"max_instances": 1}, "platform-infra:max_instances: got 1"),
    ],
)
def test_bad_config_stops_the_program_before_any_resource_exists(
    stack: str, overrides: dict[str, object], expected: str
) -> None:
    error, registered = run_program_expecting_error(stack, overrides)
    # RunError is what the Pulumi language host prints as one message, without a traceback.
    assert isinstance(error, pulumi.RunError)
    assert str(error).startswith(f"invalid stack config for {stack}:\n" + expected)
    assert registered == []


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_name_the_way_in(stack: str, program_runs: ProgramRuns) -> None:
    outputs = program_runs[stack].outputs
    assert outputs["stack"] == stack
    assert outputs["ssh_jump"].startswith("ssh -J ops@")
    assert ipaddress.ip_address(outputs["bastion_vpc_address"]) in ipaddress.ip_network(outputs["subnets"]["admin"])


@pytest.mark.parametrize("stack", STACKS)
def test_missing_linode_token_stops_every_stack_before_any_resource(stack: str) -> None:
    from tools.offline import mocked_runtime, stack_config

    config, secret_keys = stack_config(stack)
    del config["linode:token"]
    secret_keys.remove("linode:token")
    with mocked_runtime(stack, config, secret_keys) as monitor:
        from components.settings.stack_config import load_stack_config

        with pytest.raises(pulumi.RunError) as caught:
            load_stack_config()
    assert str(caught.value) == (
        f"invalid stack config for {stack}:\nlinode:token: missing; allowed: a secret, needed because the LKE "
        "cluster's provider (api_version v4beta) reads it; set it with "
        "`pulumi config set --secret linode:token <value>`"
    )
    assert monitor.records == []


@pytest.mark.parametrize("stack", stacks_of_kind("development"))
def test_built_workload_needs_the_registry_password(stack: str) -> None:
    from components.settings import load_settings
    from components.settings.stack_config import missing_secrets
    from tools.offline import stack_values

    values = stack_values(stack)
    kubernetes = json.loads(values["kubernetes"])
    kubernetes["registry"] = {"server": "registry.example.com", "username": "ci"}
    api = kubernetes["workloads"][0]
    api.pop("image", None)
    api["build"] = {"context": "app", "repository": "registry.example.com/api", "tag": "1.0.0"}
    values["kubernetes"] = json.dumps(kubernetes)
    settings = load_settings("platform-infra", stack, values)
    assert missing_secrets(settings, {"linode:token"}) == [
        "platform-infra:registry_password: missing; allowed: a secret, needed because a workload is built and "
        "pushed to the registry; set it with `pulumi config set --secret platform-infra:registry_password <value>`"
    ]
    assert missing_secrets(settings, {"registry_password", "linode:token"}) == []


@pytest.mark.parametrize("stack", stacks_of_kind("development"))
@pytest.mark.parametrize("key", ["registry_password", "alert_webhook_url", "linode:token"])
def test_a_secret_written_in_plain_text_is_refused(stack: str, key: str) -> None:
    from tools.offline import PROJECT, mocked_runtime, stack_config

    config, secret_keys = stack_config(stack)
    full = key if ":" in key else f"{PROJECT}:{key}"
    config[full] = "written-in-the-clear"
    if full in secret_keys:
        secret_keys.remove(full)
    with mocked_runtime(stack, config, secret_keys) as monitor:
        from components.settings.stack_config import load_stack_config

        with pytest.raises(pulumi.RunError) as caught:
            load_stack_config()
    assert str(caught.value) == (
        f"invalid stack config for {stack}:\n{full}: got a plain-text value; allowed: a secret only, set it with "
        f"`pulumi config set --secret {full} <value>`"
    )
    assert "written-in-the-clear" not in str(caught.value)
    assert monitor.records == []


@pytest.mark.parametrize("stack", STACKS)
def test_stack_files_hold_no_secret_in_plain_text(stack: str) -> None:
    import yaml

    from components.settings.stack_config import PROJECT_SECRET_KEYS, PROVIDER_SECRET_KEYS
    from tools.offline import ROOT

    config = (yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}).get("config") or {}
    for key in [*(f"platform-infra:{k}" for k in PROJECT_SECRET_KEYS), *PROVIDER_SECRET_KEYS]:
        if key in config:
            assert isinstance(config[key], dict) and set(config[key]) == {"secure"}, key
