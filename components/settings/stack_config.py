"""Read the stack's config from the Pulumi engine: plain keys to settings, `secure:` keys to secrets.

Secrets never enter the pydantic models (which are printed in errors and previews); they stay
`pulumi.Output` values marked secret end to end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.settings import StackSettings, load_settings
from components.settings.common import ConfigError
from components.settings.placeholders import find_placeholders
from components.settings.stack_file import namespace_errors, read_stack_file

# Provider config the program itself needs (the backup-window provider calls the Linode API).
LINODE_TOKEN = "linode:token"
PROVIDER_SECRET_KEYS = (LINODE_TOKEN,)

# The project's secret config keys, one place: the tiers read them by these names, and the
# loader refuses any of them written in plain text.
REGISTRY_PASSWORD = "registry_password"
ALERT_WEBHOOK_URL = "alert_webhook_url"
ALERT_SMTP_PASSWORD = "alert_smtp_password"
PROJECT_SECRET_KEYS = (REGISTRY_PASSWORD, ALERT_WEBHOOK_URL, ALERT_SMTP_PASSWORD)

# Placeholders (documentation addresses, the sample SSH key, example.com) are refused before
# any resource exists. Only the offline engine (tools/offline.py), which runs the program under
# mocks where nothing reaches a cloud, sets this to True, so the committed example stacks can be
# previewed and tested. It is not config and not an environment variable: `pulumi up` cannot
# be talked into it.
OFFLINE_PLACEHOLDERS_TOLERATED: ContextVar[bool] = ContextVar("offline_placeholders_tolerated", default=False)


@dataclass(frozen=True)
class StackSecrets:
    """`secure:` config values of this project, as secret Outputs, keyed without the prefix."""

    values: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)

    def get(self, key: str) -> pulumi.Output[str] | None:
        return self.values.get(key)


def required_secrets(settings: StackSettings) -> dict[str, str]:
    """Secret keys this stack's settings depend on, with why: checked before any resource exists."""
    # The LKE cluster's own provider (api_version v4beta) takes its token from config.
    required: dict[str, str] = {LINODE_TOKEN: "the LKE cluster's provider (api_version v4beta) reads it"}
    if any(w.build is not None for w in settings.kubernetes.workloads):
        required[f"{settings.project}:{REGISTRY_PASSWORD}"] = "a workload is built and pushed to the registry"
    for key, reader in settings.kubernetes.secret_keys().items():
        required[f"{settings.project}:{key}"] = f"{reader} reads it"
    if settings.operations.monitoring.receivers.smtp_username:
        # Alertmanager logs in to the smarthost as this user; without the password no e-mail leaves.
        required[f"{settings.project}:{ALERT_SMTP_PASSWORD}"] = (
            "operations.monitoring.receivers.smtp_username is set, so Alertmanager logs in to the SMTP server"
        )
    return required


def missing_secrets(settings: StackSettings, secret_names: set[str]) -> list[str]:
    """One line per missing secret: key, why it is needed, how to set it."""
    lines = []
    for key, reason in required_secrets(settings).items():
        name = key.split(":", 1)[1] if key.startswith(f"{settings.project}:") else key
        if name not in secret_names:
            lines.append(
                f"{key}: missing; allowed: a secret, needed because {reason}; "
                f"set it with `pulumi config set --secret {key} <value>`"
            )
    return lines


def declared_secret_keys(plain: Mapping[str, Any]) -> set[str]:
    """Secret keys named by the workloads' `secret_env`, read leniently from the raw config.

    Needed before validation: a workload's secret written in plain text must be refused as a
    secret (without echoing it), not reported as an unknown setting with its value.
    """
    raw = plain.get("kubernetes")
    try:
        section = json.loads(raw) if isinstance(raw, str) else raw
        workloads = (section.get("workloads") or []) if isinstance(section, dict) else []
        return {
            str(key)
            for workload in workloads
            if isinstance(workload, dict) and isinstance(workload.get("secret_env"), dict)
            for key in workload["secret_env"].values()
        }
    except (ValueError, AttributeError, TypeError):
        return set()


def _all_config() -> dict[str, Any]:
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def split_config(
    project: str, config: Mapping[str, Any], secret_keys: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Plain values of the project namespace, and secret values (project and provider keys)."""
    plain: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    prefix = f"{project}:"
    for key, value in config.items():
        if key.startswith(prefix):
            name = key[len(prefix) :]
            if key in secret_keys:
                secrets[name] = value
            else:
                plain[name] = value
        elif key in PROVIDER_SECRET_KEYS:
            secrets[key] = value
    return plain, secrets


def parse_stack_config(
    project: str,
    stack: str,
    config: Mapping[str, Any],
    secret_keys: set[str],
    placeholders_tolerated: bool = False,
) -> tuple[StackSettings, dict[str, str]]:
    """The engine's config to settings and secret values, or one ConfigError listing every problem.

    Pure: the program and the tests call it with what the engine (or the mocks) provide.
    """
    lines = namespace_errors(project, config)
    plain, secret_values = split_config(project, config, secret_keys)
    allowed_secrets = set(PROJECT_SECRET_KEYS) | declared_secret_keys(plain)
    for name in sorted(allowed_secrets & set(plain)):
        del plain[name]  # never echoed: the value may be a real secret
        lines.append(
            f"{project}:{name}: got a plain-text value; allowed: a secret only, set it with "
            f"`pulumi config set --secret {project}:{name} <value>`"
        )
    for key in PROVIDER_SECRET_KEYS:
        if key in config and key not in secret_keys:
            lines.append(
                f"{key}: got a plain-text value; allowed: a secret only, set it with "
                f"`pulumi config set --secret {key} <value>`"
            )
    known = ", ".join(sorted(PROJECT_SECRET_KEYS))
    for name in sorted(secret_values):
        if ":" not in name and name not in allowed_secrets:
            lines.append(
                f"{project}:{name}: got a secret no part of the program reads; allowed: one of {known} "
                "or a key named in a workload's secret_env (check the spelling)"
            )
    try:
        settings = load_settings(project, stack, plain)
    except ConfigError as error:
        raise ConfigError("\n".join([*lines, str(error)])) from None
    lines += missing_secrets(settings, set(secret_values))
    if not placeholders_tolerated:
        lines += [placeholder.line(project) for placeholder in find_placeholders(settings)]
    if lines:
        raise ConfigError("\n".join(dict.fromkeys(lines)))
    return settings, secret_values


def check_stack_file(stack: str, directory: Path | None = None) -> None:
    """What only the file shows (a key written twice, YAML the CLI might still accept)."""
    path = (directory or Path.cwd()) / f"Pulumi.{stack}.yaml"
    if path.is_file():
        read_stack_file(path)


def load_stack_config() -> tuple[StackSettings, StackSecrets]:
    """Settings or one `pulumi.RunError` (no traceback) before any resource is registered."""
    project = pulumi.get_project()
    stack = pulumi.get_stack()
    config = _all_config()
    secret_keys = {key for key in config if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    try:
        check_stack_file(stack)
        settings, secret_values = parse_stack_config(
            project, stack, config, secret_keys, OFFLINE_PLACEHOLDERS_TOLERATED.get()
        )
    except ConfigError as error:
        raise pulumi.RunError(f"invalid stack config for {stack}:\n{error}") from None
    secrets = StackSecrets({key: pulumi.Output.secret(value) for key, value in secret_values.items()})
    return settings, secrets
