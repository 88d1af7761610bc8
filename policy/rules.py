"""The guardrails as pure functions, shared by the CrossGuard pack and the offline tests.

Each rule looks at plain data: a `ResourceView` (type token, logical name, wire-format inputs,
`protect`, which input paths are secret) and a `StackContext` (stack name, kind of environment,
budget). The kind of environment, never the stack's name, decides what a rule expects. Adapters
build views from pulumi-policy's `ResourceValidationArgs`/`PolicyResource` and from the
records of the offline engine (`tools/offline.py`), so `pulumi preview --policy-pack policy`, the offline preview
and the tests all run the same checks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.linode.labels import label_problems, labels_of
from components.settings.budget import BudgetSettings
from components.settings.environment import EXPECTATIONS, Environment, Expectations, parse_environment
from policy import cost

FIREWALL = "linode:index/firewall:Firewall"
INSTANCE = cost.INSTANCE
VOLUME = cost.VOLUME
OBJECT_STORAGE_BUCKET = cost.OBJECT_STORAGE_BUCKET
NODEBALANCER_CONFIG = "linode:index/nodeBalancerConfig:NodeBalancerConfig"
K8S_SECRET = "kubernetes:core/v1:Secret"
K8S_INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
K8S_SERVICE = cost.K8S_SERVICE
LKE_CLUSTER = "linode:index/lkeCluster:LkeCluster"
LINODE_PROVIDER = "pulumi:providers:linode"

# Linode API v4 reference, Linodes > "Create a Linode", `metadata.user_data`: cloud-init user
# data, base64-encoded, at most 65,535 bytes. Whether the API counts the decoded or
# the encoded bytes could not be confirmed offline, so the rule holds the stricter reading:
# the base64 text itself stays within the limit (which keeps the decoded data under 49,151).
USER_DATA_LIMIT_BYTES = 65_535
# Linode API v4 reference, Firewalls > "Create a firewall", `rules`: "A Firewall may have up to
# 25 rules across its inbound and outbound rulesets."
FIREWALL_RULE_LIMIT = 25
# terraform-provider-linode's CustomizeDiff refuses these LKE fields unless the provider's
# api_version is v4beta (linode/terraform-provider-linode#2171; pulumi_linode.LkeCluster `tier`
# docstring: "only accepted and populated when api_version is set to `v4beta`").
LKE_V4BETA_FIELDS = ("tier", "vpcId", "subnetId", "stackType")
# Version strings LKE accepts per tier (GET /v4beta/lke/tiers/{tier}/versions): standard names
# a minor ("1.35"), enterprise an exact build ("v1.35.2+lke1").
LKE_VERSION_FORMAT = {
    "standard": re.compile(r"^1\.[0-9]{1,2}$"),
    "enterprise": re.compile(r"^v1\.[0-9]{1,2}\.[0-9]+\+lke[0-9]+$"),
}

# Where the pod template sits in each workload kind.
WORKLOAD_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
# Run-to-completion workloads have no use for liveness/readiness probes.
LONG_RUNNING_WORKLOADS = frozenset(
    {"kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
     "kubernetes:apps/v1:ReplicaSet", "kubernetes:core/v1:Pod"}
)

# Data and admin ports that must never face the whole internet: SSH, MariaDB/Galera
# (3306, 4444 SST, 4567 group communication, 4568 IST), Redis and Sentinel, RabbitMQ
# (AMQP/TLS, management, Prometheus, inter-node, epmd), exporters and the monitoring stack,
# kubelet and etcd.
SENSITIVE_PORTS: dict[int, str] = {
    22: "SSH", 3306: "MariaDB", 4444: "Galera SST", 4567: "Galera replication", 4568: "Galera IST",
    6379: "Redis", 26379: "Redis Sentinel", 5671: "AMQPS", 5672: "AMQP", 15672: "RabbitMQ management",
    15692: "RabbitMQ Prometheus", 25672: "RabbitMQ inter-node", 4369: "epmd", 9100: "node_exporter",
    9104: "mysqld_exporter", 9121: "redis_exporter", 9090: "Prometheus", 9093: "Alertmanager",
    9094: "Alertmanager cluster", 10250: "kubelet", 2379: "etcd", 2380: "etcd peer",
}
# Data VMs are the children of the data tier's clusters, whatever service they run: their
# parent's URN carries the data tier's type token (components/data/services.py registers them).
DATA_TIER_TOKEN = "platform:data:"

# Keys whose string value is a credential; names of references to credentials are fine.
CREDENTIAL_KEY = re.compile(r"(?i)(password|passwd|passphrase|secret|token|private_?key|api_?key|root_?pass)")
# ...such as secretName, existingSecret, passwordKey (which key of a Secret holds it), tokenTtl.
CREDENTIAL_REFERENCE_KEY = re.compile(r"(?i)(^existing|(name|ref|file|path|id|ttl|type)$|(password|token)_?key$)")
# Markers of a credential inside rendered user data (cloud-config and the config files it
# writes): a credential-named key with a non-boolean value, Redis/Sentinel auth directives,
# SQL grants with a password, private keys, the Erlang cookie.
CREDENTIAL_TEXT = re.compile(
    r"""(?imx)
    ^[ \t]*-?[ \t]*["']?[\w.-]*(password|passwd|pass|secret|token|api_?key|sst_auth|cookie)[\w.-]*["']?
        [ \t]*[:=][ \t]*(?!(true|false|yes|no|none|null|~)?[ \t]*$)\S+
    | \b(requirepass|masterauth|auth-pass)[ \t]+\S+
    | \bIDENTIFIED[ \t]+BY\b
    | BEGIN[ ][A-Z ]*PRIVATE[ ]KEY
    | \.erlang\.cookie
    """
)


@dataclass(frozen=True)
class ResourceView:
    """One resource as the rules see it: plain inputs plus what the engine knows about it."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    protect: bool = False
    # Dotted input paths that are secret; None when the caller cannot know (pulumi-policy
    # hands secrets to policies as plain values, see pulumi/pulumi-policy#241).
    secret_paths: frozenset[str] | None = None
    parent: str | None = None
    urn: str | None = None  # carries the type of every ancestor, parent included
    # The inputs of the resource's provider (explicit or default); None when not known.
    provider_inputs: Mapping[str, Any] | None = None

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(str(tag) for tag in self.inputs.get("tags") or [])

    @property
    def role(self) -> str | None:
        for tag in self.tags:
            if tag.startswith("role:"):
                return tag.split(":", 1)[1]
        return None

    @property
    def in_data_tier(self) -> bool:
        return DATA_TIER_TOKEN in (self.parent or "") or DATA_TIER_TOKEN in (self.urn or "")

    @property
    def ref(self) -> str:
        return f"{self.type}::{self.name}"

    def is_secret(self, path: str) -> bool:
        """Whether the value at `path` (or a parent of it) is secret; unknown counts as secret."""
        if self.secret_paths is None:
            return True
        return any(path == p or path.startswith(p + ".") or path.startswith(p + "[") or p == ""
                   for p in self.secret_paths)


@dataclass(frozen=True)
class StackContext:
    stack: str
    environment: Environment
    budget: BudgetSettings | None = None

    @property
    def expects(self) -> Expectations:
        return EXPECTATIONS[self.environment]


@dataclass(frozen=True)
class Finding:
    rule: str
    enforcement: str
    resource: str  # "<type>::<name>", or "stack" for stack rules
    message: str


ResourceCheck = Callable[[ResourceView, StackContext], Iterator[str]]
StackCheck = Callable[[Sequence[ResourceView], StackContext], Iterator[str]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    check: ResourceCheck
    enforcement: str = "mandatory"
    # How the CrossGuard pack runs it when that differs (see credentials-are-secret).
    pack_enforcement: str | None = None


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck
    enforcement: str = "mandatory"
    pack_enforcement: str | None = None


# --- helpers ----------------------------------------------------------------------------

def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _port_ranges(ports: Any) -> list[tuple[int, int]] | None:
    """Linode firewall ports ("22", "80,443", "1000-2000"); None means every port."""
    if ports is None or str(ports).strip() == "":
        return None
    ranges: list[tuple[int, int]] = []
    try:
        for part in str(ports).split(","):
            part = part.strip()
            if "-" in part:
                low, high = part.split("-", 1)
                ranges.append((int(low), int(high)))
            elif part:
                ranges.append((int(part), int(part)))
    except ValueError:
        return []  # not known yet (or refused by Linode anyway): nothing to judge
    return ranges


def _is_everywhere(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in ("initContainers", "containers"):
        for container in pod_spec.get(kind) or []:
            if isinstance(container, Mapping):
                yield kind, container


# --- resource rules ---------------------------------------------------------------------

def check_firewall_drops_inbound(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != FIREWALL:
        return
    policy = view.inputs.get("inboundPolicy")
    if policy != "DROP":
        yield (f"firewall {view.name} has inbound policy {policy!r}; "
               "it must be DROP so only the listed rules let traffic in")


def check_instance_behind_firewall(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != INSTANCE:
        return
    attached = view.inputs.get("firewallId") not in (None, "", 0) or any(
        isinstance(interface, Mapping) and interface.get("firewallId") not in (None, "", 0)
        for interface in view.inputs.get("linodeInterfaces") or []
    )
    if not attached:
        yield (f"instance {view.name} has no firewall attached at creation; "
               "set firewall_id so it never boots with every port open")


def check_no_public_sensitive_port(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type == FIREWALL:
        for rule in view.inputs.get("inbounds") or []:
            if str(rule.get("action", "")).upper() != "ACCEPT":
                continue
            if str(rule.get("protocol", "")).upper() in ("ICMP", "IPENCAP"):
                continue  # no ports: these protocols cannot reach a data or admin port
            sources = [*(rule.get("ipv4s") or []), *(rule.get("ipv6s") or [])]
            open_to = [cidr for cidr in sources if _is_everywhere(cidr)]
            if not open_to:
                continue
            ranges = _port_ranges(rule.get("ports"))
            exposed = sorted(
                port for port in SENSITIVE_PORTS
                if ranges is None or any(low <= port <= high for low, high in ranges)
            )
            if exposed:
                names = ", ".join(f"{port} ({SENSITIVE_PORTS[port]})" for port in exposed)
                yield (f"firewall {view.name} rule {rule.get('label', '?')!r} opens {names} to "
                       f"{', '.join(open_to)}; data and admin ports accept only the app tier, cluster peers "
                       "and the admin CIDRs")
    elif view.type == NODEBALANCER_CONFIG:
        port = view.inputs.get("port")
        if isinstance(port, int | float) and int(port) in SENSITIVE_PORTS:
            yield (f"NodeBalancer config {view.name} publishes port {int(port)} "
                   f"({SENSITIVE_PORTS[int(port)]}) on a public load balancer")
    elif view.type == K8S_SERVICE and _get(view.inputs, "spec", "type") in ("LoadBalancer", "NodePort"):
        for service_port in _get(view.inputs, "spec", "ports") or []:
            port = service_port.get("port")
            if isinstance(port, int | float) and int(port) in SENSITIVE_PORTS:
                yield (f"Service {view.name} of type {_get(view.inputs, 'spec', 'type')} publishes port "
                       f"{int(port)} ({SENSITIVE_PORTS[int(port)]})")


def check_stateful_protected(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if not ctx.expects.protect_stateful:
        return
    if view.type == INSTANCE and view.in_data_tier:
        what = f"{view.role} data"
    elif view.type == VOLUME:
        what = "volume data"
    elif view.type == OBJECT_STORAGE_BUCKET:
        what = "backups"
    else:
        return
    if not view.protect:
        yield (f"{view.name} holds {what} in {ctx.stack} ({ctx.environment}) and is not protected; "
               "set protect=True so a change cannot delete or replace it")


def check_data_vm_backups(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if not ctx.expects.backups or view.type != INSTANCE or not view.in_data_tier:
        return
    if not view.inputs.get("backupsEnabled"):
        yield (f"data VM {view.name} ({view.role}) in {ctx.stack} ({ctx.environment}) has backups_enabled off; "
               "the Backup Service is required")


def check_workload_restricted(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    path = WORKLOAD_POD_SPEC_PATHS.get(view.type)
    if path is None:
        return
    pod = _get(view.inputs, *path)
    if not isinstance(pod, Mapping):
        yield f"{view.name}: no pod template found at {'.'.join(path)}"
        return
    for host_field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host_field):
            yield f"{view.name}: {host_field} is not allowed by the restricted profile"
    for volume in pod.get("volumes") or []:
        if isinstance(volume, Mapping) and "hostPath" in volume:
            yield f"{view.name}: hostPath volume {volume.get('name')!r} is not allowed (restricted profile)"
    pod_security = pod.get("securityContext") or {}
    for kind, container in _containers(pod):
        where = f"{view.name}: {kind[:-1]} {container.get('name')!r}"
        security = container.get("securityContext") or {}
        run_as_non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if run_as_non_root is not True:
            yield f"{where} must set runAsNonRoot: true (restricted profile)"
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            yield f"{where} must not run as UID 0 (restricted profile)"
        if security.get("allowPrivilegeEscalation") is not False:
            yield f"{where} must set allowPrivilegeEscalation: false (restricted profile)"
        if security.get("privileged"):
            yield f"{where} must not be privileged (restricted profile)"
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            yield f"{where} must drop ALL capabilities (restricted profile)"
        extra = [cap for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            yield f"{where} adds capabilities {extra}; only NET_BIND_SERVICE is allowed (restricted profile)"
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield f"{where} needs seccompProfile RuntimeDefault or Localhost (restricted profile)"
        for port in container.get("ports") or []:
            if isinstance(port, Mapping) and port.get("hostPort"):
                yield f"{where} must not use hostPort {port.get('hostPort')} (restricted profile)"
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if not _get(resources, section, r)]
            if missing:
                yield f"{where} has no {section} for {', '.join(missing)}"
        if kind == "containers" and view.type in LONG_RUNNING_WORKLOADS:
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    yield f"{where} has no {probe}"


def image_is_pinned(image: str) -> bool:
    """A tag other than latest, or a digest; a registry port ("host:5000/app") is not a tag."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def check_images_pinned(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    path = WORKLOAD_POD_SPEC_PATHS.get(view.type)
    pod = _get(view.inputs, *path) if path else None
    if not isinstance(pod, Mapping):
        return
    for kind, container in _containers(pod):
        image = str(container.get("image") or "")
        if image == UNKNOWN:
            continue  # built by pulumi-docker in this update and referenced by digest
        if not image_is_pinned(image):
            yield (f"{view.name}: {kind[:-1]} {container.get('name')!r} image {image!r} is not pinned; "
                   "use an explicit version tag (not latest) or a digest")


def check_ingress_tls(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != K8S_INGRESS or not ctx.expects.tls:
        return
    tls = _get(view.inputs, "spec", "tls") or []
    if not tls:
        yield (f"Ingress {view.name} in {ctx.stack} has no TLS section; a {ctx.environment} environment "
               "serves HTTPS only")
        return
    covered = {host for entry in tls for host in entry.get("hosts") or []}
    for rule in _get(view.inputs, "spec", "rules") or []:
        host = rule.get("host")
        if host and host not in covered:
            yield f"Ingress {view.name} in {ctx.stack}: host {host} is not covered by any TLS entry"
    for entry in tls:
        if not entry.get("secretName"):
            yield f"Ingress {view.name} in {ctx.stack}: a TLS entry has no secretName for its certificate"


def _decoded(text: str) -> str:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return text


def credential_paths(view: ResourceView) -> list[str]:
    """Input paths whose values carry a credential and so must be secret."""
    paths: list[str] = []
    if view.type == INSTANCE:
        if view.inputs.get("rootPass"):
            paths.append("rootPass")
        if view.inputs.get("stackscriptData"):
            paths.append("stackscriptData")
        for index, metadata in enumerate(view.inputs.get("metadatas") or []):
            user_data = metadata.get("userData") if isinstance(metadata, Mapping) else None
            if isinstance(user_data, str) and CREDENTIAL_TEXT.search(_decoded(user_data)):
                paths.append(f"metadatas[{index}].userData")
    if view.type == K8S_SECRET:
        paths.extend(key for key in ("data", "stringData") if view.inputs.get(key))

    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if (isinstance(item, str) and item and CREDENTIAL_KEY.search(str(key))
                        and not CREDENTIAL_REFERENCE_KEY.search(str(key))):
                    paths.append(child)
                else:
                    walk(item, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    if view.type not in (K8S_SECRET,):
        walk(view.inputs, "")
    return sorted(set(paths))


def check_credentials_are_secret(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    for path in credential_paths(view):
        if not view.is_secret(path):
            yield (f"{view.name}: {path} carries a credential but is not a secret; "
                   "wrap it in pulumi.Output.secret so the state stores it encrypted")
    # A literal credential in a pod spec is readable by anyone who can read the workload,
    # whatever the state says: it must come from a Secret.
    pod_path = WORKLOAD_POD_SPEC_PATHS.get(view.type)
    pod = _get(view.inputs, *pod_path) if pod_path else None
    if isinstance(pod, Mapping):
        for _, container in _containers(pod):
            for env in container.get("env") or []:
                if (isinstance(env, Mapping) and CREDENTIAL_KEY.search(str(env.get("name", "")))
                        and env.get("value")):
                    yield (f"{view.name}: env {env.get('name')} of container {container.get('name')!r} "
                           "holds a literal credential; use valueFrom.secretKeyRef")


# --- stack rules ------------------------------------------------------------------------

def check_cost_within_budget(resources: Sequence[ResourceView], ctx: StackContext) -> Iterator[str]:
    if ctx.budget is None:
        yield f"stack {ctx.stack} has no platform-infra:budget; every stack needs a monthly budget"
        return
    try:
        estimate = cost.estimate_stack(resources, ctx.budget)
    except cost.pricing.UnknownPlanError as error:
        yield f"stack {ctx.stack}: cannot estimate the monthly cost: {error}"
        return
    if not estimate.within_budget:
        yield (f"stack {ctx.stack} is estimated at {estimate.total_eur:.2f} EUR/month "
               f"(${estimate.total_usd:.2f}), over its budget of {ctx.budget.monthly_eur:.2f} EUR "
               f"(+{ctx.budget.allowed_overrun_eur:.2f} allowed) by {-estimate.headroom_eur:.2f} EUR")


def check_cost_ceiling_within_budget(resources: Sequence[ResourceView], ctx: StackContext) -> Iterator[str]:
    if ctx.budget is None:
        return
    try:
        estimate = cost.estimate_stack(resources, ctx.budget)
    except cost.pricing.UnknownPlanError:
        return  # the mandatory budget rule reports it
    if estimate.within_budget and estimate.max_total_eur > ctx.budget.limit_eur:
        yield (f"stack {ctx.stack} at its autoscaling ceiling would cost {estimate.max_total_eur:.2f} EUR/month, "
               f"over its budget of {ctx.budget.monthly_eur:.2f} EUR; cap the autoscaler or plan for it")


# --- Linode's own rules: what the API or the provider refuses ------------------------------

def _known(value: Any) -> bool:
    return isinstance(value, str) and value != UNKNOWN


def check_linode_labels(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    # Sources per kind in components/linode/labels.py (API reference, Cloud Manager validation).
    for kind, label in labels_of(view.type, view.inputs):
        if _known(label):
            for problem in label_problems(kind, label):
                yield f"{view.name}: {problem}"


def check_lke_v4beta(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != LKE_CLUSTER:
        return
    beta = [name for name in LKE_V4BETA_FIELDS if view.inputs.get(name) not in (None, "")]
    api_version = (view.provider_inputs or {}).get("apiVersion")
    if beta and api_version != "v4beta":
        yield (f"LKE cluster {view.name} sets {', '.join(beta)}, which the provider sends only with "
               f"api_version v4beta (terraform-provider-linode#2171); its provider has "
               f"api_version {api_version!r}")


def check_lke_version_format(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != LKE_CLUSTER:
        return
    version = view.inputs.get("k8sVersion")
    tier = view.inputs.get("tier") or "standard"
    if not isinstance(version, str) or not _known(version) or tier not in LKE_VERSION_FORMAT:
        return
    if not LKE_VERSION_FORMAT[tier].match(version):
        example = "1.35" if tier == "standard" else "v1.35.2+lke1"
        yield (f"LKE cluster {view.name}: k8s_version {version!r} is not a version LKE {tier} offers "
               f"(format like {example!r}, from GET /v4beta/lke/tiers/{tier}/versions)")


def _user_data(view: ResourceView) -> Iterator[str]:
    for metadata in view.inputs.get("metadatas") or []:
        if isinstance(metadata, Mapping) and _known(metadata.get("userData")):
            yield metadata["userData"]


def check_user_data_size(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != INSTANCE:
        return
    for encoded in _user_data(view):
        if len(encoded) > USER_DATA_LIMIT_BYTES:
            yield (f"instance {view.name}: user data is {len(encoded)} bytes base64-encoded; Linode accepts "
                   f"at most {USER_DATA_LIMIT_BYTES} (ship large files gzip-compressed: encoding gz+b64)")


def check_firewall_rule_count(view: ResourceView, ctx: StackContext) -> Iterator[str]:
    if view.type != FIREWALL:
        return
    count = len(view.inputs.get("inbounds") or []) + len(view.inputs.get("outbounds") or [])
    if count > FIREWALL_RULE_LIMIT:
        yield (f"firewall {view.name} has {count} rules; Linode allows {FIREWALL_RULE_LIMIT} across "
               "inbound and outbound")


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("firewall-inbound-drop", "Every Linode firewall drops inbound traffic by default.",
                 check_firewall_drops_inbound),
    ResourceRule("instance-behind-firewall", "Every Linode instance is attached to a firewall when created.",
                 check_instance_behind_firewall),
    ResourceRule("no-public-data-or-admin-port",
                 "No data, admin or monitoring port is open to 0.0.0.0/0 or ::/0.",
                 check_no_public_sensitive_port),
    ResourceRule("stateful-protected-in-prod",
                 "Data VMs, volumes and backup buckets in production environments are protected against "
                 "deletion and replacement.",
                 check_stateful_protected),
    ResourceRule("data-vm-backups", "Data VMs in staging and production environments have the Backup Service enabled.",
                 check_data_vm_backups),
    ResourceRule("workload-restricted-profile",
                 "Kubernetes workloads meet the restricted Pod Security Standard and declare requests, "
                 "limits and probes.",
                 check_workload_restricted),
    ResourceRule("images-pinned", "Container images carry an explicit version tag or a digest.",
                 check_images_pinned),
    ResourceRule("ingress-tls", "Ingresses in staging and production environments terminate TLS for every host.",
                 check_ingress_tls),
    # pulumi-policy gives policies secrets as plain values (pulumi/pulumi-policy#241), so inside
    # `pulumi preview` the pack cannot see whether a value is secret: there it remediates by
    # marking the credential paths secret. Over the mocked program, where secretness is known,
    # it is mandatory.
    ResourceRule("credentials-are-secret", "Values that carry credentials are Pulumi secrets.",
                 check_credentials_are_secret, pack_enforcement="remediate"),
    ResourceRule("linode-label-rules",
                 "Every Linode label (and firewall rule label) meets the API's length and character rules.",
                 check_linode_labels),
    ResourceRule("lke-beta-fields-need-v4beta",
                 "An LKE cluster with tier or VPC fields is managed by a provider with api_version v4beta.",
                 check_lke_v4beta),
    ResourceRule("lke-version-format",
                 "An LKE cluster's k8s_version has the form its tier offers.",
                 check_lke_version_format),
    ResourceRule("user-data-size", "Instance user data stays within Linode's 65,535-byte limit.",
                 check_user_data_size),
    ResourceRule("firewall-rule-count", "A Linode firewall has at most 25 rules.",
                 check_firewall_rule_count),
)

STACK_RULES: tuple[StackRule, ...] = (
    StackRule("monthly-cost-within-budget",
              "The stack's estimated monthly cost stays within its platform-infra:budget.",
              check_cost_within_budget),
    StackRule("monthly-cost-ceiling-within-budget",
              "At its autoscaling maximum the stack would still fit its budget (advisory).",
              check_cost_ceiling_within_budget, enforcement="advisory"),
)


@dataclass(frozen=True)
class Evaluation:
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def mandatory(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.enforcement == "mandatory")


def evaluate(resources: Iterable[ResourceView], ctx: StackContext) -> Evaluation:
    """Every rule over every resource, then the stack rules."""
    views = list(resources)
    findings: list[Finding] = []
    for view in views:
        for rule in RESOURCE_RULES:
            findings.extend(Finding(rule.name, rule.enforcement, view.ref, message)
                            for message in rule.check(view, ctx))
    for stack_rule in STACK_RULES:
        findings.extend(Finding(stack_rule.name, stack_rule.enforcement, "stack", message)
                        for message in stack_rule.check(views, ctx))
    return Evaluation(tuple(findings))


# --- adapters ---------------------------------------------------------------------------

def views_from_records(records: Sequence[Any]) -> list[ResourceView]:
    """Views of a whole offline run, each with its provider's inputs when it has an explicit one."""
    by_urn = {record.urn: record for record in records}
    views = []
    for record in records:
        reference = getattr(record, "provider", None) or ""
        provider = by_urn.get(reference.rsplit("::", 1)[0]) if reference else None
        views.append(view_from_record(record, provider))
    return views


def view_from_record(record: Any, provider: Any = None) -> ResourceView:
    """A view of an offline-engine record (`tools/offline.py`: type, name, inputs, protect, parent).

    Mock inputs keep Pulumi's secret markers, so secretness is known here. `provider` is the
    record of the resource's explicit provider, if it has one.
    """
    plain, secret_paths = cost.unwrap_secrets(dict(record.inputs or {}))
    # The engine also lists the top-level inputs that arrived secret.
    secret_paths |= frozenset(getattr(record, "secret_inputs", None) or ())
    return ResourceView(
        type=record.type,
        name=record.name,
        inputs=plain,
        protect=bool(getattr(record, "protect", False)),
        secret_paths=secret_paths,
        parent=getattr(record, "parent", None),
        urn=getattr(record, "urn", None),
        provider_inputs=cost.unwrap_secrets(dict(provider.inputs or {}))[0] if provider is not None else None,
    )


# pulumi-policy's markers for values `pulumi preview` cannot know yet (pulumi_policy.proxy).
UNKNOWN = "<unknown during preview>"
_UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


def _plain(value: Any) -> Any:
    """Copy pulumi-policy's proxies into plain dicts and lists, unknowns as UNKNOWN.

    Reading through the proxies would raise on the first unknown value and turn every rule on
    that resource into "can't run during preview"; the raw values let the known fields be judged.
    """
    if not isinstance(value, dict | list | str) and isinstance(value, Mapping | Sequence):
        value = _raw_target(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(item) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    return value


def view_from_policy(resource: Any) -> ResourceView:
    """A view of pulumi-policy's ResourceValidationArgs or PolicyResource (secretness unknown)."""
    opts = getattr(resource, "opts", None)
    provider = getattr(resource, "provider", None)
    return ResourceView(
        type=resource.resource_type,
        name=resource.name,
        inputs=_plain(resource.props),
        protect=bool(getattr(opts, "protect", False)),
        secret_paths=None,
        parent=getattr(opts, "parent", None),
        urn=getattr(resource, "urn", None),
        provider_inputs=_plain(provider.props) if provider is not None else None,
    )


def _raw_target(props: Any) -> Any:
    """The dict or list under pulumi-policy's proxies, where secret values are still marked."""
    seen = 0
    while not isinstance(props, dict | list) and seen < 5:
        props = props["__target"]
        seen += 1
    return props


def top_level_key(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


# --- the CrossGuard pack -----------------------------------------------------------------

def stack_context_from_engine(config_environment: Any, config_budget: Any, stack: str) -> StackContext:
    """The context inside `pulumi preview`: stack name, its kind of environment and its budget.

    The program refuses a stack without a valid platform-infra:environment before it registers
    anything, so the pack never judges resources of such a stack; if asked anyway, it says why.
    """
    try:
        environment = parse_environment(config_environment)
    except ValueError as error:
        raise ValueError(f"platform-infra:environment: got {config_environment!r}; {error}") from None
    budget = None if config_budget is None else BudgetSettings.model_validate(config_budget)
    return StackContext(stack=stack, environment=environment, budget=budget)


def build_policies(context: Callable[[], StackContext]) -> list[Any]:
    """pulumi-policy policies running the rules above; `context` is read when a policy runs."""
    from pulumi_policy import (
        EnforcementLevel,
        ReportViolation,
        ResourceValidationArgs,
        ResourceValidationPolicy,
        Secret,
        StackValidationArgs,
        StackValidationPolicy,
    )

    levels = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY,
              "remediate": EnforcementLevel.REMEDIATE}

    def resource_validator(rule: ResourceRule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            for message in rule.check(view_from_policy(args), context()):
                report_violation(message, None)
        return validate

    def mark_credentials_secret(args: ResourceValidationArgs) -> Any:
        paths = credential_paths(view_from_policy(args))
        if not paths:
            return None
        raw = _raw_target(args.props)
        for key in {top_level_key(path) for path in paths}:
            if key in raw and not isinstance(raw[key], Secret):
                raw[key] = Secret(raw[key])
        return args.props

    def stack_validator(rule: StackRule) -> Callable[[StackValidationArgs, ReportViolation], None]:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            views = [view_from_policy(resource) for resource in args.resources]
            for message in rule.check(views, context()):
                report_violation(message, None)
        return validate

    policies: list[Any] = []
    for rule in RESOURCE_RULES:
        level = levels[rule.pack_enforcement or rule.enforcement]
        if level == EnforcementLevel.REMEDIATE:
            policies.append(ResourceValidationPolicy(
                name=rule.name, description=rule.description, enforcement_level=level,
                remediate=mark_credentials_secret))
        else:
            policies.append(ResourceValidationPolicy(
                name=rule.name, description=rule.description, enforcement_level=level,
                validate=resource_validator(rule)))
    for stack_rule in STACK_RULES:
        policies.append(StackValidationPolicy(
            name=stack_rule.name, description=stack_rule.description,
            enforcement_level=levels[stack_rule.pack_enforcement or stack_rule.enforcement],
            validate=stack_validator(stack_rule)))
    return policies
