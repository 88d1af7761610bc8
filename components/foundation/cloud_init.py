"""Cloud-init user data as Python data, dumped with PyYAML (never string concatenation).

Every VM's document is `merge_cloud_configs(base_cloud_config(...), role fragment, ...)`, so the
SSH hardening and the maintenance policy are the same on every machine.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

ADMIN_USER = "ops"
# Keys whose values are lists and accumulate across fragments; cloud-init runs them in order.
LIST_KEYS = frozenset(
    {"packages", "write_files", "runcmd", "bootcmd", "users", "groups", "ssh_authorized_keys"}
)


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (config files, scripts) as YAML literal blocks: readable in the console."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_representer)


def render_cloud_config(doc: Mapping[str, Any]) -> str:
    """The `#cloud-config` text cloud-init reads from the Linode Metadata service."""
    body = yaml.dump(dict(doc), Dumper=_LiteralDumper, sort_keys=False, default_flow_style=False, width=4096)
    return "#cloud-config\n" + body


def encode_user_data(text: str) -> str:
    """The provider wants user data base64-encoded (InstanceMetadataArgs.user_data)."""
    return base64.b64encode(text.encode()).decode()


def merge_cloud_configs(*docs: Mapping[str, Any]) -> dict[str, Any]:
    """Lists concatenate in order, mappings merge recursively, scalars: the last one wins."""
    merged: dict[str, Any] = {}
    for doc in docs:
        for key, value in doc.items():
            if key in LIST_KEYS:
                merged[key] = [*merged.get(key, []), *value]
            elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_cloud_configs(merged[key], value)
            else:
                merged[key] = value
    if "packages" in merged:
        merged["packages"] = list(dict.fromkeys(merged["packages"]))
    return merged


@dataclass(frozen=True)
class BaseHardening:
    """What every VM gets: the admin user with keys only, a locked-down sshd, security updates."""

    ssh_keys: Sequence[str]
    hostname: str
    allow_tcp_forwarding: bool = False  # only the bastion forwards: it is the jump host
    extra_packages: Sequence[str] = ()


def sshd_hardening(allow_tcp_forwarding: bool) -> str:
    lines = [
        "# Managed by platform-infra (cloud-init). Key-only SSH for the ops user.",
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "AuthenticationMethods publickey",
        f"AllowUsers {ADMIN_USER}",
        "MaxAuthTries 3",
        "LoginGraceTime 30",
        "X11Forwarding no",
        "AllowAgentForwarding no",
        f"AllowTcpForwarding {'yes' if allow_tcp_forwarding else 'no'}",
        "ClientAliveInterval 300",
        "ClientAliveCountMax 2",
    ]
    return "\n".join(lines) + "\n"


def base_cloud_config(hardening: BaseHardening) -> dict[str, Any]:
    return {
        "hostname": hardening.hostname,
        "preserve_hostname": False,
        "disable_root": True,
        "ssh_pwauth": False,
        "users": [
            {
                "name": ADMIN_USER,
                "gecos": "Platform operator",
                "groups": ["sudo"],
                "shell": "/bin/bash",
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "lock_passwd": True,
                "ssh_authorized_keys": list(hardening.ssh_keys),
            }
        ],
        "package_update": True,
        "package_upgrade": True,
        "packages": ["unattended-upgrades", "apt-listchanges", "fail2ban", *hardening.extra_packages],
        "write_files": [
            {
                "path": "/etc/ssh/sshd_config.d/10-platform-hardening.conf",
                "owner": "root:root",
                "permissions": "0600",
                "content": sshd_hardening(hardening.allow_tcp_forwarding),
            },
            {
                "path": "/etc/fail2ban/jail.d/sshd.local",
                "owner": "root:root",
                "permissions": "0644",
                "content": "[sshd]\nenabled = true\nbackend = systemd\nmaxretry = 5\nbantime = 1h\n",
            },
        ],
        "runcmd": [
            ["passwd", "--lock", "root"],
            ["sshd", "-t"],
            ["systemctl", "restart", "ssh"],
            ["systemctl", "enable", "--now", "fail2ban"],
        ],
    }
