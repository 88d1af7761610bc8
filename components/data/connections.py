"""Connection settings the data tier hands to the application tier (the data -> app contract).

Each service's cluster builds one `ServiceConnection`: plain data known at plan time (hosts,
ports) plus its password as a secret Output, so the Kubernetes tier can build NetworkPolicies
without waiting on outputs. What the application reads (URLs in a Secret) is rendered by the
connection itself, so the Kubernetes tier never names a service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pulumi


@dataclass(frozen=True)
class TlsFiles:
    """Where a TLS-enabled server finds the internal CA, its certificate and its private key."""

    ca_file: str
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class ServiceConnection:
    """How clients reach one data service."""

    hosts: tuple[str, ...]  # VPC addresses, node order
    password: pulumi.Output[str]  # secret
    tls: bool

    def client_ports(self) -> tuple[int, ...]:
        """Every port an application pod dials on each host (NetworkPolicy egress)."""
        raise NotImplementedError

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        """The application's settings for this service (Secret keys -> values), e.g. DATABASE_URL.

        `name_of` turns a VPC address into the node name clients use; `ca_file` is where pods
        find the internal CA when TLS is on.
        """
        raise NotImplementedError

    def exports(self) -> dict[str, Any]:
        """The stack output for this service: every field (the caller keeps the whole output secret)."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {**values, "hosts": list(self.hosts)}


@dataclass(frozen=True)
class DataConnections:
    services: Mapping[str, ServiceConnection]  # role -> connection, in registry order
    ca_certificate: pulumi.Output[str] | None  # PEM of the internal CA where TLS is on
    # The name each node answers to (its hostname, also a SAN of its TLS certificate) and the
    # address pods dial for it: the VPC address when the cluster sits in the VPC, the node's
    # Linode private-network address otherwise (an Output: Linode assigns it at creation).
    # Pods resolve the names through hostAliases, so URLs and certificate checks use the same
    # stable names on both paths.
    node_names: Mapping[str, str] = field(default_factory=dict)  # VPC address -> name
    dial_addresses: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)  # name -> address

    def name_of(self, host: str) -> str:
        """The name clients use for a node given by its VPC address (the address if unnamed)."""
        return self.node_names.get(host, host)

    def host_aliases(self) -> list[dict[str, Any]]:
        """Pod `hostAliases` entries: each node name pinned to the address pods reach it at."""
        return [{"ip": address, "hostnames": [name]} for name, address in self.dial_addresses.items()]

    def destinations(self) -> list[tuple[str, int]]:
        """Every (address, port) an app pod must reach: for NetworkPolicy egress."""
        pairs: list[tuple[str, int]] = []
        for connection in self.services.values():
            for port in connection.client_ports():
                pairs += [(host, port) for host in connection.hosts]
        # Deduplicate while keeping a stable order for diff-friendly manifests.
        return list(dict.fromkeys(pairs))

    def environment(self, passwords: Mapping[str, str], ca_file: str) -> dict[str, str]:
        """Every service's application settings, from the plain passwords keyed by role."""
        settings: dict[str, str] = {}
        for role, connection in self.services.items():
            settings.update(connection.environment(passwords[role], self.name_of, ca_file))
        return settings
