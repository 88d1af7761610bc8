"""Every Helm release of every stack, rendered by Helm from its vendored archive, then judged.

- `helm template` with exactly the values the program passes (the chart's values.schema.json is
  enforced by Helm; a refusal fails here as it would fail `pulumi up`);
- no value the chart would silently ignore (every key path we set is in the chart's values.yaml,
  a sub-chart's, or read by a template; free-form maps are listed in FREE_FORM);
- the rendered objects plus our own: `kubernetes-validate --strict` for built-in kinds, the
  charts' CRD openAPIV3Schema (structural: unknown fields are errors) for custom resources, and
  checkov with tests/validation/checkov-kubernetes.yaml;
- where one release is the client of another, the two agree (Loki gateway auth, PROXY protocol
  range, Alertmanager receivers).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.kubernetes.charts import archive_name
from components.kubernetes.lke import node_firewall_rules
from components.linode.catalog import NODEBALANCER_RANGE
from tests.validation.helm_layer import (
    STACKS,
    VENDOR,
    HelmRefused,
    Release,
    chart_trees,
    checkov_summary,
    crd_schemas,
    leaf_paths,
    program,
    program_objects,
    releases,
)
from tools.offline import load_stack_settings

# kubernetes-validate reads and parses its (large) schema file on every call; the files do not
# change during a run, so one parse each is enough (same results, a fraction of the time).
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)

Rendered = Callable[[str], list[tuple[Release, list[dict[str, Any]]]]]

# Maps a chart copies verbatim (toYaml/tpl) into a Kubernetes object or a component's config
# file: their keys are the consumer's, not the chart's (the object's are checked by
# kubernetes-validate below). Key: chart name -> value paths.
FREE_FORM: dict[str, set[tuple[str, ...]]] = {
    "traefik": {("resources",), ("service", "annotations"), ("service", "spec")},
    "cert-manager": {
        ("resources",),
        ("cainjector", "resources"),
        ("webhook", "resources"),
        ("startupapicheck", "resources"),
    },
    "loki": {
        ("singleBinary", "resources"),
        ("gateway", "resources"),
        ("sidecar", "resources"),
        ("loki", "podSecurityContext"),
        ("gateway", "podSecurityContext"),
        ("loki", "compactor"),  # Loki's compactor block
        ("loki", "schemaConfig"),  # Loki's schema_config block
        ("loki", "limits_config"),  # Loki's limits_config block
    },
    "alloy": {
        ("alloy", "resources"),
        ("alloy", "extraEnv"),
        ("alloy", "securityContext"),
        ("configReloader", "resources"),
        ("configReloader", "securityContext"),
        ("global", "podSecurityContext"),
    },
    "kube-prometheus-stack": {
        ("additionalPrometheusRulesMap",),  # PrometheusRule spec per key
        ("prometheus", "prometheusSpec", "storageSpec"),  # Prometheus CR storage spec
        ("prometheus", "prometheusSpec", "resources"),
        ("alertmanager", "alertmanagerSpec", "resources"),
        ("prometheusOperator", "resources"),
        ("prometheusOperator", "admissionWebhooks", "patch", "resources"),
        ("prometheus-node-exporter", "resources"),
        ("kube-state-metrics", "resources"),
        ("grafana", "resources"),
        ("grafana", "sidecar", "resources"),
        ("prometheus-node-exporter", "securityContext"),
        ("prometheus-node-exporter", "containerSecurityContext"),
    },
}


def release_chart(release: Release) -> str:
    return Path(release.chart).name[: -len(f"-{release.version}.tgz")]


# --- the archives ----------------------------------------------------------------------------


def test_every_release_installs_a_vendored_archive_of_its_pinned_version() -> None:
    lines = (VENDOR / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split() for line in lines)}
    installed = set()
    for stack in STACKS:
        for release in releases(stack):
            name = Path(release.chart).name
            assert release.chart == f"vendor/charts/{name}", release.key
            assert name == archive_name(release_chart(release), release.version), release.key
            assert hashlib.sha256(release.archive.read_bytes()).hexdigest() == sums[name], name
            with tarfile.open(release.archive) as tar:
                member = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
                handle = tar.extractfile(member)
                assert handle is not None
                assert yaml.safe_load(handle.read())["version"] == release.version, name
            installed.add(name)
    assert installed == set(sums), "every vendored archive is installed by some stack, and only those"


# --- Helm renders every release ----------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_helm_renders_every_release_with_the_values_the_program_passes(stack: str, render_stack: Rendered) -> None:
    rendered = render_stack(stack)
    # Standard-tier clusters also run Linode's cloud-firewall-controller (and its CRD chart).
    firewall_controller = (
        {"cloud-firewall-crd", "cloud-firewall"}
        if program(stack).of_type("linode:index/lkeCluster:LkeCluster")[0].inputs.get("tier") != "enterprise"
        else set()
    )
    expected = {"traefik", "cert-manager", "monitoring", "loki", "alloy", *firewall_controller}
    assert {release.name for release, _ in rendered} == expected
    for release, objects in rendered:
        assert objects, f"{release.key} renders nothing"


def test_helm_enforces_the_charts_values_schema(render_stack: Rendered, helm_cache: Path) -> None:
    from tests.validation.helm_layer import render

    (traefik,) = [release for release, _ in render_stack("dev") if release.name == "traefik"]
    bad = Release(**{**traefik.__dict__, "values": {**traefik.values, "globalArguments": ["--x"]}})
    with pytest.raises(HelmRefused, match="globalArguments"):
        render(bad, helm_cache)


def _lookup(tree: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def ignored_values(release: Release) -> list[str]:
    """Key paths we set that neither the chart (or a sub-chart) declares nor a template reads."""
    trees = chart_trees(release.archive)
    free = FREE_FORM.get(release_chart(release), set())
    ignored = []
    for path in leaf_paths(release.values):
        if any(path[: len(prefix)] == prefix for prefix in free):
            continue
        known = False
        for tree in trees:
            depth = len(tree.alias_path)
            sub = path[depth:]
            if path[:depth] != tree.alias_path or not sub:
                continue
            reference = re.compile(re.escape(".Values." + ".".join(sub)) + r"\b")
            if _lookup(tree.default_values, sub) or any(reference.search(body) for body in tree.templates):
                known = True
                break
        if not known:
            ignored.append(".".join(path))
    return ignored


@pytest.mark.parametrize("stack", STACKS)
def test_no_value_we_set_is_silently_ignored_by_its_chart(stack: str) -> None:
    ignored = {release.name: ignored_values(release) for release in releases(stack)}
    assert {name: paths for name, paths in ignored.items() if paths} == {}


def test_the_ignored_value_check_catches_a_moved_key() -> None:
    (traefik,) = [release for release in releases("dev") if release.name == "traefik"]
    moved = Release(**{**traefik.__dict__, "values": {**traefik.values, "service": {"type": "ClusterIP"}}})
    assert ignored_values(moved) == ["service.type"]


# --- schemas: built-in kinds and the charts' CRDs -------------------------------------------------


def stack_objects(stack: str, render_stack: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    """(origin, object) for every rendered object of every release, then the program's own."""
    for release, objects in render_stack(stack):
        for obj in objects:
            yield f"{release.name} ({release_chart(release)})", obj
    for obj in program_objects(stack):
        yield "program", obj


def kubernetes_minor_version(stack: str) -> str:
    (release, *_) = releases(stack)
    return ".".join(release.kube_version.split(".")[:2]) + ".0"


def validate_objects(stack: str, render_stack: Rendered) -> dict[str, int]:
    """Validate every object of the stack; returns counts by validator. Fails with every error."""
    objects = list(stack_objects(stack, render_stack))
    schemas = crd_schemas([obj for _, obj in objects])
    version = kubernetes_minor_version(stack)
    counts = {"builtin": 0, "custom": 0}
    errors = []
    for origin, obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        where = f"{origin}: {key[1]} {obj.get('metadata', {}).get('name')}"
        try:
            if key in schemas:
                schemas[key].validate(obj)
                counts["custom"] += 1
            else:
                kubernetes_validate.validate(obj, version, strict=True)
                counts["builtin"] += 1
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            errors.append(f"{where}: {getattr(error, 'message', error)} at {list(getattr(error, 'path', []))}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: neither a built-in kind of {version} nor a custom resource of a chart's CRD")
    assert errors == []
    return counts


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_and_declared_object_passes_its_schema(stack: str, render_stack: Rendered) -> None:
    counts = validate_objects(stack, render_stack)
    assert counts["custom"] >= 5  # ServiceMonitors, PrometheusRule, Prometheus, Alertmanager, Middlewares
    print(f"{stack}: {counts['builtin']} built-in objects, {counts['custom']} custom resources validated")


def test_crd_schemas_refuse_unknown_fields(render_stack: Rendered) -> None:
    schemas = crd_schemas([obj for _, obj in stack_objects("prod", render_stack)])
    middleware: dict[str, Any] = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "Middleware",
        "metadata": {"name": "x", "namespace": "app"},
        "spec": {"rateLimit": {"average": 10, "burst": 20, "typo": 1}},
    }
    with pytest.raises(jsonschema.ValidationError, match="typo"):
        schemas[("traefik.io/v1alpha1", "Middleware")].validate(middleware)
    del middleware["spec"]["rateLimit"]["typo"]
    schemas[("traefik.io/v1alpha1", "Middleware")].validate(middleware)


# --- checkov -----------------------------------------------------------------------------------

# Findings on chart-rendered objects that we accept, with the reason. They are written into the
# copy checkov reads as `checkov.io/skipN` annotations (the policy's only suppression mechanism),
# so checkov reports each as skipped with its reason; anything else fails.
# Key: (release, kind, name pattern) -> {check: reason}.
TAG = "the vendored, checksummed chart pins each image by its release tag; no digest-pinning fork"
PULL = "release tags are immutable upstream: IfNotPresent keeps pod restarts independent of the registry"
TOKEN = "talks to the Kubernetes API (controller, watcher or hook): it needs its token"
WORKLOADS = "Deployment|DaemonSet|StatefulSet|Job"
FIXED_BY_CHART = "Linode's chart fixes the container securityContext and exposes no value to harden it further"
CHART_SKIPS: dict[tuple[str, str, str], dict[str, str]] = {
    ("traefik", WORKLOADS, "traefik"): {"CKV_K8S_43": TAG, "CKV_K8S_15": PULL, "CKV_K8S_38": TOKEN},
    ("cert-manager", WORKLOADS, "cert-manager.*"): {
        "CKV_K8S_43": TAG,
        "CKV_K8S_15": PULL,
        "CKV_K8S_38": TOKEN,
        "CKV_K8S_40": "runs as the image's non-root uid 1000 (runAsNonRoot enforced by the chart)",
    },
    ("cert-manager", "Deployment", "cert-manager"): {
        "CKV_K8S_9": "a leader-elected controller serves no traffic: the chart gives it a liveness probe only",
    },
    ("cert-manager", "Deployment", "cert-manager-cainjector"): {
        "CKV_K8S_8": "cainjector exposes no health endpoint to probe (upstream chart)",
        "CKV_K8S_9": "cainjector serves no traffic and exposes no health endpoint (upstream chart)",
    },
    ("cert-manager", "ClusterRole", "cert-manager-cainjector"): {
        "CKV_K8S_155": "injecting CA bundles into webhook configurations is cainjector's purpose",
    },
    ("loki", WORKLOADS, "loki.*"): {"CKV_K8S_43": TAG, "CKV_K8S_15": PULL},
    ("loki", "StatefulSet", "loki"): {
        "CKV_K8S_38": "Loki discovers its memberlist peers through the Kubernetes API",
        "CKV_K8S_8": "upstream leaves liveness off on purpose: WAL replay after a restart can outlast it",
    },
    ("loki", "Deployment", "loki-gateway"): {
        "CKV_K8S_38": "the gateway shares the chart's ServiceAccount; the chart has no per-pod switch",
        "CKV_K8S_40": "nginx-unprivileged's own non-root uid 101 (runAsNonRoot enforced by the chart)",
        "CKV_K8S_8": "nginx with a readiness probe; the kubelet restarts it if it exits",
    },
    ("alloy", "DaemonSet", "alloy"): {
        "CKV_K8S_43": TAG,
        "CKV_K8S_15": PULL,
        "CKV_K8S_38": "reads pod logs through the Kubernetes API",
        "CKV_K8S_40": "the Alloy image's own user, uid 473 (runAsNonRoot set by components/chart_sizing.py)",
        "CKV_K8S_8": "the chart defines no probes for Alloy; the kubelet restarts it if it exits",
        "CKV_K8S_9": "a log shipper serves no traffic: nothing to gate on readiness",
    },
    ("monitoring", WORKLOADS, "monitoring-.*"): {"CKV_K8S_43": TAG, "CKV_K8S_15": PULL},
    ("monitoring", WORKLOADS, "monitoring-(grafana|kube-state-metrics|operator|admission-.*)"): {
        "CKV_K8S_38": TOKEN,
    },
    ("monitoring", "DaemonSet", "monitoring-prometheus-node-exporter"): {
        "CKV_K8S_17": "node metrics: the exporter reads the host's process table",
        "CKV_K8S_19": "node metrics: the exporter reads the host's network interfaces",
    },
    ("monitoring", "Deployment", "monitoring-grafana"): {
        "CKV_K8S_40": "Grafana's own non-root uid 472 (runAsNonRoot enforced by the chart)",
        "CKV_K8S_22": "Grafana writes plugins and sessions beside its data volume",
        "CKV_K8S_35": "Grafana reads its admin login from env (GF_SECURITY_ADMIN_*), from our Secret",
        "CKV_K8S_8": "the dashboard and datasource sidecars have no health endpoint; Grafana is probed",
        "CKV_K8S_9": "the dashboard and datasource sidecars have no health endpoint; Grafana is probed",
    },
    ("monitoring", "Job", "monitoring-admission-.*"): {
        "CKV_K8S_40": "the webhook certgen image's own non-root uid 2000 (runAsNonRoot enforced)",
    },
    ("monitoring", "ClusterRoleBinding", "monitoring-grafana-clusterrolebinding"): {
        "CKV2_K8S_5": "Grafana's sidecars load dashboards and datasources from labelled ConfigMaps/Secrets",
    },
    ("monitoring", "RoleBinding", "monitoring-admission"): {
        "CKV2_K8S_5": "the admission hook jobs create and read the webhook's TLS Secret in their namespace",
    },
    ("monitoring", "ClusterRole", "monitoring-admission"): {
        "CKV_K8S_155": "the hook jobs patch the operator's webhook configurations with their CA",
    },
    # Linode's chart sets the container's securityContext itself (allowPrivilegeEscalation false,
    # runAsNonRoot) and offers no value for the rest (templates/deployment.yaml, chart 0.2.1).
    ("cloud-firewall", "Deployment", "cloud-firewall-controller"): {
        "CKV_K8S_43": TAG,
        "CKV_K8S_15": PULL,
        "CKV_K8S_38": "watches Nodes and its CloudFirewall objects through the Kubernetes API",
        "CKV_K8S_37": FIXED_BY_CHART,
        "CKV_K8S_28": FIXED_BY_CHART,
        "CKV_K8S_40": FIXED_BY_CHART,
        "CKV_K8S_22": FIXED_BY_CHART,
        "CKV_K8S_31": FIXED_BY_CHART,
        "CKV2_K8S_6": "kube-system is LKE's own namespace; the controller only calls out (API server, Linode API)",
    },
    ("monitoring", "ClusterRole", "monitoring-operator"): {
        "CKV_K8S_49": "the operator manages every monitoring.coreos.com kind (upstream role)",
    },
}


def _annotate_skips(obj: dict[str, Any], release: str) -> dict[str, Any]:
    skips: dict[str, str] = {}
    for (name, kind, pattern), checks in CHART_SKIPS.items():
        if name == release and re.fullmatch(kind, obj["kind"]) and re.fullmatch(pattern, obj["metadata"]["name"]):
            skips.update(checks)
    if not skips:
        return obj
    annotated = json.loads(json.dumps(obj))
    annotations = annotated["metadata"].get("annotations") or {}
    annotated["metadata"]["annotations"] = annotations
    for index, (check, reason) in enumerate(sorted(skips.items()), start=1):
        annotations[f"checkov.io/skip{index}"] = f"{check}={reason}"
    return annotated


def checkov_report(stack: str, render_stack: Rendered, directory: Path) -> dict[str, Any]:
    index = 0
    for release, objects in render_stack(stack):
        for obj in objects:
            if obj.get("kind") == "CustomResourceDefinition":
                continue  # definitions, not workloads: checkov has no check for them
            index += 1
            doc = _annotate_skips(obj, release.name)
            (directory / f"{index:04d}-{release.name}-{obj['kind'].lower()}.yaml").write_text(yaml.safe_dump(doc))
    for obj in program_objects(stack):
        index += 1
        (directory / f"{index:04d}-program-{obj['kind'].lower()}.yaml").write_text(yaml.safe_dump(obj))
    return checkov_summary(directory)


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_reports_no_failed_check_on_rendered_and_declared_objects(
    stack: str, render_stack: Rendered, tmp_path: Path
) -> None:
    report = checkov_report(stack, render_stack, tmp_path)
    failed = sorted({(f["check_id"], f["resource"], f.get("file_path", "")) for f in report["failed"]})
    summary = report["summary"]
    print(f"{stack}: checkov passed {summary['passed']}, failed {summary['failed']}, skipped {summary['skipped']}")
    assert failed == []
    assert summary["passed"] > 500


# --- releases that are clients of each other -------------------------------------------------


def _objects(rendered: list[tuple[Release, list[dict[str, Any]]]], release: str) -> list[dict[str, Any]]:
    return next(objects for r, objects in rendered if r.name == release)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _secret_text(secret: dict[str, Any], key: str) -> str:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    return base64.b64decode(secret["data"][key]).decode()


def _gateway_auth(loki_objects: list[dict[str, Any]]) -> tuple[bool, set[str]]:
    """(does the gateway demand basic auth, the users of its htpasswd)."""
    nginx = _find(loki_objects, "ConfigMap", "loki-gateway")["data"]["nginx.conf"]
    demands = re.search(r"^\s*auth_basic\s+\"", nginx, re.M) is not None
    users: set[str] = set()
    if demands:
        htpasswd = _secret_text(_find(loki_objects, "Secret", "loki-gateway"), ".htpasswd")
        users = {line.split(":", 1)[0].strip() for line in htpasswd.splitlines() if ":" in line}
    return demands, users


def _gateway_hosts(namespace: str) -> set[str]:
    return {f"loki-gateway.{namespace}.svc.cluster.local", f"loki-gateway.{namespace}.svc", f"loki-gateway.{namespace}"}


def _alloy_writes(alloy_objects: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(url, sends basic auth) of every loki.write endpoint in the in-cluster Alloy's config."""
    config = _find(alloy_objects, "ConfigMap", "alloy")["data"]["config.alloy"]
    endpoints = []
    for block in re.findall(r"endpoint\s*\{(.*?)\n  \}", config, re.S):
        url = re.search(r'url\s*=\s*"([^"]+)"', block)
        assert url, block
        endpoints.append((url.group(1), "basic_auth" in block))
    assert endpoints, "Alloy writes to Loki"
    return endpoints


def _grafana_loki_sources(monitoring_objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sources = []
    for obj in monitoring_objects:
        if obj["kind"] not in ("ConfigMap", "Secret"):
            continue
        for key in (obj.get("data") or {}) | (obj.get("stringData") or {}):
            if not key.endswith(".yaml") or "datasource" not in obj["metadata"]["name"]:
                continue
            text = _secret_text(obj, key) if obj["kind"] == "Secret" else obj["data"][key]
            doc = yaml.safe_load(text) or {}
            sources += [s for s in doc.get("datasources") or [] if s.get("type") == "loki"]
    return sources


@pytest.mark.parametrize("stack", STACKS)
def test_every_client_of_the_loki_gateway_authenticates_or_goes_around_it(stack: str, render_stack: Rendered) -> None:
    rendered = render_stack(stack)
    (loki,) = [r for r, _ in rendered if r.name == "loki"]
    demands, users = _gateway_auth(_objects(rendered, "loki"))
    gateway = _gateway_hosts(loki.namespace)

    def through_gateway(url: str) -> bool:
        host = re.sub(r"^https?://", "", url).split("/", 1)[0].split(":", 1)[0]
        return host in gateway

    def around_gateway_to_loki(url: str) -> bool:
        """A client going around the gateway must reach a port of a Service the loki release has."""
        match = re.fullmatch(r"https?://([^./:]+)\.([^./:]+)\.svc\.cluster\.local:(\d+)(/.*)?", url)
        assert match, url
        service = _find(_objects(rendered, "loki"), "Service", match.group(1))
        assert match.group(2) == loki.namespace
        assert int(match.group(3)) in {port["port"] for port in service["spec"]["ports"]}, url
        return True

    for url, authenticates in _alloy_writes(_objects(rendered, "alloy")):
        assert not (demands and through_gateway(url) and not authenticates), f"Alloy -> {url}: 401"
        assert through_gateway(url) or around_gateway_to_loki(url)
    (source,) = _grafana_loki_sources(_objects(rendered, "monitoring"))
    if demands and through_gateway(source["url"]):
        assert source.get("basicAuth") and source.get("basicAuthUser") in users, source
        assert "basicAuthPassword" in (source.get("secureJsonData") or {}), source
    assert through_gateway(source["url"]) or around_gateway_to_loki(source["url"])
    # The data VMs push through the ingress to the gateway, with the user the gateway knows.
    settings_push = [
        r
        for r in program(stack).of_type("kubernetes:networking.k8s.io/v1:Ingress")
        if r.inputs["metadata"]["name"] == "loki-push"
    ]
    for ingress in settings_push:
        backend = ingress.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
        assert backend == "loki-gateway" and demands, "the VMs' push endpoint is the authenticated gateway"
        from components.operations.logging import PUSH_USER

        assert users == {PUSH_USER}


def _args(deployment: dict[str, Any], container: str) -> list[str]:
    (spec,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == container]
    return [str(a) for a in spec.get("args", [])]


@pytest.mark.parametrize("stack", STACKS)
def test_traefik_trusts_proxy_headers_exactly_from_where_the_load_balancer_connects(
    stack: str, render_stack: Rendered
) -> None:
    rendered = render_stack(stack)
    objects = _objects(rendered, "traefik")
    (service,) = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "traefik"]
    args = _args(_find(objects, "Deployment", "traefik"), "traefik")
    trusted = {
        entry: set(value.split(","))
        for arg in args
        if (m := re.fullmatch(r"--entryPoints\.(\w+)\.proxyProtocol\.trustedIPs=(.*)", arg))
        for entry, value in [m.groups()]
    }
    annotations = service["metadata"].get("annotations") or {}
    proxy = annotations.get("service.beta.kubernetes.io/linode-loadbalancer-default-proxy-protocol")
    # Where the NodeBalancer connects from: the backend range pinned for a VPC-backed one, else
    # Linode's NodeBalancer range (linode-cloud-controller-manager, loadbalancer.md).
    backend_range = annotations.get("service.beta.kubernetes.io/linode-loadbalancer-backend-ipv4-range")
    where_from = {backend_range} if backend_range else {NODEBALANCER_RANGE}
    if service["spec"].get("type") != "LoadBalancer":
        assert proxy is None and trusted == {}, "no load balancer: no PROXY header to trust"
        return
    assert proxy == "v2"
    # The NodeBalancer sends a PROXY header on every connection: both entry points must parse it,
    # and only from the NodeBalancer's addresses, which Traefik sees only if kube-proxy keeps the
    # source address (externalTrafficPolicy Local; Cluster would SNAT it to a node's address).
    assert service["spec"].get("externalTrafficPolicy") == "Local"
    assert set(trusted) == {"web", "websecure"}
    assert all(ranges == where_from for ranges in trusted.values()), (trusted, where_from)
    # And the nodes' firewall lets that source reach the NodePorts: ours on Enterprise, Linode's
    # default ruleset (kept by cloud-firewall-controller, node_firewall_rules mirrors it) on standard.
    node_rules = [
        rule
        for firewall in program(stack).of_type("linode:index/firewall:Firewall")
        if firewall.inputs["label"] == program(stack).of_type("linode:index/lkeCluster:LkeCluster")[0].inputs["label"]
        for rule in firewall.inputs.get("inbounds") or []
    ] or [{"protocol": r.protocol, "ports": r.ports, "ipv4s": list(r.sources)} for r in node_firewall_rules(None)]
    source = ipaddress.IPv4Network(next(iter(where_from)))
    assert any(
        _ports_include(str(rule.get("ports") or ""), 30000)
        and rule.get("protocol") == "TCP"
        and any(source.subnet_of(ipaddress.IPv4Network(s)) for s in rule.get("ipv4s") or [] if ":" not in s)
        for rule in node_rules
    ), (where_from, node_rules)


def _ports_include(ports: str, port: int) -> bool:
    for part in filter(None, ports.split(",")):
        low, _, high = part.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _alertmanager_config(monitoring_objects: list[dict[str, Any]]) -> dict[str, Any]:
    (secret,) = [
        o
        for o in monitoring_objects
        if o["kind"] == "Secret"
        and o["metadata"]["name"].startswith("alertmanager-")
        and "alertmanager.yaml" in ((o.get("data") or {}) | (o.get("stringData") or {}))
    ]
    return yaml.safe_load(_secret_text(secret, "alertmanager.yaml"))


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes") or []:
        yield from _routes(child)


@pytest.mark.parametrize("stack", STACKS)
def test_alertmanager_routes_name_existing_receivers_and_amtool_accepts_the_config(
    stack: str, render_stack: Rendered, tmp_path: Path
) -> None:
    config = _alertmanager_config(_objects(render_stack(stack), "monitoring"))
    receivers = {receiver["name"] for receiver in config["receivers"]}
    for route in _routes(config["route"]):
        assert route.get("receiver", config["route"]["receiver"]) in receivers, route
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with the Debian package prometheus-alertmanager (make system-packages)"
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_capability_question_of_the_vendored_charts_has_an_answer() -> None:
    from tests.validation.helm_layer import BUILTIN_APIS, CAPABILITY_QUERY, CRD_GROUPS, chart_files

    asked = {
        query
        for archive in VENDOR.glob("*.tgz")
        for text in chart_files(archive).values()
        for query in CAPABILITY_QUERY.findall(text)
    }
    unanswered = {q for q in asked if q not in BUILTIN_APIS and q.split("/")[0] not in CRD_GROUPS}
    assert unanswered == set(), "answer them in helm_layer.BUILTIN_APIS or CRD_GROUPS"


def _pod_templates(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield obj, obj["spec"]["template"]


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitors_we_add_select_a_rendered_metrics_port_of_another_release(
    stack: str, render_stack: Rendered
) -> None:
    """Traefik's request metrics and cert-manager's certificate metrics are really scraped."""
    rendered = render_stack(stack)
    monitoring = _objects(rendered, "monitoring")
    everything = [(r, obj) for r, objects in rendered for obj in objects]
    monitors = {o["metadata"]["name"]: o for o in monitoring if o["kind"] in ("PodMonitor", "ServiceMonitor")}
    for name in ("traefik", "cert-manager"):
        monitor = monitors[name]
        selector = monitor["spec"]["selector"]["matchLabels"]
        namespaces = monitor["spec"].get("namespaceSelector", {})
        in_scope = [
            (r, o)
            for r, o in everything
            if namespaces.get("any") or o["metadata"].get("namespace", r.namespace) in namespaces.get("matchNames", [])
        ]
        if monitor["kind"] == "PodMonitor":
            (port,) = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
            ports = {
                p.get("name")
                for _, o in in_scope
                for workload, template in _pod_templates([o])
                if _matches(selector, template["metadata"].get("labels", {}))
                for c in template["spec"]["containers"]
                for p in c.get("ports", [])
            }
        else:
            (port,) = {e["port"] for e in monitor["spec"]["endpoints"]}
            ports = {
                p.get("name")
                for _, o in in_scope
                if o["kind"] == "Service" and _matches(selector, o["metadata"].get("labels", {}))
                for p in o["spec"]["ports"]
            }
        assert port in ports, (name, port, ports)
    traefik_args = _args(_find(_objects(rendered, "traefik"), "Deployment", "traefik"), "traefik")
    assert "--metrics.prometheus=true" in traefik_args and "--metrics.prometheus.entrypoint=metrics" in traefik_args
    rules = [
        rule["alert"]
        for o in monitoring
        if o["kind"] == "PrometheusRule"
        for group in o["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert "CertificateExpiringSoon" in rules
    assert ("DataCertificateExpiringSoon" in rules) == load_stack_settings(stack).data.tls


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_tails_each_pod_once(stack: str, render_stack: Rendered) -> None:
    """A DaemonSet of Alloys must each keep to their own node's pods (or share targets as a cluster)."""
    objects = _objects(render_stack(stack), "alloy")
    config = _find(objects, "ConfigMap", "alloy")["data"]["config.alloy"]
    (daemonset,) = [o for o in objects if o["kind"] == "DaemonSet"]
    (container,) = [c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "alloy"]
    clustered = "--cluster.enabled=true" in container.get("args", [])
    field = re.search(r'field\s*=\s*"spec\.nodeName="\s*\+\s*sys\.env\("(\w+)"\)', config)
    if not clustered:
        assert field, "every Alloy of the DaemonSet would tail every pod of the cluster"
        env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container.get("env", [])}
        assert env.get(field.group(1)) == "spec.nodeName"


def test_every_checkov_skip_names_an_object_some_stack_renders(render_stack: Rendered) -> None:
    used = set()
    for stack in STACKS:
        for release, objects in render_stack(stack):
            for obj in objects:
                used |= {
                    (name, kind, pattern)
                    for name, kind, pattern in CHART_SKIPS
                    if name == release.name
                    and re.fullmatch(kind, obj["kind"])
                    and re.fullmatch(pattern, obj["metadata"]["name"])
                }
    assert set(CHART_SKIPS) - used == set(), "stale skips: remove them"


@pytest.mark.parametrize("stack", STACKS)
def test_the_cost_estimate_counts_every_load_balancer_service_helm_renders(stack: str, render_stack: Rendered) -> None:
    """Each LoadBalancer Service becomes a NodeBalancer on the bill: the estimate must see it."""
    from policy.cost import _load_balancer_services

    rendered = [
        obj
        for _, objects in render_stack(stack)
        for obj in objects
        if obj["kind"] == "Service" and obj["spec"].get("type") == "LoadBalancer"
    ]
    estimated = sum(_load_balancer_services(release.values) for release in releases(stack))
    assert estimated == len(rendered)
    assert (len(rendered) == 0) == (stack == "dev")  # dev: no load balancer (seeds)
