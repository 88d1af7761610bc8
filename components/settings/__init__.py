"""The stack's settings: parsed once from config, validated, then handed to components.

Components never read `pulumi.Config`; they receive these models. A bad or missing value
becomes one `SettingsError` naming the key, the value given and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from components.linode.labels import LabelKind, label_problems
from components.settings.base import (
    ANYWHERE,
    BastionSettings,
    FoundationSettings,
    NetworkSettings,
    Tier,
)
from components.settings.budget import BudgetSettings
from components.settings.common import ConfigError, KeyedError, StackRequired
from components.settings.data import DataSettings
from components.settings.dns import DnsSettings, record_name
from components.settings.environment import (
    ENVIRONMENT_ALLOWED,
    ENVIRONMENTS,
    EXPECTATIONS,
    STACK_NAME_ALLOWED,
    Environment,
    Expectations,
    check_stack_name,
)
from components.settings.kubernetes import KubernetesSettings
from components.settings.operations import OperationsSettings

# Hex digits of the random suffix that makes a bucket name unique in its region (backups.py).
BUCKET_SUFFIX_HEX = 8

__all__ = [
    "ENVIRONMENTS",
    "BastionSettings",
    "BudgetSettings",
    "ConfigError",
    "DataSettings",
    "DnsSettings",
    "Environment",
    "Expectations",
    "KubernetesSettings",
    "NetworkSettings",
    "OperationsSettings",
    "SettingsError",
    "StackSettings",
    "Tier",
    "load_settings",
]


class SettingsError(ConfigError):
    """A config value the program refuses; the message is what the operator reads."""


class StackSettings(FoundationSettings):
    """Everything one stack is made of. `project` and `stack` come from Pulumi, not config.

    The stack's name is a label only; what kind of environment it is comes from config.
    """

    project: str
    stack: str = Field(description=STACK_NAME_ALLOWED)
    environment: Environment = Field(description=ENVIRONMENT_ALLOWED)
    data: DataSettings = Field(description="allowed: the data tier section {mariadb, redis, rabbitmq, tls, ...}")
    kubernetes: KubernetesSettings = Field(
        description="allowed: the LKE section {tier, version, pool, ingress, tls, namespace, workloads}"
    )
    operations: OperationsSettings = Field(
        description="allowed: the operations section {backups, maintenance, monitoring, logging}"
    )
    budget: BudgetSettings = Field(description="allowed: {monthly_eur, allowed_overrun_eur}")
    dns: DnsSettings = DnsSettings()

    @model_validator(mode="after")
    def _dns_zone_holds_every_public_host(self) -> StackSettings:
        zone = self.dns.zone
        if zone is None:
            return self
        if self.kubernetes.ingress.load_balancer == "none":
            raise KeyedError(
                "dns.zone",
                zone,
                "allowed: only with kubernetes.ingress.load_balancer basic or ha (records point at the "
                "ingress NodeBalancer; without one there is no public address)",
            )
        outside = [host for host in self.public_hosts if record_name(host, zone) is None]
        if outside:
            raise KeyedError(
                "dns.zone",
                zone,
                f"allowed: a zone containing every public host; {', '.join(outside)} is outside it",
            )
        return self

    @model_validator(mode="after")
    def _production_admin_access_is_narrow(self) -> StackSettings:
        if self.expectations.narrow_admin_access:
            for key, cidrs in (("admin_cidrs", self.admin_cidrs), ("ci_cidrs", self.ci_cidrs)):
                for cidr in cidrs:
                    if cidr in ANYWHERE:
                        raise KeyedError(
                            key,
                            str(cidr),
                            f"allowed: specific {'operator' if key == 'admin_cidrs' else 'CI runner'} CIDRs; "
                            f"0.0.0.0/0 and ::/0 are refused in a "
                            f"{self.environment} environment",
                        )
        return self

    @model_validator(mode="after")
    def _enterprise_cluster_fits_the_app_subnet(self) -> StackSettings:
        # LKE Enterprise in our VPC takes the app subnet for nodes, pods and services; the API
        # refuses anything but a /13 or /14 inside 10.0.0.0/8 (linode/manager#12551).
        app = self.network.subnets["app"]
        if self.kubernetes.tier == "enterprise" and (
            app.prefixlen not in (13, 14) or not app.subnet_of(ipaddress.ip_network("10.0.0.0/8"))  # type: ignore[arg-type]
        ):
            raise KeyedError(
                "network.subnets.app",
                str(app),
                "allowed: a /13 or /14 inside 10.0.0.0/8 when kubernetes.tier is enterprise "
                "(the cluster joins this subnet)",
            )
        return self

    @model_validator(mode="after")
    def _shared_network_path_is_encrypted(self) -> StackSettings:
        # A standard-tier cluster reaches the data VMs over 192.168.128.0/17, which every Linode of
        # every customer in the region shares: that path is encrypted in every kind of stack. The
        # requirement of no TLS in development is about the public endpoint (kubernetes.tls), not this.
        if self.kubernetes.data_path == "private-network" and not self.data.tls:
            raise KeyedError(
                "data.tls",
                "false",
                "allowed: true when kubernetes.tier is standard (the app tier reaches the data VMs over "
                "Linode's private network, shared with other customers)",
            )
        return self

    @model_validator(mode="after")
    def _backup_window_needs_the_backup_service(self) -> StackSettings:
        window = self.operations.backups.linode_backup_window
        if window and not self.data.backups_enabled:
            raise KeyedError(
                "operations.backups.linode_backup_window",
                window,
                "allowed: only with data.backups_enabled: true (the window belongs to Linode's Backup "
                "Service on the data VMs)",
            )
        return self

    @model_validator(mode="after")
    def _labels_fit_linode(self) -> StackSettings:
        # The stack's name is part of every label; refuse here, naming the label, what Linode
        # would refuse at `pulumi up` (components/linode/labels.py). The stack tests check
        # every label the program actually sets, so this list cannot drift unnoticed.
        for kind, label in self.derived_labels():
            problems = label_problems(kind, label)
            if problems:
                raise KeyedError(
                    "stack",
                    self.stack,
                    f"allowed: a name that keeps every Linode label valid; {'; '.join(problems)}",
                )
        return self

    @model_validator(mode="after")
    def _within_instance_limit(self) -> StackSettings:
        total = self.instance_count()
        if total > self.max_instances:
            raise KeyedError(
                "max_instances",
                self.max_instances,
                f"allowed: at least the {total} VMs and nodes this stack asks for "
                f"({self.instance_breakdown()}); lower the counts or raise the limit",
            )
        return self

    @property
    def public_hosts(self) -> tuple[str, ...]:
        """Names the ingress serves to the internet: workload hosts, then the log push host."""
        hosts = [w.ingress.host for w in self.kubernetes.workloads if w.ingress is not None]
        logging = self.operations.logging
        if logging.enabled and logging.vm_push_host:
            hosts.append(logging.vm_push_host)
        return tuple(dict.fromkeys(hosts))

    @property
    def expectations(self) -> Expectations:
        """What this kind of environment demands: protection, TLS, backups, narrow admin access."""
        return EXPECTATIONS[self.environment]

    @property
    def production(self) -> bool:
        """A production environment: its stateful resources are protected (see `expectations`)."""
        return self.environment == "production"

    def instance_breakdown(self) -> str:
        parts = {"bastion": 1, **self._tier_counts()}
        return ", ".join(f"{name} {count}" for name, count in parts.items() if count)

    def instance_count(self) -> int:
        return 1 + sum(self._tier_counts().values())

    def _tier_counts(self) -> dict[str, int]:
        # Each tier's settings say how many machines they can grow to (data VMs, LKE nodes at
        # the autoscaler's maximum), so the limit holds at peak, not only at creation.
        return {"data": self.data.vm_count, "kubernetes": self.kubernetes.instance_count()}

    def derived_labels(self) -> list[tuple[LabelKind, str]]:
        """The Linode labels the components build from `label()`, by kind, longest forms."""
        base = f"{self.project}-{self.stack}"
        roles = {role: service.nodes for role, service in self.data.services.items() if service.nodes}
        labels: list[tuple[LabelKind, str]] = [
            ("vpc", base),
            *(("vpc_subnet", f"{base}-{tier}") for tier in self.network.subnets),
            ("instance", self.label("bastion", 0)),
            ("firewall", self.label("bastion")),
            ("lke_cluster", self.label("lke")),
            ("firewall", self.label("lke")),
            ("firewall", self.label("ingress")),
            ("bucket", f"{self.label('backups')}-{'0' * BUCKET_SUFFIX_HEX}"),
            ("object_storage_key", f"{self.label('backups')}-writer"),
        ]
        for role, nodes in roles.items():
            labels += [("instance", self.label(role, nodes - 1)), ("firewall", self.label(role))]
            if nodes > 1:
                labels.append(("placement_group", self.label(role)))
        return labels

    def tags(self, role: str) -> list[str]:
        """Linode tags: project, environment and role, so billing and search can slice by each."""
        return [self.project, f"env:{self.stack}", f"role:{role}"]

    def label(self, role: str, index: int | None = None) -> str:
        """Linode labels `<project>-<stack>-<role>[-<n>]` (Linode allows 3-64 chars)."""
        base = f"{self.project}-{self.stack}-{role}"
        return base if index is None else f"{base}-{index}"

    @property
    def admin_cidr_strings(self) -> list[str]:
        return [str(cidr) for cidr in self.admin_cidrs]

    @property
    def kubernetes_api_ipv4_cidrs(self) -> list[str]:
        """Who reaches the LKE API (control-plane ACL): operators and the CI runner."""
        return list(dict.fromkeys(str(c) for c in (*self.admin_cidrs, *self.ci_cidrs)
                                  if isinstance(c, ipaddress.IPv4Network)))

    @property
    def kubernetes_api_ipv6_cidrs(self) -> list[str]:
        return list(dict.fromkeys(str(c) for c in (*self.admin_cidrs, *self.ci_cidrs)
                                  if isinstance(c, ipaddress.IPv6Network)))

    @property
    def ipv4_admin_cidrs(self) -> list[str]:
        return [str(c) for c in self.admin_cidrs if isinstance(c, ipaddress.IPv4Network)]

    @property
    def ipv6_admin_cidrs(self) -> list[str]:
        return [str(c) for c in self.admin_cidrs if isinstance(c, ipaddress.IPv6Network)]


def _decode(value: Any) -> Any:
    """Structured config arrives as JSON text from the Pulumi engine; plain strings stay strings."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") or stripped in ("true", "false") or _is_number(stripped):
            try:
                return json.loads(stripped)
            except json.JSONDecodeError:
                return value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, default=str) if isinstance(value, dict | list) else repr(value)


def _describe(project: str, error: ErrorDetails) -> str:
    """`<project>:<key>: got <value>; allowed: ...` for one pydantic error."""
    loc = [str(part) for part in error["loc"]]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        key = ".".join([*loc, cause.key])
        return f"{project}:{key}: got {_format_value(cause.value)}; {cause.allowed}"
    key = ".".join(loc)
    if error["type"] == "missing":
        allowed = _field_description(loc) or "allowed: any value of the documented type (required)"
        return f"{project}:{key}: missing; {allowed}"
    if error["type"] == "extra_forbidden":
        given = _format_value(error["input"])
        return f"{project}:{key}: got {given}; allowed: no such key here (check the spelling)"
    got = _format_value(error["input"])
    if error["type"] == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        return f"{project}:{key}: got {got}; {message if message.startswith('allowed') else 'allowed: ' + message}"
    # Pydantic's own wording ("Input should be a valid integer", "String should match pattern")
    # says less than the field's description of what is allowed; it is the fallback.
    allowed = _field_description(loc) or f"allowed: {error['msg'][:1].lower()}{error['msg'][1:]}"
    return f"{project}:{key}: got {got}; {allowed}"


def _field_description(loc: list[str]) -> str | None:
    model: Any = StackSettings
    description = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return description
        field = fields[part]
        description = field.description
        model = field.annotation
    return description


def load_settings(project: str, stack: str, values: Mapping[str, Any]) -> StackSettings:
    """Validate the stack's config. `values` maps keys without the project prefix to values."""
    try:
        check_stack_name(stack)
    except ValueError as error:
        raise SettingsError(f"stack: got {stack!r}; {error}") from None
    decoded = {key: _decode(value) for key, value in values.items()}
    for reserved in ("project", "stack"):
        if reserved in decoded:
            raise SettingsError(
                f"{project}:{reserved}: got {decoded[reserved]!r}; allowed: not set in config"
            )
    unwritten = [
        f"{project}:{key}: missing; {allowed}; a stack writes every size itself (no code default)"
        for key, allowed in unwritten_required_keys(decoded)
    ]
    try:
        settings = StackSettings.model_validate({**decoded, "project": project, "stack": stack})
    except ValidationError as exc:
        lines = [_describe(project, error) for error in exc.errors()]
        raise SettingsError("\n".join(dict.fromkeys(unwritten + lines))) from None
    if unwritten:
        raise SettingsError("\n".join(unwritten))
    return settings


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (also through `X | None`), if it holds one."""
    candidates = [annotation, *get_args(annotation)]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _allowed_from_type(annotation: Any, default: Any) -> str:
    sub = _model_of(annotation)
    if sub is not None:
        return f"allowed: a section with {', '.join(sub.model_fields)}"
    choices = [c for c in get_args(annotation) if isinstance(c, str)]
    if choices:
        return f"allowed: one of {', '.join(choices)}"
    return f"allowed: a value of the same kind as {default!r}"


def unwritten_required_keys(
    section: Mapping[str, Any], model: type[BaseModel] = StackSettings, path: str = ""
) -> list[tuple[str, str]]:
    """Keys marked `StackRequired` that the stack file leaves out, with what is allowed there.

    Only sections the file writes are walked; a missing section is pydantic's own `missing`.
    """
    found: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        marker = next((m for m in field.metadata if isinstance(m, StackRequired)), None)
        key = f"{path}{name}"
        value = section.get(name)
        if name not in section:
            if marker is not None and not marker.exempt(dict(section)):
                found.append((key, field.description or _allowed_from_type(field.annotation, field.default)))
            continue
        sub = _model_of(field.annotation)
        if sub is not None and isinstance(value, Mapping):
            found += unwritten_required_keys(value, sub, f"{key}.")
    return found
