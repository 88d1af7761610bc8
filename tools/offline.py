"""Run the whole Pulumi program (or one component) under mocks, offline.

`run_program("prod")` executes `__main__.py` with `runpy` under `pulumi.runtime.set_mocks`,
fed with the real `Pulumi.prod.yaml`, and returns every registered resource with its inputs,
mocked outputs, parent, `protect`, `ignore_changes` and which inputs are secret. The offline
preview and the policy pack read the same records, so tests, preview and policy agree.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.sync_await import _sync_await

from components.settings.stack_config import OFFLINE_PLACEHOLDERS_TOLERATED
from components.settings.stack_file import read_stack_file
from policy.cost import SECRET_SIG, SECRET_SIG_KEY  # Pulumi's secret marker, defined once

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "platform-infra"

# Stand-ins for `secure:` values and for secrets an operator sets with `pulumi config set
# --secret`; real values never exist in the repository.
FAKE_SECRETS: dict[str, str] = {
    "linode:token": "fake-linode-token-0123456789abcdef",
    # Alertmanager's SMTP login, required wherever a stack names an SMTP user.
    "platform-infra:alert_smtp_password": "fake-smtp-password-0123456789abcdef",
}


@dataclass
class ResourceRecord:
    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None
    protect: bool
    ignore_changes: list[str]
    secret_inputs: set[str]
    provider: str | None
    depends_on: list[str] = field(default_factory=list)

    @property
    def custom(self) -> bool:
        return not self.type.startswith("platform:")


@dataclass
class ProgramRun:
    stack: str
    resources: list[ResourceRecord]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    seconds: float

    def of_type(self, type_: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> ResourceRecord:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def children_of(self, record: ResourceRecord) -> list[ResourceRecord]:
        return [r for r in self.resources if r.parent == record.urn]

    def by_urn(self) -> dict[str, ResourceRecord]:
        return {r.urn: r for r in self.resources}


class _Counter:
    def __init__(self) -> None:
        self.value = 10_000_000

    def next(self) -> str:
        self.value += 1
        return str(self.value)


def _fake_kubeconfig(name: str) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": "https://10000001.eu-central-1.linodelke.net:443",
                    "certificate-authority-data": "LS0tLS1CRUdJTi0tLS0t",
                },
            }
        ],
        "users": [{"name": f"{name}-admin", "user": {"token": "fake-token"}}],
        "contexts": [{"name": f"{name}-ctx", "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": f"{name}-ctx",
    }
    return base64.b64encode(yaml.safe_dump(doc).encode()).decode()


# Real-size PKI material (RSA 4096, larger than the P-256 keys the program asks for, and a
# certificate with a 3-node SAN list), so user-data size budgets see what production sees.
_PKI = Path(__file__).resolve().parent / "mock_pki"
_FAKE_PEM = (_PKI / "server.cert.pem").read_text()
_FAKE_KEY = (_PKI / "rsa4096.key.pem").read_text()
_FAKE_PUBLIC_KEY = (_PKI / "rsa4096.pub.pem").read_text()
_FAKE_OPENSSH_KEY = (_PKI / "rsa4096.openssh.key").read_text()
_FAKE_CSR = (_PKI / "server.csr.pem").read_text()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def realistic_outputs(type_: str, name: str, inputs: dict[str, Any], rid: str) -> dict[str, Any]:
    """What the provider would add to the inputs once the resource exists."""
    out = dict(inputs)
    n = int(rid) % 250 + 2
    if type_ == "linode:index/instance:Instance":
        out.setdefault("ip_address", f"172.105.{n // 250}.{n}")
        out.setdefault("ipv4s", [out["ip_address"]])
        out.setdefault("ipv6", f"2a01:7e01::f03c:94ff:fe{n:02x}:1/128")
        out.setdefault("status", "running")
        if inputs.get("privateIp"):
            out.setdefault("privateIpAddress", f"192.168.{128 + n // 250}.{n}")
    elif type_ == "linode:index/lkeCluster:LkeCluster":
        out["kubeconfig"] = _fake_kubeconfig(inputs.get("label", name))
        out["api_endpoints"] = [f"https://{rid}.eu-central-1.linodelke.net:443"]
        out["dashboard_url"] = f"https://console.linode.com/kubernetes/clusters/{rid}"
        out["pools"] = [
            {
                **pool,
                "id": int(rid) + i,
                # Nested values keep the engine's camelCase names (only top-level keys are translated).
                "nodes": [
                    {"id": f"{rid}-{i}-{k}", "instanceId": int(rid) + 100 * (i + 1) + k, "status": "ready"}
                    for k in range(int(pool.get("count") or (pool.get("autoscaler") or {}).get("min") or 1))
                ],
            }
            for i, pool in enumerate(inputs.get("pools", []) or [])
        ]
    elif type_ == "linode:index/nodeBalancer:NodeBalancer":
        out.setdefault("ipv4", f"172.105.200.{n}")
        out.setdefault("hostname", f"nb-172-105-200-{n}.frankfurt.nodebalancer.linode.com")
    elif type_ == "linode:index/objectStorageBucket:ObjectStorageBucket":
        region = inputs.get("region") or inputs.get("cluster") or "eu-central"
        out.setdefault("hostname", f"{inputs.get('label', name)}.{region}-1.linodeobjects.com")
        out.setdefault("endpoint", f"{region}-1.linodeobjects.com")
    elif type_ == "linode:index/objectStorageKey:ObjectStorageKey":
        out.setdefault("access_key", "AKFAKE" + rid)
        out.setdefault("secret_key", "fake-secret-" + _digest(rid)[:32])
    elif type_ == "random:index/randomPassword:RandomPassword":
        length = int(inputs.get("length", 32))
        out["result"] = ("Pw" + _digest(name) * 4)[:length]
        out.setdefault("bcrypt_hash", "$2a$10$" + _digest(name)[:53])
    elif type_ in ("random:index/randomId:RandomId", "random:index/randomString:RandomString"):
        byte_length = int(inputs.get("byteLength", inputs.get("byte_length", 16)))
        out["result"] = _digest(name)[: int(inputs.get("length", byte_length))]
        out.setdefault("hex", _digest(name)[: 2 * byte_length])
        out.setdefault("b64_std", base64.b64encode(_digest(name)[:32].encode()).decode())
    elif type_ == "tls:index/privateKey:PrivateKey":
        out["private_key_pem"] = _FAKE_KEY
        out["public_key_pem"] = _FAKE_PUBLIC_KEY
        out["private_key_openssh"] = _FAKE_OPENSSH_KEY
    elif type_ in (
        "tls:index/selfSignedCert:SelfSignedCert",
        "tls:index/locallySignedCert:LocallySignedCert",
    ):
        out["cert_pem"] = _FAKE_PEM
    elif type_ == "tls:index/certRequest:CertRequest":
        out["cert_request_pem"] = _FAKE_CSR
    elif type_.startswith("docker:index/image:Image") or type_ == "docker:index/image:Image":
        image_name = str(inputs.get("image_name", inputs.get("imageName", "registry.example/app:1")))
        out["repo_digest"] = f"{image_name.split(':')[0]}@sha256:{_digest(image_name)}"
    elif type_.startswith("kubernetes:"):
        metadata = dict(out.get("metadata") or {})
        metadata.setdefault("name", name)
        metadata.setdefault("uid", f"00000000-0000-4000-8000-{int(rid):012d}")
        out["metadata"] = metadata
        if type_ == "kubernetes:core/v1:Service" and not inputs.get("spec"):
            # A read (`Service.get`): the live object, with the NodeBalancer's addresses that
            # Linode's cloud controller writes into the status of a LoadBalancer Service.
            out["spec"] = {"type": "LoadBalancer"}
            out["status"] = {"loadBalancer": {"ingress": [{"ip": f"172.105.201.{n}"}, {"ip": f"2a01:7e01::{n:x}"}]}}
        if type_ == "kubernetes:helm.sh/v3:Release":
            out["status"] = {
                "status": "deployed",
                "name": inputs.get("name", name),
                "namespace": inputs.get("namespace", "default"),
                "version": inputs.get("version"),
            }
    return out


def lke_node_private_ip(instance_id: int) -> str:
    """The private-network address the mocks give an LKE node (apart from the data VMs')."""
    return f"192.168.{200 + (instance_id // 250) % 50}.{instance_id % 250 + 2}"


def realistic_invoke(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """What the provider's data sources would answer; {} for the ones the program does not read."""
    if token == "linode:index/getDomain:getDomain":  # an existing master zone
        zone = str(args.get("domain"))
        return {
            "id": 1000000 + int(_digest(zone)[:5], 16),
            "domain": zone,
            "type": "master",
            "status": "active",
            "soaEmail": f"hostmaster@{zone}",
            "ttlSec": 0,
        }
    if token == "linode:index/getLkeVersions:getLkeVersions":
        # What GET /v4beta/lke/tiers/{tier}/versions answers, from the catalog's list.
        from components.linode.catalog import LKE_VERSIONS

        tier = str(args.get("tier") or "standard")
        versions = [{"id": version, "tier": tier} for version in LKE_VERSIONS[tier]]
        return {"id": tier, "tier": tier, "versions": versions}
    if token == "linode:index/getInstances:getInstances":
        ids = [
            int(value)
            for item in args.get("filters") or []
            if item.get("name") == "id"
            for value in item.get("values") or []
        ]
        return {
            "id": "instances",
            "instances": [
                {"id": i, "label": f"lke-node-{i}", "privateIpAddress": lke_node_private_ip(i), "status": "running"}
                for i in ids
            ],
        }
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    """Numeric-string ids like Linode's; outputs shaped like the providers' real ones."""

    def __init__(self, extra_outputs: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.counter = _Counter()
        self.extra_outputs = extra_outputs

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        rid = self.counter.next()
        outputs = realistic_outputs(args.typ, args.name, dict(args.inputs), rid)
        if self.extra_outputs:
            outputs.update(self.extra_outputs(args.typ, args.name, dict(args.inputs)))
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return realistic_invoke(args.token, dict(args.args)), []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The stock mock monitor, plus what the program asked of each resource (options, secrets)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.records: list[ResourceRecord] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        raw = json_format.MessageToDict(request.object)
        secret_inputs = {key for key, value in raw.items() if SECRET_SIG in json.dumps(value)}
        registration = self.resources.get(response.urn)
        inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
        self.records.append(
            ResourceRecord(
                type=request.type,
                name=request.name,
                urn=response.urn,
                id=response.id,
                inputs=_plain(inputs),
                outputs=_plain(registration.state if registration else {}),
                parent=request.parent or None,
                protect=bool(request.protect),
                ignore_changes=list(request.ignoreChanges),
                secret_inputs=secret_inputs,
                provider=request.provider or None,
                depends_on=list(request.dependencies),
            )
        )
        return response


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def discover_stacks(root: Path = ROOT) -> list[str]:
    """The stacks this project has: one per `Pulumi.<stack>.yaml` beside `Pulumi.yaml`."""
    return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def stack_config(stack: str, root: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The engine's view of Pulumi.<stack>.yaml: structured values as JSON, secure values faked.

    The file is read like the program reads it (`read_stack_file`: a YAML error, a key written
    twice or a missing file is a ConfigError). A key the file writes in plain text stays plain,
    so the program refuses a plain `linode:token` here exactly as under `pulumi up`.
    """
    written = read_stack_file((root or ROOT) / f"Pulumi.{stack}.yaml")
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in written.items():
        key = str(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = f"fake-secret-for-{key}"
            secret_keys.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    for key, value in FAKE_SECRETS.items():
        if key not in config:
            config[key] = value
            secret_keys.append(key)
    return config, secret_keys


@contextmanager
def mocked_runtime(
    stack: str,
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = False,
    extra_outputs: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
    mocks_factory: type[RecordingMocks] | None = None,
    require_ready: bool = False,
) -> Iterator[RecordingMonitor]:
    """Mocks installed, config set, a fresh root stack: the same state `pulumi up` starts from.

    Placeholders in the config are tolerated here (nothing reaches a cloud) unless
    `require_ready`, which makes the program refuse them as `pulumi up` does.
    """
    mocks = (mocks_factory or RecordingMocks)(extra_outputs)
    monitor = RecordingMonitor(mocks)
    runtime_settings.ROOT.set(None)
    runtime_config.set_all_config(dict(config or {}), list(secret_keys or []))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor)
    token = OFFLINE_PLACEHOLDERS_TOLERATED.set(not require_ready)
    try:
        yield monitor
    finally:
        OFFLINE_PLACEHOLDERS_TOLERATED.reset(token)


def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    resolved = _sync_await(output.future())
    secret = bool(_sync_await(output.is_secret()))
    return _plain(resolved), secret


def run_program(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    preview: bool = False,
    mocks_factory: type[RecordingMocks] | None = None,
    secrets: Mapping[str, str] | None = None,
    require_ready: bool = False,
    extra_outputs: Callable[[str, str, dict[str, Any]], dict[str, Any]] | None = None,
) -> ProgramRun:
    """Run __main__.py for a stack. `overrides` replace config keys (prefix optional);
    `secrets` add `secure:` values (prefix optional); `extra_outputs` adds to the mocks' outputs
    (the system layer's real TLS material)."""
    config, secret_keys = stack_config(stack)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        config[full] = value if isinstance(value, str) else json.dumps(value)
    for key, value in (secrets or {}).items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        config[full] = value
        secret_keys.append(full)
    for key in remove:
        config.pop(key if ":" in key else f"{PROJECT}:{key}", None)
    started = time.perf_counter()
    with mocked_runtime(
        stack,
        config,
        secret_keys,
        preview=preview,
        mocks_factory=mocks_factory,
        require_ready=require_ready,
        extra_outputs=extra_outputs,
    ) as monitor:
        from pulumi.runtime.stack import run_pulumi_func

        def program() -> None:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

        _sync_await(run_pulumi_func(program))
        root = runtime_settings.get_root_resource()
        outputs: dict[str, Any] = {}
        secret_outputs: set[str] = set()
        for name, value in (getattr(root, "outputs", {}) or {}).items():
            outputs[name], is_secret = _resolve(value)
            if is_secret:
                secret_outputs.add(name)
    return ProgramRun(
        stack=stack,
        resources=list(monitor.records),
        outputs=outputs,
        secret_outputs=secret_outputs,
        seconds=time.perf_counter() - started,
    )


def run_program_expecting_error(
    stack: str,
    overrides: Mapping[str, Any],
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    require_ready: bool = False,
) -> tuple[Exception, list[ResourceRecord]]:
    """Run a stack whose config is bad: the error it stops with, and what got registered.

    `config`/`secret_keys` replace the stack file's engine view entirely when given."""
    if config is None:
        config, secret_keys = stack_config(stack)
    config = dict(config)
    for key, value in overrides.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        config[full] = value if isinstance(value, str) else json.dumps(value)
    with mocked_runtime(stack, config, secret_keys, require_ready=require_ready) as monitor:
        from pulumi.runtime.stack import run_pulumi_func

        def program() -> None:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

        try:
            _sync_await(run_pulumi_func(program))
        except Exception as error:  # the program's own error is the result here
            return error, list(monitor.records)
    raise AssertionError(f"stack {stack} ran without error with {dict(overrides)}")


def run_component(build: Callable[[], Any], stack: str = "dev") -> tuple[Any, list[ResourceRecord]]:
    """Build one component under mocks; returns what `build` returned and the records."""
    with mocked_runtime(stack) as monitor:
        from pulumi.runtime.stack import run_pulumi_func

        result: list[Any] = []
        _sync_await(run_pulumi_func(lambda: result.append(build())))
    return result[0], list(monitor.records)


def resolve(value: Any) -> Any:
    """The value of an Output built under `run_component` (call inside the same test)."""
    return _resolve(value)[0]


def is_secret(value: Any) -> bool:
    return _resolve(value)[1]


def unwrap_secret(value: Any) -> tuple[Any, bool]:
    """Record inputs keep the engine's secret wrapper; this returns (plain value, was it secret)."""
    if isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG:
        return _plain(value["value"]), True
    return value, False


def stack_values(stack: str) -> dict[str, Any]:
    """The plain (non-secret) config of the real Pulumi.<stack>.yaml, keyed without the prefix."""
    config, secret_keys = stack_config(stack)
    return {
        key.split(":", 1)[1]: value
        for key, value in config.items()
        if key.startswith(f"{PROJECT}:") and key not in secret_keys
    }


def load_stack_settings(stack: str) -> Any:
    """The validated settings of a real stack file, as the program sees them."""
    from components.settings import load_settings

    return load_settings(PROJECT, stack, stack_values(stack))


def assert_valid_cloud_config(text: str, path: Path) -> None:
    """Write the user data to `path` and require cloud-init's own schema check to accept it."""
    import shutil
    import subprocess

    cloud_init = shutil.which("cloud-init")
    assert cloud_init, "cloud-init is installed by `make system-packages` (Debian package cloud-init)"
    path.write_text(text)
    result = subprocess.run(
        [cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout, (
        f"{path.name}: {result.stdout}{result.stderr}"
    )
