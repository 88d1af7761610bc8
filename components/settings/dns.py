"""Settings for config key platform-infra:dns (records in a Linode Domains zone, optional)."""

from __future__ import annotations

import re

from pydantic import field_validator

from components.settings.common import StrictModel

# The TTLs Linode Domains keeps (others are rounded by the API, which would show as drift).
LINODE_TTLS: tuple[int, ...] = (30, 120, 300, 3600, 7200, 14400, 28800, 57600, 86400, 172800, 345600, 604800)
_ZONE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def record_name(host: str, zone: str) -> str | None:
    """`api.staging` for host api.staging.example.com in zone example.com; '' for the apex;
    None when the host is not inside the zone."""
    if host == zone:
        return ""
    suffix = f".{zone}"
    return host[: -len(suffix)] if host.endswith(suffix) else None


class DnsSettings(StrictModel):
    """With `zone` set, the stack keeps an A record per public host (each workload's ingress
    host and the log push host) in that Linode Domains zone, pointing at the ingress
    NodeBalancer. The zone itself (a master Domain, delegated at the registrar) exists already:
    it is shared by the stacks, so no stack owns it."""

    zone: str | None = None
    ttl_sec: int = 300

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and not _ZONE.match(value):
            raise ValueError("a lowercase DNS zone such as example.com (no trailing dot)")
        return value

    @field_validator("ttl_sec")
    @classmethod
    def _ttl(cls, value: int) -> int:
        if value not in LINODE_TTLS:
            raise ValueError(f"one of the TTLs Linode Domains keeps: {', '.join(map(str, LINODE_TTLS))}")
        return value
