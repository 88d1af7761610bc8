"""Hook through which another tier adds pieces to a data role's VMs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from components.firewall import InboundRule


@dataclass(frozen=True)
class RoleAddon:
    """Extra pieces another tier (operations: exporters, backup timers, log shipping) adds to a
    data role's VMs."""

    # node index -> cloud-config fragment (may be a secret Output)
    cloud_config: Callable[[int], pulumi.Input[Mapping[str, Any]]]
    inbound_rules: tuple[InboundRule, ...] = ()  # e.g. exporter ports from the monitoring sources
