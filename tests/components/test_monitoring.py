"""Monitoring and logging stacks under mocks, per stack; Alertmanager config checked by amtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.data.redis.config import REDIS_PASSWORD_SCRIPT
from components.data.services import SERVICES, stack_address_plan
from components.operations import LogPushCredentials, ObservabilityArgs, build_observability, log_push_url
from components.operations.alert_rules import alert_names
from components.operations.exporters import NODE_JOB, exporters_cloud_config
from components.operations.logging import LoggingStack, LoggingStackArgs, journal_shipping_cloud_config
from components.operations.monitoring import (
    CHART,
    DASHBOARD_LABEL,
    alertmanager_config,
    platform_dashboard,
    scrape_configs,
)
from components.settings import StackSettings
from components.settings.operations import LoggingSettings, ReceiverSettings
from components.settings.stack_config import StackSecrets
from tests.helpers import STACKS
from tools.offline import assert_valid_cloud_config, is_secret, load_stack_settings, run_component, unwrap_secret

RELEASE = "kubernetes:helm.sh/v3:Release"


def settings_for(stack: str) -> StackSettings:
    return load_stack_settings(stack)


def _provider() -> Any:
    import pulumi_kubernetes as k8s

    return k8s.Provider("k8s", kubeconfig="apiVersion: v1\nkind: Config\n")


def _build(stack: str, webhook: str | None = None) -> tuple[Any, list[Any]]:
    settings = settings_for(stack)
    secrets = StackSecrets({"alert_webhook_url": pulumi.Output.secret(webhook)} if webhook else {})

    def build() -> Any:
        return build_observability(
            ObservabilityArgs(
                settings=settings,
                secrets=secrets,
                plan=stack_address_plan(settings.network),
                kubernetes_provider=_provider(),
                ingress_class="traefik",
                cluster_issuer=None,
                log_push=LogPushCredentials("log-push") if log_push_url(settings) else None,
                node_names={},
                host_aliases=(),
            )
        )

    return run_component(build, stack=stack)


def _release(records: list[Any], chart: str) -> Any:
    """The release installing `chart` (its vendored archive: vendor/charts/<chart>-<version>.tgz)."""
    return next(
        r
        for r in records
        if r.type == RELEASE and r.inputs["chart"] == f"vendor/charts/{chart}-{r.inputs['version']}.tgz"
    )


def _values(record: Any) -> Any:
    """A release's values, unwrapped when they were registered as a secret."""
    return unwrap_secret(record.inputs["values"])[0]


@pytest.mark.parametrize("stack", STACKS)
def test_kube_prometheus_stack_is_pinned_and_scrapes_the_data_vms_over_the_vpc(stack: str) -> None:
    _, records = _build(stack)
    release = _release(records, CHART)
    settings = settings_for(stack)
    assert release.inputs["version"] == settings.operations.monitoring.kube_prometheus_stack_version
    scrape = _values(release)["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]
    jobs = {job["job_name"]: job for job in scrape}
    assert set(jobs) == {NODE_JOB, *(entry.exporter.job for entry in SERVICES.values())}
    mysqld_targets = jobs["mysqld"]["static_configs"][0]["targets"]
    assert len(mysqld_targets) == settings.data.mariadb.nodes
    data_subnet = settings.network.subnets["data"]
    assert all(
        t.split(":")[0].startswith(str(data_subnet.network_address).rsplit(".", 1)[0]) for t in mysqld_targets
    )


@pytest.mark.parametrize("stack", STACKS)
def test_alert_rules_follow_each_stacks_topology_and_backups(stack: str) -> None:
    _, records = _build(stack)
    settings = settings_for(stack)
    rules = _values(_release(records, CHART))["additionalPrometheusRulesMap"]["platform"]
    names = set(alert_names(rules))
    assert {"ServiceDown", "HostHighCpu", "HighErrorRate", "HighLatencyP95", "HostDiskFilling"} <= names
    assert ("GaleraClusterTooSmall" in names) == (settings.data.mariadb.nodes >= 3)
    backups = settings.operations.backups
    assert ("BackupStale" in names) == backups.enabled
    assert ("IncrementalBackupStale" in names) == (backups.enabled and backups.incremental_schedule is not None)
    errors = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "HighErrorRate")
    assert "traefik_service_requests_total" in errors["expr"]


def test_dev_runs_the_light_version() -> None:
    _, records = _build("dev")
    values = _values(_release(records, CHART))
    assert values["prometheus"]["prometheusSpec"]["replicas"] == 1
    assert values["prometheus"]["prometheusSpec"]["retention"] == "3d"
    _, prod_records = _build("prod")
    assert _values(_release(prod_records, CHART))["prometheus"]["prometheusSpec"]["replicas"] == 2


def test_receivers_come_from_config_and_the_webhook_secret_keeps_values_secret() -> None:
    _, records = _build("prod", webhook="https://hooks.example.com/alerts/abc")
    release = _release(records, CHART)
    receiver = _values(release)["alertmanager"]["config"]["receivers"][0]
    assert receiver["email_configs"][0]["to"] == "ops@example.com"
    assert receiver["webhook_configs"][0]["url"] == "https://hooks.example.com/alerts/abc"
    assert "values" in release.secret_inputs


def test_grafana_dashboard_is_provisioned_and_admin_password_is_secret() -> None:
    tier, records = _build("staging")
    dashboards = [
        r
        for r in records
        if r.type == "kubernetes:core/v1:ConfigMap"
        and r.inputs["metadata"]["labels"].get(DASHBOARD_LABEL) == "1"
    ]
    assert len(dashboards) == 1
    dashboard = json.loads(dashboards[0].inputs["data"]["platform-overview.json"])
    assert dashboard["uid"] == "platform-staging" and len(dashboard["panels"]) >= 8
    assert is_secret(tier.exports["grafana_admin_password"])


def test_loki_and_alloy_are_installed_with_retention_from_config() -> None:
    _, records = _build("prod")
    loki = _release(records, "loki")
    alloy = _release(records, "alloy")
    assert _values(loki)["loki"]["limits_config"]["retention_period"] == "720h"
    assert _values(alloy)["controller"]["type"] == "daemonset"
    assert "loki.source.kubernetes" in _values(alloy)["alloy"]["configMap"]["content"]
    monitoring_values = _values(_release(records, CHART))
    assert monitoring_values["grafana"]["additionalDataSources"][0]["type"] == "loki"


def test_vm_journals_are_pushed_through_the_ingress_with_basic_auth() -> None:
    settings = LoggingSettings(vm_push_host="logs.example.com")

    def build() -> LoggingStack:
        return LoggingStack(
            "logging",
            LoggingStackArgs(
                settings=settings,
                light=False,
                push_password=pulumi.Output.secret("pw"),
                push_password_hash="$2a$10$hash",
                ingress_class="traefik",
                cluster_issuer="letsencrypt-production",
            ),
            opts=pulumi.ResourceOptions(providers={"kubernetes": _provider()}),
        )

    stack, records = run_component(build)
    ingress = next(r for r in records if r.type == "kubernetes:networking.k8s.io/v1:Ingress")
    assert ingress.inputs["spec"]["rules"][0]["host"] == "logs.example.com"
    assert ingress.inputs["spec"]["tls"][0]["hosts"] == ["logs.example.com"]
    loki = _release(records, "loki")
    assert _values(loki)["gateway"]["basicAuth"]["htpasswd"] == "vm-journal:$2a$10$hash"
    assert stack.push_url == "https://logs.example.com/loki/api/v1/push"
    fragment = journal_shipping_cloud_config(stack.push_url, "pw", "prod", "mariadb")
    config = next(f["content"] for f in fragment["write_files"] if f["path"] == "/etc/alloy/config.alloy")
    assert 'url = "https://logs.example.com/loki/api/v1/push"' in config
    assert "loki.source.journal" in config and 'role = "mariadb"' in config


def test_scrape_configs_skip_roles_without_nodes() -> None:
    jobs = scrape_configs({"mariadb": ["10.0.1.10"], "redis": [], "rabbitmq": ["10.0.1.30"]})
    assert [job["job_name"] for job in jobs] == ["node", "mysqld", "rabbitmq"]
    assert jobs[0]["static_configs"][0]["targets"] == ["10.0.1.10:9100"]


def test_platform_dashboard_covers_the_key_platform_metrics() -> None:
    exprs = " ".join(p["targets"][0]["expr"] for p in platform_dashboard("prod")["panels"])
    for metric in (
        "node_cpu_seconds_total",
        "traefik_service_request_duration_seconds_bucket",
        "wsrep_cluster_size",
    ):
        assert metric in exprs


@pytest.mark.parametrize("with_email", [True, False])
def test_alertmanager_config_passes_amtool(with_email: bool, tmp_path: Path) -> None:
    receivers = (
        ReceiverSettings(
            email_to=("ops@example.com",),
            email_from="alerts@example.com",
            smtp_smarthost="smtp.example.com:587",
            smtp_username="alerts@example.com",
        )
        if with_email
        else ReceiverSettings()
    )
    config = alertmanager_config(
        receivers, "https://hooks.example.com/x", "smtp-secret" if with_email else None
    )
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [shutil.which("amtool") or "amtool", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# --- exporters on the data VMs -------------------------------------------------------------------


@pytest.mark.parametrize("role", ["mariadb", "redis", "rabbitmq"])
def test_exporter_fragment_passes_cloud_init_schema(role: str, tmp_path: Path) -> None:
    from components.foundation.cloud_init import merge_cloud_configs, render_cloud_config

    fragment = exporters_cloud_config(role, "10.30.1.11")
    text = render_cloud_config(merge_cloud_configs({"package_update": True}, fragment))
    assert_valid_cloud_config(text, tmp_path / "user-data")


def test_exporters_listen_on_the_vpc_address_only() -> None:
    files = {f["path"]: f["content"] for f in exporters_cloud_config("mariadb", "10.30.1.11")["write_files"]}
    assert "--web.listen-address=10.30.1.11:9100" in files["/etc/default/prometheus-node-exporter"]
    assert "--web.listen-address=10.30.1.11:9104" in files["/etc/default/prometheus-mysqld-exporter"]
    # unix_socket authentication: no database password on disk for the exporter
    assert "prometheus@unix(/run/mysqld/mysqld.sock)/" in files["/etc/default/prometheus-mysqld-exporter"]
    # mysqld_exporter >= 0.15 (Debian 13) ignores DATA_SOURCE_NAME: the same login as a cnf
    assert "--config.my-cnf=/etc/prometheus/mysqld-exporter.cnf" in files["/etc/default/prometheus-mysqld-exporter"]
    cnf = files["/etc/prometheus/mysqld-exporter.cnf"]
    assert "user = prometheus" in cnf and "socket = /run/mysqld/mysqld.sock" in cnf and "password" not in cnf
    assert set(exporters_cloud_config("redis", "10.30.1.21")["packages"]) == {
        "prometheus-node-exporter",
        "prometheus-redis-exporter",
    }


def test_redis_exporter_reads_the_password_from_redis_conf(tmp_path: Path) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text('bind 10.30.1.21\nport 6379\nrequirepass "Zx81-secret"\n')
    script = tmp_path / "helper.sh"
    script.write_text(REDIS_PASSWORD_SCRIPT)
    out = tmp_path / "exporter.env"
    done = subprocess.run(
        ["sh", str(script)],
        env={"REDIS_CONF": str(conf), "EXPORTER_ENV": str(out), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text() == 'REDIS_PASSWORD="Zx81-secret"\nREDIS_ADDR="redis://10.30.1.21:6379"\n'
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_journal_shipping_fragment_passes_cloud_init_schema(tmp_path: Path) -> None:
    from components.foundation.cloud_init import merge_cloud_configs, render_cloud_config

    fragment = journal_shipping_cloud_config("https://logs.example.com/loki/api/v1/push", "pw", "prod", "redis")
    assert fragment["apt"]["sources"]["grafana"]["keyid"] == "B53AE77BADB630A683046005963FA27710458545"
    document = tmp_path / "user-data"
    document.write_text(render_cloud_config(merge_cloud_configs({"package_update": True}, fragment)))
    done = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(document)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_exporters_listen_everywhere_when_the_cluster_scrapes_over_the_private_network() -> None:
    files = {
        f["path"]: f["content"]
        for f in exporters_cloud_config("redis", "10.20.1.20", listen_all=True)["write_files"]
    }
    assert "--web.listen-address=0.0.0.0:9100" in files["/etc/default/prometheus-node-exporter"]
    assert "-web.listen-address=0.0.0.0:9121" in files["/etc/default/prometheus-redis-exporter"]
    assert "10.20.1.20" not in files["/etc/default/prometheus-node-exporter"]
