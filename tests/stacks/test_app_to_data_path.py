"""How pods reach the data VMs, per stack: the firewalls, the NetworkPolicies and the pods agree."""

from __future__ import annotations

import ipaddress

import pytest

from tests.harness import ResourceRecord, load_stack_settings, unwrap_secret
from tests.stacks.test_foundation_per_stack import firewall_of, instances, program, role_of

DATA_ROLES = ("mariadb", "redis", "rabbitmq")
CLIENT_RULES = ("mariadb-from-app", "redis-from-app", "sentinel-from-app", "rabbitmq-from-app", "amqp-from-app")


def deployments(stack: str) -> list[ResourceRecord]:
    return program(stack).of_type("kubernetes:apps/v1:Deployment")


def host_aliases(deployment: ResourceRecord) -> dict[str, str]:
    spec, _ = unwrap_secret(deployment.inputs["spec"])
    aliases = spec["template"]["spec"].get("hostAliases", [])
    return {alias["hostnames"][0]: alias["ip"] for alias in aliases}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_pods_pin_every_data_node_name_to_an_address_they_can_reach(stack: str) -> None:
    settings = load_stack_settings(stack)
    vms = {vm.inputs["label"]: vm for vm in instances(program(stack)) if role_of(vm) in DATA_ROLES}
    assert vms
    for deployment in deployments(stack):
        aliases = host_aliases(deployment)
        assert set(aliases) == set(vms), deployment.name
        for name, address in aliases.items():
            vm = vms[name]
            if settings.kubernetes.data_path == "vpc":
                vpc = next(i for i in vm.inputs["interfaces"] if i["purpose"] == "vpc")["ipv4"]["vpc"]
                assert address == vpc
            else:
                assert vm.inputs["privateIp"] is True
                assert address == vm.outputs["privateIpAddress"]
                assert ipaddress.ip_address(address) in ipaddress.ip_network("192.168.128.0/17")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_data_firewalls_admit_the_cluster_only_on_client_and_metrics_ports(stack: str) -> None:
    settings = load_stack_settings(stack)
    expected = (
        [str(settings.network.subnets["app"])] if settings.kubernetes.data_path == "vpc" else ["192.168.128.0/17"]
    )
    run = program(stack)
    for vm in instances(run):
        if role_of(vm) not in DATA_ROLES:
            continue
        for rule in firewall_of(run, vm).inputs["inbounds"]:
            sources = rule.get("ipv4s", []) + rule.get("ipv6s", [])
            if rule["label"].endswith(("-from-app", "-metrics")):
                # Clients and the Prometheus scrape come from the cluster, the same way.
                assert sources == expected, (vm.name, rule["label"])
            else:
                # Peers and the bastion never come from the private network.
                assert "192.168.128.0/17" not in sources, (vm.name, rule["label"])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_prometheus_scrapes_data_nodes_by_the_names_the_pods_use(stack: str) -> None:
    settings = load_stack_settings(stack)
    assert settings.operations.monitoring.enabled, "every stack runs monitoring (light in dev)"
    releases = program(stack).of_type("kubernetes:helm.sh/v3:Release")
    (release,) = [r for r in releases if r.inputs["name"] == "monitoring"]
    values, _ = unwrap_secret(release.inputs["values"])
    spec = values["prometheus"]["prometheusSpec"]
    aliases = {a["hostnames"][0]: a["ip"] for a in spec["hostAliases"]}
    targets = {
        target.rsplit(":", 1)[0]
        for job in spec["additionalScrapeConfigs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == set(aliases)
    (app,) = deployments(stack)[:1]
    assert aliases == host_aliases(app)
