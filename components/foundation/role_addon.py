"""Hook through which another tier adds pieces to a data role's VMs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from components.foundation.firewall import RuleInput


@dataclass(frozen=True)
class RoleAddon:
    """Extra pieces another tier (operations: exporters, backup timers, log shipping) adds to a
    data role's VMs."""

    # node index -> cloud-config fragment (may be a secret Output)
    cloud_config: Callable[[int], pulumi.Input[Mapping[str, Any]]]
    inbound_rules: tuple[RuleInput, ...] = ()  # e.g. exporter ports from the monitoring sources


def node_user_data(
    base_cloud_config: Mapping[str, Any],
    hostname: str,
    role_doc: pulumi.Input[Mapping[str, Any]],
    addon: RoleAddon | None,
    index: int,
) -> pulumi.Output[str]:
    """One data VM's user data: base hardening, the role's document, then the addon's fragment.

    Always a secret: every data role's document carries credentials.
    """
    from components.foundation.cloud_init import merge_cloud_configs, render_cloud_config

    addon_doc: pulumi.Input[Mapping[str, Any]] = addon.cloud_config(index) if addon else {}

    def render(docs: list[Any]) -> str:
        role, extra = docs
        return render_cloud_config(merge_cloud_configs(base_cloud_config, {"hostname": hostname}, role, extra))

    return pulumi.Output.secret(pulumi.Output.all(role_doc, addon_doc).apply(render))
