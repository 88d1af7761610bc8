"""Database clients survive the loss of any one Galera node: they dial a proxy, not node 0.

Per stack, from the whole program under mocks: where MariaDB is a Galera cluster (prod), the
application's DATABASE_URL names the proxy's Service; the proxy's configuration lists every node
at the address pods dial, node 0 active and the others backup, checked on each node's health
port; the nodes run that health check, admit it from the app side only, and carry the proxy's
name in their certificates (TLS passes through). The other topologies have no proxy; staging's
replica is offered read-only as DATABASE_READ_URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from components.data.mariadb.config import DATABASE_PROXY_NAME, GALERA_HEALTH_PORT, MARIADB_PORT
from tests.helpers import STACKS, ProgramRuns, firewall_of, role_vms, settings_of, user_data, vpc_address
from tools.offline import ProgramRun, ResourceRecord, unwrap_secret

GALERA_STACKS = [stack for stack in STACKS if settings_of(stack).data.mariadb.nodes >= 3]
OTHER_STACKS = [stack for stack in STACKS if stack not in GALERA_STACKS]


def test_prod_is_a_galera_stack() -> None:
    assert "prod" in GALERA_STACKS and OTHER_STACKS


def k8s(run: ProgramRun, kind: str, name: str) -> list[ResourceRecord]:
    return [r for r in run.resources if r.type.endswith(f":{kind}") and r.inputs["metadata"]["name"] == name]


def connection_settings(run: ProgramRun) -> dict[str, str]:
    (secret,) = k8s(run, "Secret", "data-connections")
    data, _ = unwrap_secret(secret.inputs["stringData"])
    return dict(data)


def proxy_host(stack: str) -> str:
    return f"{DATABASE_PROXY_NAME}.{settings_of(stack).kubernetes.namespace.name}.svc.cluster.local"


def mariadb_nodes(run: ProgramRun) -> list[ResourceRecord]:
    return sorted(role_vms(run, "mariadb"), key=lambda vm: vm.inputs["label"])


def dialled(stack: str, vm: ResourceRecord) -> str:
    """The address pods (and the proxy) reach a node at on this stack's data path."""
    if settings_of(stack).kubernetes.data_path == "vpc":
        return vpc_address(vm)
    return str(vm.outputs["privateIpAddress"])


def proxy_config(run: ProgramRun) -> str:
    (config_map,) = k8s(run, "ConfigMap", DATABASE_PROXY_NAME)
    assert config_map.type == "kubernetes:core/v1:ConfigMap" and config_map.name == "app-configmap-database-proxy"
    return str(config_map.inputs["data"]["haproxy.cfg"])


def policy(run: ProgramRun, name: str) -> dict[str, Any]:
    (found,) = k8s(run, "NetworkPolicy", name)
    spec: dict[str, Any] = found.inputs["spec"]
    return spec


# --- Galera: the proxy ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_database_url_names_the_proxy_with_full_certificate_verification(stack: str, program_runs: ProgramRuns) -> None:
    settings = connection_settings(program_runs[stack])
    url = urlsplit(settings["DATABASE_URL"])
    assert (url.scheme, url.hostname, url.port) == ("mysql", proxy_host(stack), MARIADB_PORT)
    query = parse_qs(url.query)
    assert query["ssl-mode"] == ["VERIFY_IDENTITY"] and query["ssl-ca"] == ["/etc/platform-ca/ca.crt"]
    assert "DATABASE_READ_URL" not in settings  # every Galera node takes writes: one URL


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_proxy_lists_every_node_at_the_address_pods_dial_node_zero_active(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    config = proxy_config(run)
    servers = [line.split() for line in config.splitlines() if line.strip().startswith("server ")]
    nodes = mariadb_nodes(run)
    assert len(nodes) == settings_of(stack).data.mariadb.nodes >= 3
    assert [(s[1], s[2]) for s in servers] == [
        (vm.inputs["label"], f"{dialled(stack, vm)}:{MARIADB_PORT}") for vm in nodes
    ]
    assert "backup" not in servers[0] and all(s[-1] == "backup" for s in servers[1:])
    assert all("check" in s for s in servers)
    assert f"default-server port {GALERA_HEALTH_PORT} inter 2s fall 2 rise 3 on-marked-down shutdown-sessions" in (
        config
    )
    assert "option httpchk" in config and "http-check expect status 200" in config


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_proxy_runs_two_hardened_replicas_behind_a_cluster_ip_service(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    (deployment,) = k8s(run, "Deployment", DATABASE_PROXY_NAME)
    spec = deployment.inputs["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("haproxy:3.") and container["image"].count(".") == 2
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "monitor"}
    assert {"name": "monitor", "containerPort": 8404, "protocol": "TCP"} in container["ports"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["affinity"]["podAntiAffinity"]
    assert "hostAliases" not in pod  # it dials addresses, never names
    (service,) = k8s(run, "Service", DATABASE_PROXY_NAME)
    assert service.inputs["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service.inputs["spec"]["ports"]] == [MARIADB_PORT]
    (budget,) = k8s(run, "PodDisruptionBudget", DATABASE_PROXY_NAME)
    assert budget.inputs["spec"]["minAvailable"] == 1


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_galera_nodes_run_the_health_check_and_admit_it_from_the_app_side_only(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    for vm in mariadb_nodes(run):
        doc = yaml.safe_load(user_data(vm))
        assert ["systemctl", "enable", "--now", "galera-health.socket"] in doc["runcmd"], vm.name
        paths = {f["path"] for f in doc["write_files"]}
        assert {
            "/usr/local/lib/platform/galera-health",
            "/etc/systemd/system/galera-health.socket",
            "/etc/systemd/system/galera-health@.service",
        } <= paths
        rules = {rule["label"]: rule for rule in firewall_of(run, vm).inputs["inbounds"]}
        health = rules["galera-health-from-app"]
        assert health["ports"] == str(GALERA_HEALTH_PORT)
        assert health["ipv4s"] == rules["mariadb-from-app"]["ipv4s"]
        others = [label for label, rule in rules.items() if str(GALERA_HEALTH_PORT) in rule["ports"].split(",")]
        assert others == ["galera-health-from-app"], vm.name


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_every_galera_node_certificate_also_names_the_proxy(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    requests = {r.name: r for r in run.of_type("tls:index/certRequest:CertRequest")}
    for index, vm in enumerate(mariadb_nodes(run)):
        assert requests[f"mariadb-{index}-tls-csr"].inputs["dnsNames"] == [vm.inputs["label"], proxy_host(stack)]
    for name, request in requests.items():
        if not name.startswith("mariadb-"):
            assert proxy_host(stack) not in request.inputs.get("dnsNames", []), name


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_app_pods_reach_the_database_only_through_the_proxy(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    galera = {dialled(stack, vm) for vm in mariadb_nodes(run)}
    data_egress = policy(run, "allow-data-tier-egress")
    for rule in data_egress["egress"]:
        ports = {p["port"] for p in rule["ports"]}
        cidrs = {peer["ipBlock"]["cidr"] for peer in rule["to"]}
        assert not (MARIADB_PORT in ports and cidrs & {f"{a}/32" for a in galera}), rule
    not_proxy = {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": [DATABASE_PROXY_NAME]}
    assert data_egress["podSelector"]["matchExpressions"] == [not_proxy]
    proxy_pods = {"matchLabels": {"app.kubernetes.io/name": DATABASE_PROXY_NAME,
                                  "app.kubernetes.io/instance": DATABASE_PROXY_NAME}}
    to_proxy = policy(run, f"allow-app-egress-to-{DATABASE_PROXY_NAME}")
    assert to_proxy["podSelector"] == data_egress["podSelector"]
    assert to_proxy["egress"] == [
        {"to": [{"podSelector": proxy_pods}], "ports": [{"protocol": "TCP", "port": MARIADB_PORT}]}
    ]
    into_proxy = policy(run, f"allow-app-to-{DATABASE_PROXY_NAME}")
    assert into_proxy["podSelector"] == proxy_pods and into_proxy["policyTypes"] == ["Ingress"]
    assert into_proxy["ingress"] == [
        {"from": [{"podSelector": data_egress["podSelector"]}], "ports": [{"protocol": "TCP", "port": MARIADB_PORT}]}
    ]


@pytest.mark.parametrize("stack", GALERA_STACKS)
def test_the_proxy_reaches_each_node_on_the_client_and_health_ports_and_nothing_else(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    proxy_pods = {"app.kubernetes.io/name": DATABASE_PROXY_NAME, "app.kubernetes.io/instance": DATABASE_PROXY_NAME}
    own = f"allow-{DATABASE_PROXY_NAME}-to-data-tier"
    out = policy(run, own)
    assert out["podSelector"] == {"matchLabels": proxy_pods} and out["policyTypes"] == ["Egress"]
    allowed = {
        (peer["ipBlock"]["cidr"], p["port"]) for rule in out["egress"] for peer in rule["to"] for p in rule["ports"]
    }
    if settings_of(stack).kubernetes.data_path == "vpc":
        expected = {
            (f"{vpc_address(vm)}/32", port) for vm in mariadb_nodes(run) for port in (MARIADB_PORT, GALERA_HEALTH_PORT)
        }
    else:
        expected = {("192.168.128.0/17", port) for port in (MARIADB_PORT, GALERA_HEALTH_PORT)}
    assert allowed == expected
    # No other policy lets the proxy pods out: not the app's data egress, not DNS.
    labels = {**proxy_pods, "app.kubernetes.io/part-of": "platform-infra"}
    checked = []
    for record in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        name, spec = record.inputs["metadata"]["name"], record.inputs["spec"]
        if "Egress" not in spec["policyTypes"] or name in (own, "default-deny-all"):
            continue
        assert not selects(spec["podSelector"], labels), name
        checked.append(name)
    assert {"allow-dns-egress", "allow-data-tier-egress"} <= set(checked)


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics for matchLabels and In/NotIn expressions."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] == "NotIn" and value in expression["values"]:
            return False
    return True


# --- the other topologies: unchanged but for the replica's read-only URL ---------------------------


@pytest.mark.parametrize("stack", OTHER_STACKS)
def test_without_galera_there_is_no_proxy_and_the_url_names_node_zero(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    assert not [r for r in run.resources if r.type.startswith("kubernetes:") and DATABASE_PROXY_NAME in r.name]
    nodes = mariadb_nodes(run)
    settings = connection_settings(run)
    assert urlsplit(settings["DATABASE_URL"]).hostname == nodes[0].inputs["label"]
    if len(nodes) == 2:
        read = urlsplit(settings["DATABASE_READ_URL"])
        assert read.hostname == nodes[1].inputs["label"] and read.port == MARIADB_PORT
        assert read.query == urlsplit(settings["DATABASE_URL"]).query
    else:
        assert "DATABASE_READ_URL" not in settings
    for vm in nodes:
        assert "galera-health" not in user_data(vm)
        labels = {rule["label"] for rule in firewall_of(run, vm).inputs["inbounds"]}
        assert "galera-health-from-app" not in labels
    egress = policy(run, "allow-data-tier-egress")
    assert egress["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "platform-infra"}}
    assert MARIADB_PORT in {p["port"] for rule in egress["egress"] for p in rule["ports"]}
    assert policy(run, "allow-dns-egress")["podSelector"] == {}
