"""Bad stack files, each refused cleanly: one message naming the key, nothing registered.

Every mutation edits a real stack file (prod unless it says otherwise), writes it into a
temporary directory, and reads it the way the offline engine does (`stack_config`, the same
reader the program uses for the file), then runs the whole program on it. A refusal is clean
when it is a ConfigError or a `pulumi.RunError` (what `pulumi up` prints as one error, no
traceback), its message names the key with `<key>:`, and no resource was registered. A few
mutations also go through the offline preview's command line: exit 2, nothing on stdout, one
message on stderr, no traceback.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.settings.common import ConfigError
from tests.stacks.test_new_stack_needs_no_code import copy_of_the_program
from tools.offline import ROOT, run_program_expecting_error, stack_config

P = "platform-infra:"
Config = dict[str, Any]


@dataclass(frozen=True)
class Mutation:
    id: str
    key: str  # what the message must name, as `<key>:`
    edit: Callable[[Config], None] | None = None  # on the parsed `config:` mapping
    text: Callable[[str], str] | None = None  # on the file's text, for what YAML itself shows
    stack: str = "prod"
    secure: tuple[str, ...] = ()  # keys written as `secure:` values
    must_not_say: str | None = None  # e.g. a plain-text secret the message must not echo


def drop(path: str) -> Callable[[Config], None]:
    """Remove `platform-infra:<section>` or a key inside it (`kubernetes.pool.plan`)."""
    section, *rest = path.split(".")

    def edit(config: Config) -> None:
        if not rest:
            del config[P + section]
            return
        node = config[P + section]
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[rest[-1]]

    return edit


def put(path: str, value: Any) -> Callable[[Config], None]:
    section, *rest = path.split(".")

    def edit(config: Config) -> None:
        if not rest:
            config[P + section if ":" not in section else section] = value
            return
        node = config[P + section]
        for part in rest[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[int(rest[-1]) if isinstance(node, list) else rest[-1]] = value

    return edit


def raw(key: str, value: Any) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        config[key] = value

    return edit


def both(*edits: Callable[[Config], None]) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        for one in edits:
            one(config)

    return edit


def secret_env(env: dict[str, str], index: int = 0) -> Callable[[Config], None]:
    return put(f"kubernetes.workloads.{index}.secret_env", env)


def duplicate_line(after: str, line: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert after in text, after
        return text.replace(after, after + line, 1)

    return edit


MUTATIONS: list[Mutation] = [
    # every section that carries sizes is required (no dev-sized code default)
    Mutation("no-kubernetes-section", P + "kubernetes", drop("kubernetes")),
    Mutation("no-data-section", P + "data", drop("data")),
    Mutation("no-operations-section", P + "operations", drop("operations")),
    Mutation("no-budget-section", P + "budget", drop("budget")),
    Mutation("no-bastion-section", P + "bastion", drop("bastion")),
    Mutation("no-pool", P + "kubernetes.pool", drop("kubernetes.pool")),
    Mutation("no-pool-plan", P + "kubernetes.pool.plan", drop("kubernetes.pool.plan")),
    Mutation("no-pool-count-nor-autoscaler", P + "kubernetes.pool.count", drop("kubernetes.pool.count"), stack="dev"),
    Mutation("no-mariadb", P + "data.mariadb", drop("data.mariadb")),
    Mutation("no-redis-nodes", P + "data.redis.nodes", drop("data.redis.nodes")),
    Mutation("no-data-tls", P + "data.tls", drop("data.tls")),
    Mutation("no-monitoring", P + "operations.monitoring", drop("operations.monitoring")),
    Mutation("no-logging-storage", P + "operations.logging.storage_gi", drop("operations.logging.storage_gi")),
    Mutation("no-retention-days", P + "operations.backups.retention_days", drop("operations.backups.retention_days")),
    Mutation("no-lke-tier", P + "kubernetes.tier", drop("kubernetes.tier")),
    Mutation("no-lke-version", P + "kubernetes.version", drop("kubernetes.version")),
    Mutation("no-ingress-replicas", P + "kubernetes.ingress.replicas", drop("kubernetes.ingress.replicas")),
    Mutation("no-quota", P + "kubernetes.namespace.quota", drop("kubernetes.namespace.quota")),
    Mutation("no-workloads", P + "kubernetes.workloads", drop("kubernetes.workloads")),
    Mutation("no-environment", P + "environment", drop("environment")),
    # values outside what is allowed
    Mutation("bucket-region-unknown", P + "operations.backups.bucket_region",
             put("operations.backups.bucket_region", "mars-1")),
    Mutation("bucket-region-without-object-storage", P + "operations.backups.bucket_region",
             put("operations.backups.bucket_region", "us-central")),
    Mutation("retention-pattern", P + "operations.monitoring.retention",
             put("operations.monitoring.retention", "30 days")),
    Mutation("chart-version-pattern", P + "operations.monitoring.kube_prometheus_stack_version",
             put("operations.monitoring.kube_prometheus_stack_version", "87.x")),
    Mutation("region-typo", P + "region", put("region", "eu-centrall")),
    Mutation("max-instances-not-a-number", P + "max_instances", put("max_instances", "twenty")),
    Mutation("storage-not-a-number", P + "operations.logging.storage_gi", put("operations.logging.storage_gi", "big")),
    Mutation("admin-anywhere-in-production", P + "admin_cidrs", put("admin_cidrs", ["0.0.0.0/0"])),
    Mutation("autoscaler-min-above-max", P + "kubernetes.pool.autoscaler.min",
             put("kubernetes.pool.autoscaler", {"min": 7, "max": 6})),
    Mutation("window-end-before-start", P + "operations.maintenance.window.end",
             put("operations.maintenance.window", {"kind": "daily", "start": "04:00", "end": "02:00"})),
    Mutation("email-without-sender", P + "operations.monitoring.receivers.email_from",
             drop("operations.monitoring.receivers.email_from")),
    Mutation("even-galera", P + "data.mariadb.nodes", put("data.mariadb.nodes", 4)),
    Mutation("workload-name-twice", P + "kubernetes.workloads.1.name", put("kubernetes.workloads.1.name", "api")),
    Mutation("ha-with-one-replica", P + "kubernetes.ingress.replicas", put("kubernetes.ingress.replicas", 1)),
    Mutation("letsencrypt-without-email", P + "kubernetes.tls.acme_email", drop("kubernetes.tls.acme_email")),
    Mutation("backup-window-without-day", P + "operations.backups.linode_backup_day",
             drop("operations.backups.linode_backup_day")),
    Mutation("environment-unknown", P + "environment", put("environment", "prod")),
    Mutation("lke-version-not-offered", P + "kubernetes.version", put("kubernetes.version", "1.34")),
    Mutation("image-latest", P + "kubernetes.workloads.0.image",
             put("kubernetes.workloads.0.image", "registry.example.com/loopi-api:latest")),
    Mutation("budget-negative", P + "budget.monthly_eur", put("budget.monthly_eur", -5)),
    Mutation("reserved-key", P + "project", raw(P + "project", "other")),
    # keys: unknown, un-namespaced, misspelled namespace
    Mutation("unknown-key", P + "regoin", raw(P + "regoin", "eu-central")),
    Mutation("unknown-nested-key", P + "kubernetes.pool.plann", put("kubernetes.pool.plann", "g6-dedicated-4")),
    Mutation("key-without-namespace", "region", raw("region", "eu-central")),
    Mutation("namespace-misspelled", "platfrom-infra:region", raw("platfrom-infra:region", "eu-central")),
    # secrets
    Mutation("plain-linode-token", "linode:token",
             raw("linode:token", "plain-token-123"), must_not_say="plain-token-123"),
    Mutation("plain-registry-password", P + "registry_password", raw(P + "registry_password", "hunter2-plain"),
             must_not_say="hunter2-plain"),
    Mutation("unknown-secret", P + "alert_webhok_url", raw(P + "alert_webhok_url", {"secure": "v1:abc"}),
             secure=(P + "alert_webhok_url",)),
    Mutation("secret-env-without-secret", P + "api_session_key", secret_env({"SESSION_KEY": "api_session_key"})),
    Mutation("secret-env-in-plain-text", P + "api_session_key",
             both(secret_env({"SESSION_KEY": "api_session_key"}), raw(P + "api_session_key", "plain-session-9")),
             must_not_say="plain-session-9"),
    Mutation("secret-env-bad-name", P + "kubernetes.workloads.0.secret_env",
             secret_env({"session-key": "api_session_key"})),
    Mutation("secret-env-reserved-name", P + "kubernetes.workloads.0.secret_env",
             secret_env({"DATABASE_URL": "db_url"})),
    Mutation("secret-env-also-plain-env", P + "kubernetes.workloads.0.secret_env",
             secret_env({"APP_ENV": "app_env_secret"})),
    # what only the file's text shows
    Mutation("duplicated-top-level-key", P + "region",
             text=duplicate_line("  platform-infra:region: eu-central\n", "  platform-infra:region: us-east\n")),
    Mutation("duplicated-nested-key", P + "data.tls",
             text=duplicate_line("    tls: true\n", "    tls: false\n")),
    Mutation("yaml-syntax-error", "Pulumi.prod.yaml",
             text=lambda t: t.replace("tier: enterprise", "tier: [enterprise")),
    Mutation("config-not-a-mapping", "Pulumi.prod.yaml", text=lambda t: "config: [1, 2]\n"),
    Mutation("stack-file-missing", "Pulumi.prod.yaml", text=lambda t: ""),  # "" = no file at all
]


def write_mutated(mutation: Mutation, into: Path) -> None:
    source = (ROOT / f"Pulumi.{mutation.stack}.yaml").read_text()
    target = into / f"Pulumi.{mutation.stack}.yaml"
    if mutation.text is not None:
        text = mutation.text(source)
        if text:
            target.write_text(text)
        return
    doc = yaml.safe_load(source)
    config = copy.deepcopy(doc["config"])
    assert mutation.edit is not None
    mutation.edit(config)
    doc["config"] = config
    target.write_text(yaml.safe_dump(doc, sort_keys=False))


def refusal(mutation: Mutation, directory: Path) -> str:
    """The message the program stops with; fails the test if the refusal is not clean."""
    write_mutated(mutation, directory)
    try:
        config, secret_keys = stack_config(mutation.stack, root=directory)
    except ConfigError as error:
        return str(error)
    secret_keys = [*secret_keys, *mutation.secure]
    stopped, registered = run_program_expecting_error(mutation.stack, {}, config=config, secret_keys=secret_keys)
    assert isinstance(stopped, pulumi.RunError), f"{type(stopped).__name__}: {stopped}"
    assert registered == [], f"{len(registered)} resources registered before the refusal"
    return str(stopped)


def test_there_are_at_least_forty_mutations() -> None:
    assert len(MUTATIONS) >= 40
    assert len({m.id for m in MUTATIONS}) == len(MUTATIONS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.id for m in MUTATIONS])
def test_a_bad_stack_file_is_refused_naming_the_key(mutation: Mutation, tmp_path: Path) -> None:
    message = refusal(mutation, tmp_path)
    assert f"{mutation.key}:" in message, message
    assert "allowed" in message, message
    assert "Traceback" not in message
    if mutation.must_not_say:
        assert mutation.must_not_say not in message
    lines = [line for line in message.splitlines() if mutation.key in line]
    assert lines, message


def test_the_pattern_message_keeps_key_value_and_allowed_whole(tmp_path: Path) -> None:
    (mutation,) = [m for m in MUTATIONS if m.id == "retention-pattern"]
    message = refusal(mutation, tmp_path)
    assert f"{P}operations.monitoring.retention: got '30 days'; allowed: a Prometheus retention such as 15d" in message


CLI_CASES = ("yaml-syntax-error", "duplicated-nested-key", "no-kubernetes-section", "plain-linode-token",
             "stack-file-missing")


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_offline_preview_exits_2_with_one_message_and_no_traceback(case: str, tmp_path: Path) -> None:
    (mutation,) = [m for m in MUTATIONS if m.id == case]
    root = copy_of_the_program(tmp_path)
    write_mutated(mutation, root)
    result = subprocess.run(
        [sys.executable, "-m", "tools.preview", "--stack", mutation.stack, "--format", "json"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""  # json on stdout or nothing
    assert "Traceback" not in result.stderr
    assert result.stderr.count("error: ") == 1 and f"{mutation.key}:" in result.stderr, result.stderr


def test_the_preview_json_is_valid_and_its_order_stable() -> None:
    from tools import preview

    first = json.loads(preview.render_json([preview.build_report("dev")]))
    second = json.loads(preview.render_json([preview.build_report("dev")]))
    names = [(r["type"], r["name"]) for r in first["stacks"][0]["resources"]]
    assert names == sorted(names)
    assert names == [(r["type"], r["name"]) for r in second["stacks"][0]["resources"]]
