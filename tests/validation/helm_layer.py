"""Every Helm release of the program rendered by Helm itself, from the archive it installs.

The releases come from the whole program run under mocks (`run_program`): chart path, version,
namespace and values exactly as the program registers them (secrets unwrapped, the wire's
integral doubles back to ints). Each one goes through `helm template <name> <archive> -f
values.json --namespace <ns> --kube-version <stack's version> --include-crds --skip-tests
--api-versions ...`: Helm enforces the
chart's values.schema.json and fails on template errors, and the output is what Helm would
install (CRDs from the charts' crds/ directories included, as `helm install` applies them).

This module is the only place the chart tests import the offline engine from.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from components.settings.kubernetes import kubernetes_minor
from policy.cost import unwrap_secrets
from tools.offline import ROOT, ProgramRun, discover_stacks, run_program

STACKS = tuple(discover_stacks())
HELM = ROOT / ".tools" / "bin" / "helm"
VENDOR = ROOT / "vendor" / "charts"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


@dataclass(frozen=True)
class Release:
    stack: str
    name: str
    chart: str  # path relative to the project root, as the program passes it
    version: str
    namespace: str
    values: dict[str, Any]
    kube_version: str

    @property
    def archive(self) -> Path:
        return ROOT / self.chart

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.namespace}/{self.name}"


def _normal(value: Any) -> Any:
    """JSON numbers on the wire are doubles: integral ones back to ints, as YAML would write them."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@cache
def program(stack: str) -> ProgramRun:
    """The whole program for a stack under mocks (once per test process)."""
    return run_program(stack)


def helm_kube_version(version: str) -> str:
    """'1.34' -> '1.34.0'; 'v1.31.9+lke7' -> '1.31.9' (the cluster's real patch level)."""
    plain = version.lstrip("v").split("+", 1)[0]
    return plain if plain.count(".") == 2 else f"{kubernetes_minor(version)}.0"


@cache
def releases(stack: str) -> tuple[Release, ...]:
    # The version the program resolved from what LKE offers (the offline run answers from the catalog).
    (cluster,) = program(stack).of_type("linode:index/lkeCluster:LkeCluster")
    kube_version = helm_kube_version(str(cluster.inputs["k8sVersion"]))
    found = []
    for record in program(stack).of_type(RELEASE_TYPE):
        values, _ = unwrap_secrets(record.inputs.get("values") or {})
        found.append(
            Release(
                stack=stack,
                name=record.inputs["name"],
                chart=record.inputs["chart"],
                version=record.inputs["version"],
                namespace=record.inputs["namespace"],
                values=_normal(values),
                kube_version=kube_version,
            )
        )
    return tuple(found)


def program_objects(stack: str) -> list[dict[str, Any]]:
    """Our own Kubernetes objects (everything but the releases), as the provider would send them."""
    objects = []
    for record in program(stack).resources:
        if record.type.startswith("kubernetes:") and record.type != RELEASE_TYPE:
            plain, _ = unwrap_secrets(record.inputs)
            objects.append(_normal(plain))
    return objects


# --- rendering ---------------------------------------------------------------------------


class HelmRefused(AssertionError):
    """Helm would not install the release: schema violation, template error, bad input."""


# What the cluster answers when a chart asks `.Capabilities.APIVersions.Has "<x>"`. `helm
# template` knows only a default set (no policy/v1/PodDisruptionBudget, for instance), so each
# question the vendored charts ask is answered here as LKE's clusters (Kubernetes 1.31-1.34) do.
# Built-in APIs:
BUILTIN_APIS: dict[str, bool] = {
    "policy/v1": True,
    "policy/v1/PodDisruptionBudget": True,
    "autoscaling/v2": True,
    "networking.k8s.io/v1": True,
    "autoscaling/v2beta2": False,  # removed in 1.26
    "networking.k8s.io/v1beta1": False,  # removed in 1.22
    "policy/v1beta1/PodSecurityPolicy": False,  # removed in 1.25
}
# APIs only a CustomResourceDefinition provides: present when a release of the stack ships the
# CRD in a crds/ directory (Helm installs those first; an upgrade sees every release's), absent
# otherwise (LKE ships no VerticalPodAutoscaler, no Grafana Agent operator).
CRD_GROUPS = frozenset({"monitoring.coreos.com", "autoscaling.k8s.io", "monitoring.grafana.com"})
CAPABILITY_QUERY = re.compile(r'APIVersions\.Has\s+"([^"]+)"')


def crd_apis(archive: Path) -> set[str]:
    """group/version and group/version/Kind of every CRD in the archive's crds/ directories."""
    apis: set[str] = set()
    for path, text in chart_files(archive).items():
        if path.split("/")[-2:-1] != ["crds"] or not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.load_all(text, Loader=_ManifestLoader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                for version in spec["versions"]:
                    apis.add(f"{spec['group']}/{version['name']}")
                    apis.add(f"{spec['group']}/{version['name']}/{spec['names']['kind']}")
    return apis


@cache
def stack_api_versions(stack: str) -> tuple[str, ...]:
    """The `--api-versions` of a stack: built-ins that exist plus the CRD APIs its releases ship."""
    provided = set().union(*(crd_apis(release.archive) for release in releases(stack)))
    return tuple(sorted({api for api, present in BUILTIN_APIS.items() if present} | provided))


def helm_command(release: Release, values_file: Path) -> list[str]:
    api_versions = [arg for api in stack_api_versions(release.stack) for arg in ("--api-versions", api)]
    return [
        str(HELM),
        "template",
        release.name,
        str(release.archive),
        "-f",
        str(values_file),
        "--namespace",
        release.namespace,
        "--kube-version",
        release.kube_version,
        "--include-crds",
        "--skip-tests",  # test hooks run only on `helm test`, which no deployment runs
        *api_versions,
    ]


def _cache_key(release: Release) -> str:
    digest = hashlib.sha256()
    for part in (
        release.name,
        release.namespace,
        release.kube_version,
        hashlib.sha256(release.archive.read_bytes()).hexdigest(),
        json.dumps(release.values, sort_keys=True),
        str(HELM.stat().st_mtime_ns),
        " ".join(stack_api_versions(release.stack)),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def render(release: Release, cache_dir: Path) -> str:
    """`helm template` of one release; rendered once per cache directory (one per test session).

    Several pytest-xdist workers share the directory: a lock per release makes the first one
    render and the others read its result. A refusal is cached too and raised in every worker.
    """
    assert HELM.exists(), f"{HELM} missing: `make helm` installs it"
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(release)
    output, refusal = cache_dir / f"{key}.yaml", cache_dir / f"{key}.refused"
    with (cache_dir / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not output.exists() and not refusal.exists():
            values_file = cache_dir / f"{key}.values.json"
            values_file.write_text(json.dumps(release.values, indent=1, sort_keys=True))
            result = subprocess.run(
                helm_command(release, values_file), capture_output=True, text=True, timeout=300, check=False
            )
            if result.returncode == 0:
                output.write_text(result.stdout)
            else:
                refusal.write_text(result.stderr.strip() or result.stdout.strip())
    if refusal.exists():
        raise HelmRefused(f"{release.key} ({release.chart}): helm template refused: {refusal.read_text()}")
    return output.read_text()


class _ManifestLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1's '=' (value key) is a plain string in Kubernetes manifests (CRD enums carry it)."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The objects Helm would create: a v1 List stands for its items (Helm's client flattens it)."""
    objects = []
    for doc in yaml.load_all(text, Loader=_ManifestLoader):
        if not isinstance(doc, dict) or not doc:
            continue
        if doc.get("apiVersion") == "v1" and doc.get("kind") == "List":
            objects += [item for item in doc.get("items") or [] if item]
        else:
            objects.append(doc)
    return objects


# --- the charts themselves -------------------------------------------------------------------


@cache
def chart_files(archive: Path) -> dict[str, str]:
    """Text files of a chart archive by path inside it ('traefik/values.yaml', ...)."""
    files: dict[str, str] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.size < 5_000_000:
                handle = tar.extractfile(member)
                if handle is not None:
                    try:
                        files[member.name] = handle.read().decode()
                    except UnicodeDecodeError:
                        continue
    return files


@dataclass(frozen=True)
class ChartTree:
    """One chart of an archive (the parent or a sub-chart): its default values and templates."""

    prefix: str  # e.g. 'kube-prometheus-stack/charts/grafana/'
    name: str
    alias_path: tuple[str, ...]  # where its values live in the parent's values ((), ('grafana',))
    default_values: Mapping[str, Any]
    templates: tuple[str, ...]


def chart_trees(archive: Path) -> list[ChartTree]:
    files = chart_files(archive)
    trees = []
    for path, text in files.items():
        if not path.endswith("/Chart.yaml"):
            continue
        prefix = path[: -len("Chart.yaml")]
        meta = yaml.safe_load(text) or {}
        parts = prefix.strip("/").split("/")
        # parent/charts/child/charts/grandchild/ -> ('child', 'grandchild')
        alias_path = tuple(parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i] == "charts")
        values = yaml.safe_load(files.get(prefix + "values.yaml", "") or "") or {}
        templates = tuple(
            body
            for name, body in files.items()
            if name.startswith(prefix + "templates/") and "/charts/" not in name[len(prefix) :]
        )
        trees.append(ChartTree(prefix, str(meta.get("name")), alias_path, values, templates))
    # A dependency may be aliased in the parent's Chart.yaml: its values live under the alias.
    for tree in list(trees):
        meta = yaml.safe_load(files[tree.prefix + "Chart.yaml"]) or {}
        for dependency in meta.get("dependencies") or []:
            alias = dependency.get("alias")
            if alias:
                for index, child in enumerate(trees):
                    if child.alias_path == (*tree.alias_path, dependency["name"]):
                        trees[index] = ChartTree(
                            child.prefix, child.name, (*tree.alias_path, alias), child.default_values, child.templates
                        )
    return trees


def leaf_paths(values: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path of a values tree down to its leaves (lists and empty maps are leaves; no values
    at all is no path)."""
    if isinstance(values, dict) and values:
        for key, item in values.items():
            yield from leaf_paths(item, (*prefix, str(key)))
    elif prefix:
        yield prefix


# --- custom resources: the charts' CRDs, structurally -----------------------------------------

_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def structural(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A CRD openAPIV3Schema as JSON Schema, the API server's way: unknown fields are errors."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = structural(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [structural(sub) for sub in value]
        elif key == "pattern" and "(?i)" in value:
            out[key] = "(?i)" + value.replace("(?i)", "")  # RE2 allows inline flags anywhere, Python not
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [*out.get("anyOf", []), {"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("x-kubernetes-embedded-resource"):
        out.setdefault("properties", {}).update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> JSON Schema of every served version of every CRD among `objects`."""
    schemas = {}
    for crd in objects:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = structural(version["schema"]["openAPIV3Schema"])
            properties = schema.setdefault("properties", {})
            properties["apiVersion"] = {"const": f"{spec['group']}/{version['name']}"}
            properties["kind"] = {"const": spec["names"]["kind"]}
            properties["metadata"] = _OBJECT_META
            schema["additionalProperties"] = False
            schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
            validator = jsonschema.Draft7Validator(schema)
            schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = validator
    return schemas


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = Path(__file__).with_name("checkov-kubernetes.yaml")


def checkov_summary(directory: Path) -> dict[str, Any]:
    """checkov's Kubernetes framework over a directory of manifests (own virtualenv, no download)."""
    assert CHECKOV.exists(), f"{CHECKOV} missing: `make setup-tools` creates it"
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--config-file",
            str(CHECKOV_CONFIG),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    return {"summary": report["summary"], "failed": report.get("results", {}).get("failed_checks", [])}
