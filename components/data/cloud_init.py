"""Per-role cloud-config documents (plain dicts) for the data VMs, built from the pure renderers.

Order on first boot (Debian cloud-init): `write_files` (init stage) drops a `policy-rc.d` that
keeps package maintainer scripts from starting the services with Debian's defaults; packages are
installed; `write_files` with `defer: true` then writes the service configuration once the
service users exist; finally `runcmd` runs the role's setup script, which removes `policy-rc.d`
and starts the service in the right order for its topology. Other tiers adding packages to data
VMs (RoleAddon) must therefore start their services explicitly in their own `runcmd`.

Galera bootstrap (documented here and in the setup script): node 0 bootstraps a new cluster only
when its data directory has never been part of one (no grastate.dat) and no peer answers on the
Galera port; every other case joins. After a full outage (every node down), run on the node
whose /var/lib/mysql/grastate.dat says `safe_to_bootstrap: 1` (or, if none does, the node with
the highest seqno from `mariadbd --wsrep-recover`): `galera_new_cluster`, then
`systemctl start mariadb` on the others, one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.data.connections import TlsFiles

SETUP_DIR = "/usr/local/lib/platform"
SECRETS_DIR = "/root/platform"


@dataclass(frozen=True)
class TlsMaterial:
    """PEM text for one node: the internal CA, the node's certificate and its private key."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def cloud_file(
    path: str, content: str, permissions: str, owner: str = "root:root", defer: bool = False
) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "content": content, "owner": owner, "permissions": permissions}
    if defer:
        entry["defer"] = True
    return entry


def hold_service_starts() -> dict[str, Any]:
    # Debian's invoke-rc.d asks policy-rc.d before starting a freshly installed service: 101 = no.
    return cloud_file(
        "/usr/sbin/policy-rc.d", "#!/bin/sh\n# platform-infra: first boot in progress\nexit 101\n", "0755"
    )


def tls_files(files: TlsFiles, material: TlsMaterial, owner: str) -> list[dict[str, Any]]:
    return [
        cloud_file(files.ca_file, material.ca_pem, "0644", owner, defer=True),
        cloud_file(files.cert_file, material.cert_pem, "0644", owner, defer=True),
        cloud_file(files.key_file, material.key_pem, "0600", owner, defer=True),
    ]


def setup_script(lines: list[str]) -> str:
    return (
        "#!/bin/bash\n# Rendered by platform-infra (components/data/cloud_init.py).\nset -euo pipefail\n"
        + "\n".join(lines)
        + "\n"
    )


def wait_for_tcp(host_var: str, port: int) -> str:
    return f'timeout 2 bash -c "</dev/tcp/${{{host_var}}}/{port}" 2>/dev/null'


# The node's Linode private-network address (192.168.128.0/17), present only when the VM asked
# for one: how pods of a standard-tier LKE cluster (outside the VPC) reach the data VMs.
PRIVATE_IPV4_FUNCTION = (
    "private_ipv4() { ip -4 -o addr show scope global | awk '{split($4, a, \"/\"); print a[1]}'"
    " | grep -E '^192[.]168[.](12[89]|1[3-9][0-9]|2[0-5][0-9])[.]' | head -n 1; }"
)


def private_network_lines() -> list[str]:
    return [
        PRIVATE_IPV4_FUNCTION,
        'PRIVATE="$(private_ipv4 || true)"',
        'if [ -z "$PRIVATE" ]; then',
        '  echo "no private-network IPv4 on this VM: clients outside the VPC cannot connect" >&2',
        "fi",
    ]


def require_tls_pair(files: TlsFiles | None, material: TlsMaterial | None) -> None:
    """A node's TLS file paths and its TLS material come together or not at all."""
    if (files is None) != (material is None):
        raise ValueError("TLS file paths and TLS material go together")
