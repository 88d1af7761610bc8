"""A data service is a plug-in: one registry entry makes every other tier take it in.

A fake fourth service ("cache", memcached-like) is registered in this test only, with its own
settings model, cluster and connection. The whole program then gives it addresses in the data
subnet, a firewall with its client port open to the app tier, an exporter scraped by Prometheus,
an alert group, a connection URL in the application's Secret, a NetworkPolicy egress port and a
stack export, without any module outside this file naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random
import pytest

from components.data.cloud_init import TlsMaterial
from components.data.connections import ServiceConnection, TlsFiles
from components.data.placement import DataCluster, password
from components.data.plugin import DataService, Exporter, alert
from components.data.services import SERVICES
from components.foundation.firewall import RuleInput
from components.settings import StackSettings
from components.settings import stack_config as stack_config_module
from components.settings.data import DataSettings, ServiceSettings
from tests.helpers import firewall_of, role_vms, vpc_address
from tools.offline import ProgramRun, run_program, unwrap_secret

CACHE_PORT = 11211
CACHE_EXPORTER_PORT = 9150


class CacheSettings(ServiceSettings):
    nodes: int = 2
    plan: str = "g6-nanode-1"


class DataWithCache(DataSettings):
    cache: CacheSettings = CacheSettings()


@dataclass(frozen=True)
class CacheConnection(ServiceConnection):
    port: int

    def client_ports(self) -> tuple[int, ...]:
        return (self.port,)

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        return {"CACHE_URL": ",".join(f"{name_of(host)}:{self.port}" for host in self.hosts)}

    def exports(self) -> dict[str, Any]:
        return {"hosts": list(self.hosts), "port": self.port, "password": self.password}


class CacheCluster(DataCluster):
    type_token = "platform:data:CacheCluster"
    title = "Cache"

    def credentials(self, name: str) -> dict[str, random.RandomPassword]:
        self.auth = password(f"{name}-auth-password", self)
        return {"auth": self.auth}

    def node_document(self, index: int, secrets: dict[str, str], tls: TlsMaterial | None) -> dict[str, Any]:
        return {"packages": ["memcached"], "runcmd": [["systemctl", "enable", "--now", "memcached"]]}

    def firewall_rules(self) -> list[RuleInput]:
        return [self.placement.app_rule("cache-from-app", str(CACHE_PORT))]

    def make_connection(self) -> CacheConnection:
        return CacheConnection(
            hosts=tuple(self.placement.addresses),
            password=pulumi.Output.secret(self.auth.result),
            tls=self.tls,
            port=CACHE_PORT,
        )

    def outputs(self) -> dict[str, Any]:
        return {"hosts": list(self.connection.hosts)}


CACHE = DataService(
    role="cache",
    title="Cache",
    block=3,
    unit="memcached.service",
    tls_files=TlsFiles("/etc/memcached/ca.pem", "/etc/memcached/server.crt", "/etc/memcached/server.key"),
    cluster=CacheCluster,
    exporter=Exporter(CACHE_EXPORTER_PORT, "memcached", lambda _address: {"packages": ["memcached-exporter"]}),
    alert_rules=lambda thresholds, nodes: [
        alert("CacheDown", 'up{job="memcached"} == 0', "5m", "critical", "cache down", "memcached is down")
    ],
)


@pytest.fixture(scope="module")
def run_with_cache() -> ProgramRun:
    load = stack_config_module.load_settings

    def load_with_cache(*args: Any, **kwargs: Any) -> StackSettings:
        settings = load(*args, **kwargs)
        data = DataWithCache(**dict(settings.data))
        return settings.model_copy(update={"data": data})

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SERVICES, "cache", CACHE)
        patch.setattr(stack_config_module, "load_settings", load_with_cache)
        return run_program("dev")


def _values(run: ProgramRun, chart: str) -> dict[str, Any]:
    [release] = [r for r in run.of_type("kubernetes:helm.sh/v3:Release") if chart in r.inputs["chart"]]
    values, _ = unwrap_secret(release.inputs["values"])
    return json.loads(values) if isinstance(values, str) else values


def test_the_registered_service_gets_its_planned_addresses(run_with_cache: ProgramRun) -> None:
    vms = role_vms(run_with_cache, "cache")
    assert len(vms) == 2
    [mariadb_vm, *_] = role_vms(run_with_cache, "mariadb")
    data_subnet = vpc_address(mariadb_vm).rsplit(".", 1)[0]
    # block 3 of the data subnet: offsets 40..49, after MariaDB, Redis and RabbitMQ
    assert sorted(vpc_address(vm) for vm in vms) == [f"{data_subnet}.40", f"{data_subnet}.41"]


def test_the_registered_service_is_firewalled_like_every_data_service(run_with_cache: ProgramRun) -> None:
    [vm, _] = role_vms(run_with_cache, "cache")
    firewall = firewall_of(run_with_cache, vm)
    rules = {rule["label"]: rule for rule in firewall.inputs["inbounds"]}
    assert firewall.inputs["inboundPolicy"] == "DROP"
    assert rules["cache-from-app"]["ports"] == str(CACHE_PORT)
    assert rules["cache-metrics"]["ports"] == f"9100,{CACHE_EXPORTER_PORT}"
    assert any(label.startswith("ssh") for label in rules)


def test_the_registered_service_is_scraped_and_alerted_on(run_with_cache: ProgramRun) -> None:
    values = _values(run_with_cache, "kube-prometheus-stack")
    jobs = {job["job_name"]: job for job in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]}
    targets = jobs["memcached"]["static_configs"][0]["targets"]
    assert len(targets) == 2 and all(t.endswith(f":{CACHE_EXPORTER_PORT}") for t in targets)
    groups = values["additionalPrometheusRulesMap"]["platform"]["groups"]
    assert "platform-cache" in {group["name"] for group in groups}


def test_the_registered_service_reaches_the_app_and_the_stack_outputs(run_with_cache: ProgramRun) -> None:
    assert run_with_cache.outputs["data_connections"]["cache"]["port"] == CACHE_PORT
    [secret] = [
        r
        for r in run_with_cache.of_type("kubernetes:core/v1:Secret")
        if "DATABASE_URL" in (unwrap_secret(r.inputs.get("stringData"))[0] or {})
    ]
    assert "CACHE_URL" in unwrap_secret(secret.inputs["stringData"])[0]
    egress_ports = {
        port["port"]
        for policy in run_with_cache.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        for rule in policy.inputs["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }
    assert CACHE_PORT in egress_ports


def test_the_registration_lasts_only_for_the_run() -> None:
    assert "cache" not in SERVICES
    assert stack_config_module.load_settings.__module__ == "components.settings"
