"""Settings for config key platform-infra:kubernetes (LKE, ingress, cert-manager, workloads)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.linode.catalog import LKE_VERSIONS
from components.settings.common import KeyedError, StackRequired, StrictModel

__all__ = ["LATEST", "LKE_VERSIONS", "KubernetesSettings", "kubernetes_minor", "offered_minors"]

# `kubernetes.version` names a minor ("1.36") or "latest"; the exact version is resolved from
# the API when the program runs (components/kubernetes/lke.py: resolve_lke_version).
LATEST = "latest"


_VERSION = re.compile(r"^v?(?P<major>1)\.(?P<minor>[0-9]{1,2})(?:\.[0-9]+)?(?:\+lke[0-9]+)?$")
_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PLAN = re.compile(r"^g[0-9]+-[a-z0-9-]+$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
_MEMORY = re.compile(r"^[0-9]+(Ki|Mi|Gi)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHART_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")
# repository[:port]/path[:tag][@sha256:digest]
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# A secret config key of this project, as written after `platform-infra:`.
SECRET_KEY_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
# Names our manifests already set for every container: config must not silently shadow them.
RESERVED_ENV = frozenset(
    {
        "DATABASE_URL",
        "DATABASE_READ_URL",
        "REDIS_URL",
        "REDIS_SENTINELS",
        "REDIS_SENTINEL_MASTER",
        "AMQP_URL",
        "AMQP_URLS",
        "DATA_CA_FILE",
    }
)


def kubernetes_minor(version: str) -> str:
    """'v1.31.9+lke7' -> '1.31': the schema version kubernetes-validate and PSA labels use."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a Kubernetes version: {version}")
    return f"{match['major']}.{match['minor']}"


def offered_minors(tier: str) -> tuple[str, ...]:
    """The minors the catalog says LKE offers on this tier, oldest first."""
    minors = {kubernetes_minor(version) for version in LKE_VERSIONS[tier]}
    return tuple(sorted(minors, key=lambda minor: int(minor.split(".")[1])))


def _check_cpu(value: str) -> str:
    if not _CPU.match(value):
        raise ValueError("a CPU quantity such as 100m, 500m or 1")
    return value


def _check_memory(value: str) -> str:
    if not _MEMORY.match(value):
        raise ValueError("a memory quantity in Ki, Mi or Gi such as 128Mi")
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError("an absolute URL path such as /health")
    return value


class AutoscalerSettings(StrictModel):
    min: int = Field(ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalerSettings:
        if self.min > self.max:
            raise KeyedError("min", self.min, f"allowed: at most max ({self.max})")
        return self


class NodePoolSettings(StrictModel):
    """One LKE node pool. With an autoscaler the pool starts at `min` and LKE owns the count."""

    plan: Annotated[str, StackRequired()] = "g6-standard-2"
    count: Annotated[int, StackRequired(unless="autoscaler")] = Field(default=1, ge=1, le=100)
    autoscaler: AutoscalerSettings | None = None

    @field_validator("plan")
    @classmethod
    def _plan(cls, value: str) -> str:
        if not _PLAN.match(value):
            raise ValueError("a Linode plan id such as g6-standard-2 or g6-dedicated-4")
        return value

    @property
    def initial_count(self) -> int:
        return self.autoscaler.min if self.autoscaler else self.count


class RateLimitSettings(StrictModel):
    """Per client address: 10 r/s with a burst of 20 by default, enough for a browser, not a scraper."""

    requests_per_second: int = Field(default=10, ge=1, le=10000)
    burst: int = Field(default=20, ge=0, le=100000)


class IngressSettings(StrictModel):
    """The ingress controller's entry, replicas and edge limits (which controller: kubernetes/ingress.py)."""

    chart_version: str = "40.3.0"
    namespace: str = "ingress"
    replicas: Annotated[int, StackRequired()] = Field(default=1, ge=1, le=20)
    # none: ClusterIP only (dev: `kubectl port-forward`), basic: one NodeBalancer,
    # ha: NodeBalancer with health checks + >= 2 replicas spread over nodes + PDB.
    load_balancer: Annotated[Literal["none", "basic", "ha"], StackRequired()] = "none"
    rate_limit: RateLimitSettings = RateLimitSettings()
    public_cidrs: tuple[str, ...] = ("0.0.0.0/0",)  # who may reach the NodeBalancer on 80/443

    @field_validator("chart_version")
    @classmethod
    def _chart_version(cls, value: str) -> str:
        if not _CHART_VERSION.match(value):
            raise ValueError("an exact chart version such as 40.3.0 (ranges are not reproducible)")
        return value

    @model_validator(mode="after")
    def _ha_needs_replicas(self) -> IngressSettings:
        if self.load_balancer == "ha" and self.replicas < 2:
            raise KeyedError(
                "replicas", self.replicas,
                "allowed: 2 or more when load_balancer is ha (one node can fail)",
            )
        return self


class TlsSettings(StrictModel):
    mode: Annotated[Literal["none", "letsencrypt-staging", "letsencrypt-production"], StackRequired()] = "none"
    acme_email: str | None = None
    cert_manager_version: str = "v1.19.1"

    @model_validator(mode="after")
    def _email(self) -> TlsSettings:
        if self.mode != "none" and (not self.acme_email or "@" not in self.acme_email):
            raise KeyedError(
                "acme_email",
                self.acme_email,
                "allowed: a contact e-mail address for Let's Encrypt, required when mode is not none",
            )
        return self

    @field_validator("cert_manager_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _CHART_VERSION.match(value):
            raise ValueError("an exact chart version such as v1.19.1")
        return value


class QuotaSettings(StrictModel):
    requests_cpu: Annotated[str, StackRequired()] = "4"
    requests_memory: Annotated[str, StackRequired()] = "8Gi"
    limits_cpu: Annotated[str, StackRequired()] = "8"
    limits_memory: Annotated[str, StackRequired()] = "16Gi"
    pods: Annotated[int, StackRequired()] = Field(default=50, ge=1)

    _cpu = field_validator("requests_cpu", "limits_cpu")(classmethod(lambda cls, v: _check_cpu(v)))
    _mem = field_validator("requests_memory", "limits_memory")(classmethod(lambda cls, v: _check_memory(v)))


class LimitRangeSettings(StrictModel):
    """Defaults for containers that forget requests/limits, and a per-container ceiling."""

    default_request_cpu: str = "100m"
    default_request_memory: str = "128Mi"
    default_limit_cpu: str = "500m"
    default_limit_memory: str = "512Mi"
    max_cpu: str = "2"
    max_memory: str = "4Gi"

    _cpu = field_validator("default_request_cpu", "default_limit_cpu", "max_cpu")(
        classmethod(lambda cls, v: _check_cpu(v))
    )
    _mem = field_validator("default_request_memory", "default_limit_memory", "max_memory")(
        classmethod(lambda cls, v: _check_memory(v))
    )


class NamespaceSettings(StrictModel):
    name: str = "app"
    quota: Annotated[QuotaSettings, StackRequired()] = QuotaSettings()
    limit_range: LimitRangeSettings = LimitRangeSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or value.startswith("kube-"):
            raise ValueError("a DNS label (lowercase letters, digits, '-') not starting with kube-")
        return value


class BuildSettings(StrictModel):
    """Build this image with pulumi-docker and push it to `registry` (deployed by digest)."""

    context: str
    dockerfile: str = "Dockerfile"
    platform: str = "linux/amd64"
    repository: str  # name inside the registry, e.g. "loopi-api"
    tag: str

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if value == "latest" or not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value):
            raise ValueError("an explicit image tag (not 'latest'), e.g. a version or git SHA")
        return value


class WorkloadIngress(StrictModel):
    host: str
    path: str = "/"

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOSTNAME.match(value):
            raise ValueError("a fully qualified lowercase DNS name such as api.example.com")
        return value

    _path = field_validator("path")(classmethod(lambda cls, v: _check_path(v)))


class WorkloadSettings(StrictModel):
    """One application workload. Either `image` (pinned tag or digest) or `build`."""

    name: str
    image: str | None = None
    build: BuildSettings | None = None
    port: int | None = Field(default=None, ge=1024, le=65535)  # non-root: no privileged ports
    replicas: int | None = Field(default=None, ge=1)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    target_cpu_utilization: int = Field(default=70, ge=10, le=100)
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "512Mi"
    readiness_path: str | None = None
    liveness_path: str | None = None
    # For workloads without a port (queue workers): exec probes.
    health_command: tuple[str, ...] | None = None
    ingress: WorkloadIngress | None = None
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # Secrets: environment variable name -> name of a `secure:` config key of this project
    # (`pulumi config set --secret <key> <value>`). The values go into a Secret of this workload
    # and reach the container through secretKeyRef, never as a plain `env` value.
    secret_env: dict[str, str] = Field(default_factory=dict)
    run_as_user: int = Field(default=10001, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 40:
            raise ValueError("a DNS label of at most 40 characters (lowercase letters, digits, '-')")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return value
        match = _IMAGE.match(value)
        if match is None:
            raise ValueError("an image reference repository[:tag][@sha256:digest]")
        if match["tag"] is None and match["digest"] is None:
            raise ValueError("an image pinned to a tag or digest (an untagged image means 'latest')")
        if match["tag"] == "latest":
            raise ValueError("an image pinned to a version tag or digest, not 'latest'")
        return value

    _cpu = field_validator("cpu_request", "cpu_limit")(classmethod(lambda cls, v: _check_cpu(v)))
    _mem = field_validator("memory_request", "memory_limit")(classmethod(lambda cls, v: _check_memory(v)))

    @field_validator("readiness_path", "liveness_path")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _check_path(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment variable names like APP_MODE; {key!r} is not one")
            if key in RESERVED_ENV:
                raise ValueError(f"{key} is set from the data-tier connection Secret; choose another name")
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"environment variable names like API_TOKEN; {name!r} is not one")
            if name in RESERVED_ENV:
                raise ValueError(f"{name} is set from the data-tier connection Secret; choose another name")
            if not SECRET_KEY_NAME.match(key):
                raise ValueError(
                    f"secret config key names like api_token (lowercase, digits, '_'); {key!r} for {name} is not one"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSettings:
        if (self.image is None) == (self.build is None):
            raise KeyedError(
                "image", self.image, "allowed: exactly one of image (a pinned reference) or build (a context to build)"
            )
        fixed = self.replicas is not None
        scaled = self.min_replicas is not None or self.max_replicas is not None
        if fixed and scaled:
            raise KeyedError(
                "replicas", self.replicas,
                "allowed: either replicas or min_replicas/max_replicas, not both",
            )
        if not fixed and not scaled:
            raise KeyedError("replicas", None, "allowed: replicas, or min_replicas and max_replicas (autoscaled)")
        if scaled and self.min_replicas is None:
            raise KeyedError("min_replicas", None, "allowed: set together with max_replicas")
        if scaled and self.max_replicas is None:
            raise KeyedError("max_replicas", None, "allowed: set together with min_replicas")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise KeyedError("min_replicas", self.min_replicas, f"allowed: at most max_replicas ({self.max_replicas})")
        if self.port is None:
            if self.ingress is not None:
                raise KeyedError("port", None, "allowed: a port (1024-65535) whenever ingress is set")
            if not self.health_command:
                raise KeyedError(
                    "health_command", None,
                    "allowed: a command for the probes of a workload without a port",
                )
        else:
            for key in ("readiness_path", "liveness_path"):
                if getattr(self, key) is None:
                    raise KeyedError(
                        key, None,
                        "allowed: an absolute URL path such as /health (the workload has a port)",
                    )
        shared = sorted(set(self.env) & set(self.secret_env))
        if shared:
            raise KeyedError(
                "secret_env", shared[0], "allowed: names not also in env (a variable is plain or secret, not both)"
            )
        return self

    @property
    def initial_replicas(self) -> int:
        if self.replicas is not None:
            return self.replicas
        assert self.min_replicas is not None
        return self.min_replicas

    @property
    def autoscaled(self) -> bool:
        return self.min_replicas is not None and self.max_replicas is not None and self.min_replicas < self.max_replicas


def _default_workloads() -> tuple[WorkloadSettings, ...]:
    # An HTTP API (port 8080, /health + /ready, 128Mi/100m requests, 512Mi/500m limits) and a
    # queue worker consuming RabbitMQ: the application's two shapes.
    return (
        WorkloadSettings(
            name="api",
            image="registry.example.com/loopi-api:1.0.0",
            port=8080,
            replicas=1,
            readiness_path="/ready",
            liveness_path="/health",
        ),
        WorkloadSettings(
            name="worker",
            image="registry.example.com/loopi-worker:1.0.0",
            replicas=1,
            health_command=("/app/healthcheck",),
        ),
    )


class RegistrySettings(StrictModel):
    """Where built images are pushed. The password is the `secure:` key registry_password."""

    server: str
    username: str

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$", value):
            raise ValueError("a registry host[:port][/namespace] such as registry.example.com/platform")
        return value


class KubernetesSettings(StrictModel):
    """LKE cluster, ingress, TLS and the application workloads of one stack."""

    # enterprise: nodes join the stack's own VPC ("app" subnet), pods reach the VPC addresses of
    # the data VMs, the pool honours firewall_id; $300/month control plane (HA included).
    # standard: free control plane (HA $60), no BYO VPC: pods reach the data VMs over Linode's
    # private network (each node's own address, admitted as a /32) and Linode's
    # cloud-firewall-controller keeps the node firewall, because a standard pool ignores
    # firewall_id (terraform-provider-linode#2294).
    tier: Annotated[Literal["standard", "enterprise"], StackRequired()] = "standard"
    version: Annotated[str, StackRequired()] = LATEST
    # The control-plane ACL is always on: only the stack's admin_cidrs reach the Kubernetes API
    # (LKE Enterprise enforces an ACL anyway).
    high_availability: bool = False
    pool: Annotated[NodePoolSettings, StackRequired()] = NodePoolSettings()
    ingress: Annotated[IngressSettings, StackRequired()] = IngressSettings()
    tls: Annotated[TlsSettings, StackRequired()] = TlsSettings()
    namespace: Annotated[NamespaceSettings, StackRequired()] = NamespaceSettings()
    workloads: Annotated[tuple[WorkloadSettings, ...], StackRequired()] = Field(default_factory=_default_workloads)
    registry: RegistrySettings | None = None

    @model_validator(mode="after")
    def _version_offered_by_tier(self) -> KubernetesSettings:
        offered = offered_minors(self.tier)
        if self.version != LATEST and self.version not in offered:
            raise KeyedError(
                "version",
                self.version,
                f"allowed: {LATEST!r} or a minor LKE {self.tier} offers: {', '.join(offered)} (the exact "
                "version is resolved from the API at deploy time; the catalog's list is "
                "components/linode/catalog.py LKE_VERSIONS)",
            )
        return self

    @model_validator(mode="after")
    def _standard_pool_is_not_autoscaled(self) -> KubernetesSettings:
        if self.tier == "standard" and self.pool.autoscaler is not None:
            raise KeyedError(
                "pool.autoscaler",
                self.pool.autoscaler.model_dump(),
                "allowed: no autoscaler on the standard tier: the data firewalls admit each node's "
                "private address as of the last deploy, so nodes the autoscaler adds could not reach "
                "the data tier until the next `pulumi up`; use tier enterprise to autoscale",
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> KubernetesSettings:
        seen: set[str] = set()
        for index, workload in enumerate(self.workloads):
            if workload.name in seen:
                raise KeyedError(f"workloads.{index}.name", workload.name, "allowed: a name no other workload has")
            seen.add(workload.name)
        routes: set[tuple[str, str]] = set()
        for index, workload in enumerate(self.workloads):
            if workload.ingress is None:
                continue
            route = (workload.ingress.host, workload.ingress.path)
            if route in routes:
                raise KeyedError(
                    f"workloads.{index}.ingress", workload.ingress.model_dump(),
                    "allowed: a host and path no other workload claims",
                )
            routes.add(route)
        if any(w.build for w in self.workloads) and self.registry is None:
            raise KeyedError(
                "registry",
                None,
                "allowed: {server, username} (and the secret registry_password) when a workload has build",
            )
        if self.namespace.name == self.ingress.namespace:
            raise KeyedError(
                "namespace.name",
                self.namespace.name,
                f"allowed: a name other than the ingress namespace {self.ingress.namespace!r}",
            )
        return self

    def secret_keys(self) -> dict[str, str]:
        """Secret config keys the workloads read, each with the first workload and variable reading it."""
        keys: dict[str, str] = {}
        for workload in self.workloads:
            for name, key in sorted(workload.secret_env.items()):
                keys.setdefault(key, f"kubernetes.workloads {workload.name} secret_env {name}")
        return keys

    @property
    def data_path(self) -> Literal["vpc", "private-network"]:
        return "vpc" if self.tier == "enterprise" else "private-network"

    @property
    def kubernetes_minor(self) -> str:
        """The minor the manifests are written for (PSA labels, schema checks); `latest` means
        the newest the catalog knows, which the deploy-time resolution may exceed by one."""
        return offered_minors(self.tier)[-1] if self.version == LATEST else self.version

    def instance_count(self) -> int:
        """Most LKE nodes this stack can run (counted against max_instances by the loader)."""
        return self.pool.autoscaler.max if self.pool.autoscaler else self.pool.count
