"""Connection settings the data tier hands to the application tier (the data -> app contract).

Each service's cluster builds one `ServiceConnection`: plain data known at plan time (hosts,
ports) plus its password as a secret Output, so the Kubernetes tier can build NetworkPolicies
without waiting on outputs. What the application reads (URLs in a Secret) is rendered by the
connection itself, so the Kubernetes tier never names a service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
class ClientProxy:
    """A TCP proxy the app tier runs in its own namespace in front of a data service's nodes.

    Clients dial `host:port` (the proxy's Service) instead of one node; the proxy sends them to
    the first healthy node in `hosts` order, checked on each node's `health_port`. TLS passes
    through, so every node's certificate also carries `host`. `render` turns (server name,
    address pods dial) pairs, in `hosts` order, into the proxy's configuration file (`config_key`).
    """

    name: str  # Service, Deployment and ConfigMap name in the app namespace
    namespace: str
    port: int  # the port clients dial on the proxy, and the proxy on every node
    health_port: int
    hosts: tuple[str, ...]  # VPC addresses, node order: the first is active, the others backups
    monitor_port: int  # the proxy's own health endpoint (its pods' probes)
    monitor_path: str
    config_key: str
    render: Callable[[Sequence[tuple[str, str]]], str] = field(compare=False, repr=False)

    @property
    def host(self) -> str:
        """The Service's DNS name: what clients dial and every node's certificate names."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    def exports(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "health_port": self.health_port,
            "hosts": list(self.hosts),
        }


@dataclass(frozen=True)
class ServiceConnection:
    """How clients reach one data service."""

    hosts: tuple[str, ...]  # VPC addresses, node order
    password: pulumi.Output[str]  # secret
    tls: bool

    def client_ports(self) -> tuple[int, ...]:
        """Every port an application pod dials on each host (NetworkPolicy egress); none when
        the pods go through a `client_proxy()` instead."""
        raise NotImplementedError

    def client_proxy(self) -> ClientProxy | None:
        """The in-cluster proxy the app tier must run for this service, if clients use one."""
        return None

    def environment(self, password: str, name_of: Callable[[str], str], ca_file: str) -> dict[str, str]:
        """The application's settings for this service (Secret keys -> values), e.g. DATABASE_URL.

        `name_of` turns a VPC address into the node name clients use; `ca_file` is where pods
        find the internal CA when TLS is on.
        """
        raise NotImplementedError

    def exports(self) -> dict[str, Any]:
        """The stack output for this service: every field (the caller keeps the whole output secret)."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        values = {name: value.exports() if isinstance(value, ClientProxy) else value for name, value in values.items()}
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

    def proxies(self) -> list[ClientProxy]:
        """The in-cluster proxies the app tier runs, in registry order."""
        return [proxy for connection in self.services.values() if (proxy := connection.client_proxy()) is not None]

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
