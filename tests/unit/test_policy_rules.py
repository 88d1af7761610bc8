"""Each guardrail fires with its message on a deliberately bad resource and stays quiet on a good one.

The last tests drive the CrossGuard pack through pulumi-policy's own analyzer servicer (the
gRPC handler `pulumi preview --policy-pack` talks to), so the glue is proven, not only the rules.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import proto
from pulumi_policy.policy import _PolicyAnalyzerServicer

from components.settings.budget import BudgetSettings
from policy import cost, rules
from policy.cost import SECRET_SIG, SECRET_SIG_KEY
from policy.rules import ResourceView, StackContext

# Stack names unlike the kinds on purpose: the rules decide by the kind of environment only.
PROD = StackContext("live", "production", BudgetSettings(monthly_eur=1000))
STAGING = StackContext("qa", "staging", BudgetSettings(monthly_eur=300))
DEV = StackContext("scratch", "development", BudgetSettings(monthly_eur=100))


def messages(rule_name: str, view: ResourceView, ctx: StackContext = PROD) -> list[str]:
    rule = next(r for r in rules.RESOURCE_RULES if r.name == rule_name)
    return list(rule.check(view, ctx))


def firewall(inbound_policy: str = "DROP", inbounds: list[dict[str, Any]] | None = None) -> ResourceView:
    return ResourceView(rules.FIREWALL, "data-fw", {
        "label": "platform-infra-prod-data", "inboundPolicy": inbound_policy, "outboundPolicy": "ACCEPT",
        "inbounds": inbounds if inbounds is not None else [
            {"label": "mariadb-from-app", "action": "ACCEPT", "protocol": "TCP", "ports": "3306",
             "ipv4s": ["10.30.2.0/24"]},
        ],
    }, secret_paths=frozenset())


# The component each kind of VM belongs to (its parent's type token).
TOKENS = {"bastion": "platform:compute:Bastion"}


def vm_urn(role: str, cluster: str = "platform:data:Cluster") -> str:
    """A VM's URN: the types of its ancestors, then its own (what the engine hands the pack)."""
    return f"urn:pulumi:prod::platform-infra::{cluster}$linode:index/instance:Instance::{role}-0"


def data_vm(role: str = "mariadb", *, protect: bool = True, backups: bool = True,
            user_data: str = "I2Nsb3VkLWNvbmZpZwo=", secret_paths: frozenset[str] | None = None) -> ResourceView:
    return ResourceView(rules.INSTANCE, f"{role}-0", {
        "label": f"platform-infra-prod-{role}-0", "type": "g6-dedicated-4", "region": "eu-central",
        "backupsEnabled": backups, "tags": ["platform-infra", "env:prod", f"role:{role}"],
        "metadatas": [{"userData": user_data}], "firewallId": 61234,
    }, protect=protect, secret_paths=frozenset({"metadatas"}) if secret_paths is None else secret_paths,
       urn=vm_urn(role, TOKENS.get(role, "platform:data:Cluster")))


def good_container(**overrides: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "api", "image": "registry.example/api:1.4.2",
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
    }
    container.update(overrides)
    return container


def deployment(container: dict[str, Any] | None = None, **pod: Any) -> ResourceView:
    pod_spec = {"containers": [container or good_container()], **pod}
    return ResourceView("kubernetes:apps/v1:Deployment", "api", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "spec": {"selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": pod_spec}},
    }, secret_paths=frozenset())


def ingress(tls: list[dict[str, Any]] | None) -> ResourceView:
    spec: dict[str, Any] = {"rules": [{"host": "app.example.com", "http": {"paths": []}}]}
    if tls is not None:
        spec["tls"] = tls
    return ResourceView(rules.K8S_INGRESS, "app", {"spec": spec}, secret_paths=frozenset())


# --- firewall-inbound-drop -----------------------------------------------------------------

def test_firewall_accepting_inbound_by_default_is_refused() -> None:
    assert messages("firewall-inbound-drop", firewall("ACCEPT")) == [
        "firewall data-fw has inbound policy 'ACCEPT'; it must be DROP so only the listed rules let traffic in"
    ]
    assert messages("firewall-inbound-drop", firewall("DROP")) == []


# --- instance-behind-firewall ---------------------------------------------------------------

def test_instance_without_firewall_is_refused() -> None:
    vm = data_vm("redis")
    bare = dataclasses.replace(vm, inputs={k: v for k, v in vm.inputs.items() if k != "firewallId"})
    assert messages("instance-behind-firewall", bare) == [
        "instance redis-0 has no firewall attached at creation; set firewall_id so it never boots with every port open"]
    assert messages("instance-behind-firewall", vm) == []
    new_interfaces = dataclasses.replace(bare, inputs={**bare.inputs, "linodeInterfaces": [{"firewallId": 7}]})
    assert messages("instance-behind-firewall", new_interfaces) == []


# --- no-public-data-or-admin-port ------------------------------------------------------------

@pytest.mark.parametrize(("ports", "sources", "named"), [
    ("22", {"ipv4s": ["0.0.0.0/0"]}, "22 (SSH)"),
    ("3306", {"ipv6s": ["::/0"]}, "3306 (MariaDB)"),
    ("6000-6500", {"ipv4s": ["0.0.0.0/0"]}, "6379 (Redis)"),
    ("80,26379", {"ipv4s": ["0.0.0.0/0"]}, "26379 (Redis Sentinel)"),
    ("15672", {"ipv4s": ["0.0.0.0/0"]}, "15672 (RabbitMQ management)"),
    ("9100", {"ipv4s": ["0.0.0.0/0"]}, "9100 (node_exporter)"),
])
def test_data_and_admin_ports_open_to_the_internet_are_refused(
    ports: str, sources: dict[str, list[str]], named: str
) -> None:
    bad = firewall(inbounds=[{"label": "oops", "action": "ACCEPT", "protocol": "TCP", "ports": ports, **sources}])
    found = messages("no-public-data-or-admin-port", bad)
    assert len(found) == 1
    assert named in found[0] and "rule 'oops'" in found[0]


def test_rule_without_ports_opens_everything_and_is_refused() -> None:
    bad = firewall(inbounds=[{"label": "all", "action": "ACCEPT", "protocol": "TCP", "ipv4s": ["0.0.0.0/0"]}])
    assert "22 (SSH)" in messages("no-public-data-or-admin-port", bad)[0]


def test_icmp_from_anywhere_opens_no_port_and_passes() -> None:
    # Linode's default LKE ruleset accepts ICMP from the world (path-MTU discovery).
    icmp = firewall(inbounds=[
        {"label": "icmp", "action": "ACCEPT", "protocol": "ICMP", "ipv4s": ["0.0.0.0/0"], "ipv6s": ["::/0"]},
    ])
    assert messages("no-public-data-or-admin-port", icmp) == []


def test_public_https_and_private_data_ports_pass() -> None:
    ok = firewall(inbounds=[
        {"label": "https", "action": "ACCEPT", "protocol": "TCP", "ports": "80,443", "ipv4s": ["0.0.0.0/0"],
         "ipv6s": ["::/0"]},
        {"label": "ssh-admin", "action": "ACCEPT", "protocol": "TCP", "ports": "22", "ipv4s": ["198.51.100.10/32"]},
        {"label": "drop-all", "action": "DROP", "protocol": "TCP", "ports": "22", "ipv4s": ["0.0.0.0/0"]},
    ])
    assert messages("no-public-data-or-admin-port", ok) == []


def test_load_balancer_publishing_a_data_port_is_refused() -> None:
    nb = ResourceView(rules.NODEBALANCER_CONFIG, "nb-redis", {"port": 6379.0, "protocol": "tcp"})
    service = ResourceView(rules.K8S_SERVICE, "rabbit", {"spec": {"type": "LoadBalancer",
                                                                  "ports": [{"port": 5672}]}})
    assert messages("no-public-data-or-admin-port", nb) == [
        "NodeBalancer config nb-redis publishes port 6379 (Redis) on a public load balancer"]
    assert messages("no-public-data-or-admin-port", service) == [
        "Service rabbit of type LoadBalancer publishes port 5672 (AMQP)"]


# --- stateful-protected-in-prod ---------------------------------------------------------------

def test_unprotected_database_vm_in_prod_is_refused_but_allowed_in_dev() -> None:
    vm = data_vm("mariadb", protect=False)
    assert messages("stateful-protected-in-prod", vm) == [
        "mariadb-0 holds mariadb data in live (production) and is not protected; "
        "set protect=True so a change cannot delete or replace it"
    ]
    assert messages("stateful-protected-in-prod", vm, DEV) == []
    assert messages("stateful-protected-in-prod", data_vm("mariadb", protect=True)) == []


def test_unprotected_volume_in_prod_is_refused_and_bastion_is_not_stateful() -> None:
    volume = ResourceView(rules.VOLUME, "prometheus-data", {"size": 50})
    assert "prometheus-data holds volume data in live (production)" in messages("stateful-protected-in-prod", volume)[0]
    bucket = ResourceView(rules.OBJECT_STORAGE_BUCKET, "backups", {"label": "platform-infra-prod-backups"})
    assert messages("stateful-protected-in-prod", bucket) == [
        "backups holds backups in live (production) and is not protected; "
        "set protect=True so a change cannot delete or replace it"]
    assert messages("stateful-protected-in-prod", dataclasses.replace(bucket, protect=True)) == []
    assert messages("stateful-protected-in-prod", data_vm("bastion", protect=False)) == []


# --- data-vm-backups ----------------------------------------------------------------------------

@pytest.mark.parametrize("ctx", [STAGING, PROD])
def test_data_vm_without_backups_is_refused_in_staging_and_prod(ctx: StackContext) -> None:
    assert messages("data-vm-backups", data_vm("redis", backups=False), ctx) == [
        f"data VM redis-0 (redis) in {ctx.stack} ({ctx.environment}) has backups_enabled off; "
        "the Backup Service is required"
    ]


def test_backups_are_not_required_in_dev_or_for_non_data_vms() -> None:
    assert messages("data-vm-backups", data_vm("redis", backups=False), DEV) == []
    assert messages("data-vm-backups", data_vm("bastion", backups=False)) == []
    assert messages("data-vm-backups", data_vm("rabbitmq", backups=True)) == []


# --- workload-restricted-profile -------------------------------------------------------------------

def test_hardened_deployment_passes() -> None:
    assert messages("workload-restricted-profile", deployment()) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"securityContext": {}}, "must set runAsNonRoot: true"),
    ({"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": True,
                          "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}},
     "must set allowPrivilegeEscalation: false"),
    ({"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                          "capabilities": {"drop": ["NET_RAW"]}, "seccompProfile": {"type": "RuntimeDefault"}}},
     "must drop ALL capabilities"),
    ({"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                          "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                          "seccompProfile": {"type": "RuntimeDefault"}}},
     "adds capabilities ['SYS_ADMIN']"),
    ({"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                          "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Unconfined"}}},
     "needs seccompProfile RuntimeDefault or Localhost"),
    ({"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}, "has no limits for cpu, memory"),
    ({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1"}}},
     "has no requests for memory"),
    ({"readinessProbe": None}, "has no readinessProbe"),
    ({"livenessProbe": None}, "has no livenessProbe"),
    ({"ports": [{"containerPort": 8080, "hostPort": 8080}]}, "must not use hostPort 8080"),
])
def test_each_restricted_profile_gap_is_named(change: dict[str, Any], expected: str) -> None:
    found = messages("workload-restricted-profile", deployment(good_container(**change)))
    assert any(expected in message and "container 'api'" in message for message in found), found


def test_pod_level_security_context_satisfies_the_profile_and_host_access_is_refused() -> None:
    container = good_container()
    container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    pod_level = deployment(container, securityContext={"runAsNonRoot": True,
                                                       "seccompProfile": {"type": "RuntimeDefault"}})
    assert messages("workload-restricted-profile", pod_level) == []
    host = deployment(hostNetwork=True, volumes=[{"name": "root", "hostPath": {"path": "/"}}])
    found = messages("workload-restricted-profile", host)
    assert "api: hostNetwork is not allowed by the restricted profile" in found
    assert "api: hostPath volume 'root' is not allowed (restricted profile)" in found


def test_cronjob_pod_template_is_checked_but_needs_no_probes() -> None:
    container = good_container(readinessProbe=None, livenessProbe=None)
    cronjob = ResourceView("kubernetes:batch/v1:CronJob", "backup", {"spec": {"jobTemplate": {"spec": {
        "template": {"spec": {"containers": [container]}}}}}})
    assert messages("workload-restricted-profile", cronjob) == []
    container["securityContext"] = {}
    assert messages("workload-restricted-profile", cronjob)


# --- images-pinned --------------------------------------------------------------------------------

@pytest.mark.parametrize(("image", "pinned"), [
    ("nginx", False), ("nginx:latest", False), ("registry.example:5000/app", False),
    ("nginx:1.27.3", True), ("registry.example:5000/app:2.0", True),
    ("ghcr.io/org/app@sha256:" + "a" * 64, True),
])
def test_image_pinning(image: str, pinned: bool) -> None:
    found = messages("images-pinned", deployment(good_container(image=image)))
    assert (found == []) is pinned
    if not pinned:
        assert found == [f"api: container 'api' image {image!r} is not pinned; "
                         "use an explicit version tag (not latest) or a digest"]


# --- ingress-tls ----------------------------------------------------------------------------------

def test_ingress_without_tls_is_refused_in_staging_and_prod_but_not_dev() -> None:
    assert messages("ingress-tls", ingress(None), STAGING) == [
        "Ingress app in qa has no TLS section; a staging environment serves HTTPS only"]
    assert messages("ingress-tls", ingress(None), DEV) == []


def test_ingress_tls_must_cover_every_host() -> None:
    partial = ingress([{"hosts": ["other.example.com"], "secretName": "other-tls"}])
    assert messages("ingress-tls", partial) == [
        "Ingress app in live: host app.example.com is not covered by any TLS entry"]
    assert messages("ingress-tls", ingress([{"hosts": ["app.example.com"], "secretName": "app-tls"}])) == []


# --- credentials-are-secret -------------------------------------------------------------------------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_user_data_with_a_password_must_be_secret() -> None:
    user_data = _b64("#cloud-config\nwrite_files:\n- path: /etc/redis/redis.conf\n  content: requirepass s3cr3t\n")
    plain = data_vm("redis", user_data=user_data, secret_paths=frozenset())
    assert messages("credentials-are-secret", plain) == [
        "redis-0: metadatas[0].userData carries a credential but is not a secret; "
        "wrap it in pulumi.Output.secret so the state stores it encrypted"
    ]
    assert messages("credentials-are-secret", data_vm("redis", user_data=user_data)) == []


def test_user_data_without_credentials_need_not_be_secret() -> None:
    bastion = data_vm("bastion", user_data=_b64("#cloud-config\npackages: [fail2ban]\n"), secret_paths=frozenset())
    assert messages("credentials-are-secret", bastion) == []


def test_password_like_inputs_must_be_secret_but_references_to_secrets_need_not() -> None:
    view = ResourceView("linode:index/instance:Instance", "vm", {
        "rootPass": "hunter2", "type": "g6-nanode-1"}, secret_paths=frozenset())
    assert "vm: rootPass carries a credential" in messages("credentials-are-secret", view)[0]
    reference = ResourceView(rules.K8S_INGRESS, "app", {"spec": {"tls": [{"secretName": "app-tls"}]}},
                             secret_paths=frozenset())
    assert messages("credentials-are-secret", reference) == []
    chart = ResourceView(cost.HELM_RELEASE, "grafana", {"values": {"grafana": {"admin": {
        "existingSecret": "grafana-admin", "passwordKey": "admin-password", "userKey": "admin-user"}}}},
        secret_paths=frozenset())
    assert messages("credentials-are-secret", chart) == []
    leaked = dataclasses.replace(chart, inputs={"values": {"grafana": {"adminPassword": "hunter2"}}})
    assert messages("credentials-are-secret", leaked) == [
        "grafana: values.grafana.adminPassword carries a credential but is not a secret; "
        "wrap it in pulumi.Output.secret so the state stores it encrypted"]


def test_literal_credential_in_container_env_is_refused() -> None:
    container = good_container(env=[{"name": "DB_PASSWORD", "value": "hunter2"},
                                    {"name": "DB_HOST", "value": "10.30.1.10"},
                                    {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s"}}}])
    assert messages("credentials-are-secret", deployment(container)) == [
        "api: env DB_PASSWORD of container 'api' holds a literal credential; use valueFrom.secretKeyRef"]


def test_unknown_secretness_is_not_reported() -> None:
    # Inside `pulumi preview` the pack cannot see secretness (pulumi/pulumi-policy#241).
    view = ResourceView(rules.INSTANCE, "vm", {"rootPass": "x"}, secret_paths=None)
    assert messages("credentials-are-secret", view) == []


# --- monthly-cost-within-budget -----------------------------------------------------------------------

def test_stack_over_budget_is_refused_with_the_figures() -> None:
    views = [ResourceView(rules.INSTANCE, f"db-{i}", {"type": "g6-dedicated-8"}) for i in range(3)]
    ctx = DEV
    found = list(rules.check_cost_within_budget(views, ctx))
    total_usd = 3 * 144.0
    total_eur = round(total_usd * ctx.budget.usd_to_eur.eur_per_usd, 2)  # type: ignore[union-attr]
    assert found == [
        f"stack scratch is estimated at {total_eur:.2f} EUR/month (${total_usd:.2f}), over its budget of "
        f"100.00 EUR (+0.00 allowed) by {total_eur - 100:.2f} EUR"
    ]
    roomy = dataclasses.replace(DEV, budget=BudgetSettings(monthly_eur=500))
    assert list(rules.check_cost_within_budget(views, roomy)) == []


def test_autoscaling_ceiling_over_budget_is_an_advisory_finding() -> None:
    cluster = ResourceView("linode:index/lkeCluster:LkeCluster", "lke", {
        "pools": [{"type": "g6-standard-4", "count": 2, "autoscaler": {"min": 2, "max": 10}}]})  # $96..$480
    ctx = dataclasses.replace(PROD, budget=BudgetSettings(monthly_eur=300))
    result = rules.evaluate([cluster], ctx)
    assert result.mandatory == ()
    assert [(f.rule, f.enforcement) for f in result.findings] == [("monthly-cost-ceiling-within-budget", "advisory")]
    assert "at its autoscaling ceiling would cost" in result.findings[0].message
    assert rules.evaluate([cluster], dataclasses.replace(PROD, budget=BudgetSettings(monthly_eur=600))).findings == ()


def test_stack_without_budget_or_with_unknown_plan_is_refused() -> None:
    assert list(rules.check_cost_within_budget([], dataclasses.replace(DEV, budget=None))) == [
        "stack scratch has no platform-infra:budget; every stack needs a monthly budget"]
    unknown = [ResourceView(rules.INSTANCE, "vm", {"type": "g9-imaginary-1"})]
    assert "cannot estimate the monthly cost" in next(iter(rules.check_cost_within_budget(unknown, DEV)))


def test_evaluate_reports_rule_resource_and_enforcement() -> None:
    result = rules.evaluate([firewall("ACCEPT")], DEV)
    assert [(f.rule, f.resource, f.enforcement) for f in result.mandatory] == [
        ("firewall-inbound-drop", "linode:index/firewall:Firewall::data-fw", "mandatory")]


def test_offline_engine_records_are_adapted_with_their_secrets() -> None:
    class Record:
        type = rules.INSTANCE
        name = "vm"
        inputs = {"rootPass": {SECRET_SIG_KEY: SECRET_SIG, "value": "pw"}, "tags": ["role:redis"],
                  "metadatas": [{"userData": "abc"}]}
        protect = True
        parent = "urn:parent"
        secret_inputs = {"metadatas"}

    view = rules.view_from_record(Record())
    assert view.inputs["rootPass"] == "pw"
    assert view.is_secret("rootPass") and view.is_secret("metadatas[0].userData")
    assert not view.is_secret("tags")
    assert view.role == "redis" and view.protect and view.parent == "urn:parent"


# --- the pack, through pulumi-policy's analyzer servicer -----------------------------------------------

def _servicer(ctx: StackContext) -> _PolicyAnalyzerServicer:
    from pulumi_policy import EnforcementLevel

    return _PolicyAnalyzerServicer("platform-infra-guardrails", "0.1.0", rules.build_policies(lambda: ctx),
                                   EnforcementLevel.MANDATORY)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(props, struct)
    return struct


def test_pack_declares_every_rule_once_with_its_enforcement() -> None:
    from pulumi_policy import EnforcementLevel

    policies = {p.name: p.enforcement_level for p in rules.build_policies(lambda: DEV)}
    assert len(policies) == len(rules.RESOURCE_RULES) + len(rules.STACK_RULES) == 16
    assert policies["credentials-are-secret"] == EnforcementLevel.REMEDIATE
    assert policies["monthly-cost-ceiling-within-budget"] == EnforcementLevel.ADVISORY
    assert all(level == EnforcementLevel.MANDATORY for name, level in policies.items()
               if name not in ("credentials-are-secret", "monthly-cost-ceiling-within-budget"))


def test_pack_reports_a_mandatory_violation_for_a_bad_resource() -> None:
    request = proto.AnalyzeRequest(
        type=rules.INSTANCE, name="mariadb-0", urn=vm_urn("mariadb"),
        properties=_struct({"type": "g6-dedicated-4", "backupsEnabled": False,
                            "tags": ["role:mariadb"], "firewallId": 61234}),
        options=proto.AnalyzerResourceOptions(protect=False),
    )
    response = _servicer(PROD).Analyze(request, None)
    # pulumi-policy prefixes the policy's description to the message.
    found = {(d.policyName, d.message.splitlines()[-1]) for d in response.diagnostics}
    assert ("stateful-protected-in-prod", "mariadb-0 holds mariadb data in live (production) and is not "
            "protected; set protect=True so a change cannot delete or replace it") in found
    assert ("data-vm-backups", "data VM mariadb-0 (mariadb) in live (production) has backups_enabled off; "
            "the Backup Service is required") in found
    assert all(d.enforcementLevel == proto.MANDATORY for d in response.diagnostics)


def test_pack_passes_a_good_resource() -> None:
    request = proto.AnalyzeRequest(
        type=rules.INSTANCE, name="mariadb-0", urn=vm_urn("mariadb"),
        properties=_struct({"type": "g6-dedicated-4", "backupsEnabled": True, "tags": ["role:mariadb"],
                            "firewallId": 61234}),
        options=proto.AnalyzerResourceOptions(protect=True),
    )
    assert list(_servicer(PROD).Analyze(request, None).diagnostics) == []


def test_pack_judges_known_fields_while_other_inputs_are_unknown_during_preview() -> None:
    unknown_string = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    vm = proto.AnalyzeRequest(
        type=rules.INSTANCE, name="mariadb-0", urn=vm_urn("mariadb"),
        properties=_struct({"type": "g6-dedicated-4", "backupsEnabled": True, "tags": ["role:mariadb"],
                            "firewallId": "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
                            "metadatas": [{"userData": unknown_string}]}),
        options=proto.AnalyzerResourceOptions(protect=False))
    diagnostics = _servicer(PROD).Analyze(vm, None).diagnostics
    assert [d.policyName for d in diagnostics] == ["stateful-protected-in-prod"]
    built = deployment(good_container(image=unknown_string))
    request = proto.AnalyzeRequest(type=built.type, name="api", urn="urn:api", properties=_struct(dict(built.inputs)))
    assert list(_servicer(PROD).Analyze(request, None).diagnostics) == []


def test_pack_stack_policy_checks_the_budget() -> None:
    resources = [proto.AnalyzerResource(type=rules.INSTANCE, name=f"db-{i}", urn=f"urn:db-{i}",
                                        properties=_struct({"type": "g6-dedicated-16"}))
                 for i in range(2)]
    response = _servicer(DEV).AnalyzeStack(proto.AnalyzeStackRequest(resources=resources), None)
    assert [d.policyName for d in response.diagnostics] == ["monthly-cost-within-budget"]
    assert "over its budget of 100.00 EUR" in response.diagnostics[0].message


def test_pack_remediation_marks_credential_carrying_user_data_secret() -> None:
    user_data = _b64("#cloud-config\nruncmd: [echo 'masterauth hunter2' >> /etc/redis/redis.conf]\n")
    props = {"type": "g6-standard-2", "tags": ["role:redis"], "metadatas": [{"userData": user_data}],
             "label": "redis-0", "firewallId": 61234}
    request = proto.AnalyzeRequest(type=rules.INSTANCE, name="redis-0", urn=vm_urn("redis"),
                                   properties=_struct(copy.deepcopy(props)),
                                   options=proto.AnalyzerResourceOptions(protect=True))
    response = _servicer(PROD).Remediate(request, None)
    assert [r.policyName for r in response.remediations] == ["credentials-are-secret"]
    remediated = json_format.MessageToDict(response.remediations[0].properties)
    assert remediated["metadatas"] == {SECRET_SIG_KEY: SECRET_SIG, "value": props["metadatas"]}
    assert remediated["label"] == "redis-0"


@pytest.mark.parametrize("text", [
    "lock_passwd: true", "sudo: ALL=(ALL) NOPASSWD:ALL", "    PasswordAuthentication no",
    "runcmd:\n- - passwd\n  - --lock\n  - root", "ssh_pwauth: false", "ssh_authorized_keys:\n  - ssh-ed25519 AAA",
])
def test_hardening_text_is_not_mistaken_for_a_credential(text: str) -> None:
    assert rules.CREDENTIAL_TEXT.search(text) is None


@pytest.mark.parametrize("text", [
    "requirepass s3cr3t", "    masterauth abc", "sentinel auth-pass mymaster pw", "default_pass = hunter2",
    "  password: hunter2", "wsrep_sst_auth = mariabackup:pw", "CREATE USER x IDENTIFIED BY 'pw'",
    "-----BEGIN OPENSSH PRIVATE KEY-----", "- path: /var/lib/rabbitmq/.erlang.cookie", "MYSQL_PASSWORD=abc",
])
def test_credentials_in_rendered_config_are_recognised(text: str) -> None:
    assert rules.CREDENTIAL_TEXT.search(text) is not None


# --- the pack as the CLI starts it: a process serving the analyzer over gRPC on loopback ----------

@pytest.fixture(scope="module")
def running_pack() -> Any:
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        # What the CLI hands an analyzer: project, stack and the stack's config.
        # A stack named unlike any kind: the config's environment decides what the rules expect.
        "PULUMI_PROJECT": "platform-infra", "PULUMI_STACK": "eu-live", "PULUMI_DRY_RUN": "true",
        "PULUMI_CONFIG": json.dumps({"platform-infra:environment": "production",
                                     "platform-infra:budget": json.dumps({"monthly_eur": 50})}),
    }
    process = subprocess.Popen([sys.executable, str(root / "policy" / "__main__.py")], cwd=root / "policy",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().decode().strip())  # the pack prints its port first
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        yield stub, empty_pb2.Empty()
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def test_pack_process_announces_every_policy(running_pack: Any) -> None:
    stub, empty = running_pack
    info = stub.GetAnalyzerInfo(empty, timeout=20)
    assert info.name == "platform-infra-guardrails"
    assert sorted(p.name for p in info.policies) == sorted(
        [r.name for r in rules.RESOURCE_RULES] + [r.name for r in rules.STACK_RULES])


def test_pack_process_reads_the_stack_and_its_budget_from_the_engine(running_pack: Any) -> None:
    stub, _ = running_pack
    bad_vm = proto.AnalyzeRequest(
        type=rules.INSTANCE, name="mariadb-0", urn=vm_urn("mariadb"),
        properties=_struct({"type": "g6-dedicated-4", "backupsEnabled": True, "tags": ["role:mariadb"],
                            "firewallId": 61234}),
        options=proto.AnalyzerResourceOptions(protect=False))
    assert [d.policyName for d in stub.Analyze(bad_vm, timeout=20).diagnostics] == ["stateful-protected-in-prod"]
    stack = proto.AnalyzeStackRequest(resources=[proto.AnalyzerResource(
        type=rules.INSTANCE, name="db", urn="urn:db", properties=_struct({"type": "g6-dedicated-4"}))])
    diagnostics = stub.AnalyzeStack(stack, timeout=20).diagnostics
    assert [d.policyName for d in diagnostics] == ["monthly-cost-within-budget"]
    assert "over its budget of 50.00 EUR" in diagnostics[0].message


# --- Linode's own rules: each fires on what the API would refuse, quiet otherwise ----

def lke_cluster(api_version: str | None = "v4beta", tier: str | None = "enterprise",
                version: str = "v1.36.3+lke1", label: str = "platform-infra-prod-lke") -> ResourceView:
    inputs: dict[str, Any] = {"label": label, "region": "eu-central", "k8sVersion": version,
                              "pools": [{"type": "g6-dedicated-4", "count": 3}]}
    if tier:
        inputs.update({"tier": tier, "vpcId": 7, "subnetId": 8, "stackType": "ipv4"})
    return ResourceView(rules.LKE_CLUSTER, "lke", inputs, secret_paths=frozenset(),
                        provider_inputs=None if api_version is None else {"apiVersion": api_version})


def test_linode_label_rule_refuses_a_firewall_label_over_32_and_a_bad_rule_label() -> None:
    bad = dataclasses.replace(firewall(), inputs={**firewall().inputs, "label": "platform-infra-staging-nodebalancer"})
    assert any("35 characters" in m for m in messages("linode-label-rules", bad))
    bad_rule = firewall(inbounds=[{"label": "x", "action": "ACCEPT", "protocol": "TCP", "ports": "22",
                                   "ipv4s": ["10.0.0.0/24"]}])
    assert any("firewall_rule label 'x'" in m for m in messages("linode-label-rules", bad_rule))
    assert messages("linode-label-rules", firewall()) == []


def test_linode_label_rule_skips_labels_unknown_during_preview() -> None:
    view = ResourceView("linode:index/objectStorageBucket:ObjectStorageBucket", "bucket",
                        {"label": rules.UNKNOWN}, secret_paths=frozenset())
    assert messages("linode-label-rules", view) == []
    bad = dataclasses.replace(view, inputs={"label": "Backups_Bucket"})
    assert messages("linode-label-rules", bad)


def test_lke_beta_fields_need_a_v4beta_provider() -> None:
    unmanaged = lke_cluster(api_version=None)
    assert any("api_version v4beta" in m for m in messages("lke-beta-fields-need-v4beta", unmanaged))
    assert messages("lke-beta-fields-need-v4beta", lke_cluster(api_version="v4"))
    assert messages("lke-beta-fields-need-v4beta", lke_cluster()) == []
    # A standard cluster without tier or VPC fields works on the default provider.
    assert messages("lke-beta-fields-need-v4beta", lke_cluster(api_version=None, tier=None, version="1.36")) == []


def test_lke_version_format_follows_the_tier() -> None:
    assert messages("lke-version-format", lke_cluster(version="1.36"))  # enterprise wants a build
    assert messages("lke-version-format", lke_cluster(tier=None, version="v1.36.3+lke1"))
    assert messages("lke-version-format", lke_cluster()) == []
    assert messages("lke-version-format", lke_cluster(tier=None, version="1.36")) == []


def test_user_data_over_linode_s_limit_is_refused() -> None:
    over = base64.b64encode(b"#cloud-config\n" + b"x" * 50_000).decode()
    assert len(over) > rules.USER_DATA_LIMIT_BYTES
    assert any("65535" in m for m in messages("user-data-size", data_vm(user_data=over)))
    assert messages("user-data-size", data_vm()) == []


def test_a_firewall_with_more_than_25_rules_is_refused() -> None:
    rule = {"action": "ACCEPT", "protocol": "TCP", "ports": "22", "ipv4s": ["10.0.0.0/24"]}
    too_many = firewall(inbounds=[{**rule, "label": f"rule-{i:02d}"} for i in range(26)])
    assert any("26 rules" in m for m in messages("firewall-rule-count", too_many))
    at_limit = firewall(inbounds=[{**rule, "label": f"rule-{i:02d}"} for i in range(25)])
    assert messages("firewall-rule-count", at_limit) == []


def test_the_pack_reads_the_cluster_s_provider_from_the_engine() -> None:
    class Provider:
        props = {"apiVersion": "v4beta"}

    class Args:
        resource_type = rules.LKE_CLUSTER
        name = "lke"
        props = dict(lke_cluster().inputs)
        opts = None
        urn = None
        provider = Provider()

    assert rules.view_from_policy(Args()).provider_inputs == {"apiVersion": "v4beta"}
