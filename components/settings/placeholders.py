"""Placeholders in a stack's settings: what must be filled in before the first `pulumi up`.

The committed stack files are examples: operator addresses from the documentation ranges, a
sample SSH key, `example.com` hosts and e-mails, images on `registry.example.com`. The real
program refuses them (one line per key); the offline preview lists them as findings, so a pull
request shows what is left to fill in. Pure: a function of the validated settings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# RFC 5737 (IPv4) and RFC 3849 (IPv6): reserved for documentation, never routed.
DOCUMENTATION_NETWORKS: dict[str, str] = {
    "192.0.2.0/24": "TEST-NET-1, a documentation range (RFC 5737)",
    "198.51.100.0/24": "TEST-NET-2, a documentation range (RFC 5737)",
    "203.0.113.0/24": "TEST-NET-3, a documentation range (RFC 5737)",
    "2001:db8::/32": "the IPv6 documentation range (RFC 3849)",
}
_NETWORKS = {ipaddress.ip_network(cidr): why for cidr, why in DOCUMENTATION_NETWORKS.items()}
# The public half of the sample key the committed stack files carry (no one holds its private half).
SAMPLE_SSH_KEYS = ("AAAAC3NzaC1lZDI1NTE5AAAAIOa5vQ0mG3Jd8yqzGm1a5l0uWk7m9H3fX2pLr8sT4cE1",)
# RFC 2606 / RFC 6761 example domains, as a host, an e-mail domain, a registry or inside a URL.
_EXAMPLE_DOMAIN = re.compile(r"(?<![a-z0-9-])(?:[a-z0-9-]+\.)*(example\.(?:com|org|net))(?![a-z0-9-])", re.IGNORECASE)
# Keys that are identity, not content.
_SKIPPED = frozenset({"project", "stack", "environment"})


@dataclass(frozen=True, order=True)
class Placeholder:
    key: str  # without the project prefix, e.g. kubernetes.workloads.0.image
    value: str
    reason: str

    def line(self, project: str) -> str:
        return f"{project}:{self.key}: got {self.value!r}; allowed: a real value, not a placeholder ({self.reason})"


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}.{index}")
    else:
        yield path, value


def _why(text: str) -> str | None:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        network = None
    if network is not None:
        for documentation, why in _NETWORKS.items():
            if network.version == documentation.version and network.subnet_of(documentation):  # type: ignore[arg-type]
                return why
    if any(sample in text for sample in SAMPLE_SSH_KEYS):
        return "the sample SSH key of the committed stack files"
    match = _EXAMPLE_DOMAIN.search(text)
    if match is not None:
        return f"{match.group(1)} is reserved for documentation (RFC 2606)"
    return None


def find_placeholders(settings: BaseModel) -> list[Placeholder]:
    """Every placeholder in the settings, sorted by key."""
    found: list[Placeholder] = []
    for key, value in _leaves(settings.model_dump(mode="json"), ""):
        if key.split(".", 1)[0] in _SKIPPED or not isinstance(value, str):
            continue
        why = _why(value)
        if why is not None:
            found.append(Placeholder(key, value, why))
    return sorted(found)
