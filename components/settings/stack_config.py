"""Read the stack's config from the Pulumi engine: plain keys to settings, `secure:` keys to secrets.

Secrets never enter the pydantic models (which are printed in errors and previews); they stay
`pulumi.Output` values marked secret end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.settings import SettingsError, StackSettings, load_settings

# Provider config the program itself needs (the backup-window provider calls the Linode API).
LINODE_TOKEN = "linode:token"
PROVIDER_SECRET_KEYS = (LINODE_TOKEN,)

# The project's secret config keys, one place: the tiers read them by these names, and the
# loader refuses any of them written in plain text.
REGISTRY_PASSWORD = "registry_password"
ALERT_WEBHOOK_URL = "alert_webhook_url"
ALERT_SMTP_PASSWORD = "alert_smtp_password"
PROJECT_SECRET_KEYS = (REGISTRY_PASSWORD, ALERT_WEBHOOK_URL, ALERT_SMTP_PASSWORD)


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
    return required


def missing_secrets(settings: StackSettings, secret_names: set[str]) -> list[str]:
    """One line per missing secret: key, why it is needed, how to set it."""
    lines = []
    for key, reason in required_secrets(settings).items():
        name = key.split(":", 1)[1] if key.startswith(f"{settings.project}:") else key
        if name not in secret_names:
            lines.append(f"{key}: missing; {reason}: set it with `pulumi config set --secret {key} <value>`")
    return lines


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


def load_stack_config() -> tuple[StackSettings, StackSecrets]:
    """Settings or one `pulumi.RunError` (no traceback) before any resource is registered."""
    project = pulumi.get_project()
    stack = pulumi.get_stack()
    config = _all_config()
    secret_keys = {key for key in config if runtime_config.is_config_secret(key)}
    secret_keys |= set(runtime_config.get_config_secret_keys_env())
    plain, secret_values = split_config(project, config, secret_keys)
    in_plain_text = [f"{project}:{key}" for key in PROJECT_SECRET_KEYS if key in plain]
    in_plain_text += [key for key in PROVIDER_SECRET_KEYS if key in config and key not in secret_keys]
    if in_plain_text:
        raise pulumi.RunError(
            f"invalid stack config for {stack}:\n"
            + "\n".join(
                f"{key}: got a plain-text value; allowed: a secret only, set it with "
                f"`pulumi config set --secret {key} <value>`"
                for key in in_plain_text
            )
        )
    try:
        settings = load_settings(project, stack, plain)
    except SettingsError as error:
        raise pulumi.RunError(f"invalid stack config for {stack}:\n{error}") from None
    missing = missing_secrets(settings, set(secret_values))
    if missing:
        raise pulumi.RunError(f"invalid stack config for {stack}:\n" + "\n".join(missing))
    secrets = StackSecrets({key: pulumi.Output.secret(value) for key, value in secret_values.items()})
    return settings, secrets
