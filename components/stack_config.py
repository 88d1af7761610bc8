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
PROVIDER_SECRET_KEYS = ("linode:token",)


@dataclass(frozen=True)
class StackSecrets:
    """`secure:` config values of this project, as secret Outputs, keyed without the prefix."""

    values: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)

    def get(self, key: str) -> pulumi.Output[str] | None:
        return self.values.get(key)

    def require(self, key: str, project: str = "platform-infra") -> pulumi.Output[str]:
        value = self.values.get(key)
        if value is None:
            raise SettingsError(
                f"{key if ':' in key else f'{project}:{key}'}: missing; set it with "
                f"`pulumi config set --secret {key if ':' in key else f'{project}:{key}'} <value>`"
            )
        return value


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
    try:
        settings = load_settings(project, stack, plain)
    except SettingsError as error:
        raise pulumi.RunError(f"invalid stack config for {stack}:\n{error}") from None
    secrets = StackSecrets({key: pulumi.Output.secret(value) for key, value in secret_values.items()})
    return settings, secrets
