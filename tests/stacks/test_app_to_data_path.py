"""How pods reach the data VMs, per stack: the firewalls, the NetworkPolicies and the pods agree."""

from __future__ import annotations

import ipaddress

import pytest

from components.data.mariadb.config import DATABASE_PROXY_NAME
from tests.helpers import DATA_ROLES, STACKS, ProgramRuns, firewall_of, instances, role_of
from tools.offline import ProgramRun, ResourceRecord, lke_node_private_ip, load_stack_settings, unwrap_secret

CLIENT_RULES = ("mariadb-from-app", "redis-from-app", "sentinel-from-app", "rabbitmq-from-app", "amqp-from-app")


def deployments(run: ProgramRun) -> list[ResourceRecord]:
    """The application's Deployments (the database proxy's excepted: it dials addresses, not names)."""
    found = run.of_type("kubernetes:apps/v1:Deployment")
    return [d for d in found if d.inputs["metadata"]["name"] != DATABASE_PROXY_NAME]


def host_aliases(deployment: ResourceRecord) -> dict[str, str]:
    spec, _ = unwrap_secret(deployment.inputs["spec"])
    aliases = spec["template"]["spec"].get("hostAliases", [])
    return {alias["hostnames"][0]: alias["ip"] for alias in aliases}


@pytest.mark.parametrize("stack", STACKS)
def test_pods_pin_every_data_node_name_to_an_address_they_can_reach(stack: str, program_runs: ProgramRuns) -> None:
    settings = load_stack_settings(stack)
    vms = {vm.inputs["label"]: vm for vm in instances(program_runs[stack]) if role_of(vm) in DATA_ROLES}
    assert vms
    for deployment in deployments(program_runs[stack]):
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


def lke_node_sources(run: ProgramRun) -> list[str]:
    """The cluster's nodes' private addresses as /32s (the mocks' answer to getInstances)."""
    (cluster,) = run.of_type("linode:index/lkeCluster:LkeCluster")
    ids = [node["instanceId"] for pool in cluster.outputs["pools"] for node in pool["nodes"]]
    return sorted(f"{lke_node_private_ip(i)}/32" for i in ids)


@pytest.mark.parametrize("stack", STACKS)
def test_data_firewalls_admit_the_cluster_only_on_client_and_metrics_ports(
    stack: str, program_runs: ProgramRuns
) -> None:
    settings = load_stack_settings(stack)
    run = program_runs[stack]
    expected = (
        [str(settings.network.subnets["app"])] if settings.kubernetes.data_path == "vpc" else lke_node_sources(run)
    )
    assert expected
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


@pytest.mark.parametrize("stack", STACKS)
def test_no_data_peer_or_exporter_port_is_open_wider_than_our_own_hosts(stack: str, program_runs: ProgramRuns) -> None:
    # 192.168.128.0/17 is shared by every Linode of every customer in the region: a data firewall
    # admits single hosts (/32: LKE nodes, peers, the bastion) or our own VPC subnets, nothing else.
    settings = load_stack_settings(stack)
    ours = {str(cidr) for cidr in settings.network.subnets.values()}
    run = program_runs[stack]
    checked = 0
    for vm in instances(run):
        if role_of(vm) not in DATA_ROLES:
            continue
        for rule in firewall_of(run, vm).inputs["inbounds"]:
            assert rule["action"] == "ACCEPT" and rule.get("ports"), (vm.name, rule["label"])
            for source in rule.get("ipv4s", []) + rule.get("ipv6s", []):
                network = ipaddress.ip_network(source)
                assert network.num_addresses == 1 or source in ours, (vm.name, rule["label"], source)
                checked += 1
    assert checked


@pytest.mark.parametrize("stack", STACKS)
def test_a_data_path_over_the_shared_private_network_is_encrypted(stack: str, program_runs: ProgramRuns) -> None:
    settings = load_stack_settings(stack)
    if settings.kubernetes.data_path == "private-network":
        assert settings.data.tls, "'no TLS in development' is about the public endpoint"
        assert "data_ca_certificate" in program_runs[stack].outputs


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_data_nodes_by_the_names_the_pods_use(stack: str, program_runs: ProgramRuns) -> None:
    settings = load_stack_settings(stack)
    assert settings.operations.monitoring.enabled, "every stack runs monitoring (light in dev)"
    releases = program_runs[stack].of_type("kubernetes:helm.sh/v3:Release")
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
    (app,) = deployments(program_runs[stack])[:1]
    assert aliases == host_aliases(app)


@pytest.mark.parametrize("stack", STACKS)
def test_every_vm_routes_through_its_vpc_interface_with_1_1_nat(stack: str, program_runs: ProgramRuns) -> None:
    # A non-primary VPC interface gets no route to the VPC's other subnets (Cloud Manager), so the
    # bastion could not reach the data subnet nor the cluster the data VMs.
    vms = instances(program_runs[stack])
    assert vms
    for vm in vms:
        vpc, *others = vm.inputs["interfaces"]
        assert (vpc["purpose"], vpc["primary"], vpc["ipv4"]["nat11"]) == ("vpc", True, "any"), vm.name
        if vm.inputs.get("privateIp"):
            # The private-network IPv4 is configured on a public-purpose interface only.
            assert [(i["purpose"], i["primary"]) for i in others] == [("public", False)], vm.name
        else:
            assert others == [], vm.name
