"""Prometheus exporters on the data VMs, as cloud-config fragments (pure).

Debian's own packages (prometheus-node-exporter, prometheus-mysqld-exporter,
prometheus-redis-exporter) listen on the VM's VPC address only; RabbitMQ serves its metrics
from the built-in rabbitmq_prometheus plugin. The firewall opens those ports to the
monitoring sources (the cluster's pod/node subnet) and nothing else.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from components.foundation.firewall import InboundRule

NODE_EXPORTER_PORT = 9100
MYSQLD_EXPORTER_PORT = 9104
REDIS_EXPORTER_PORT = 9121
RABBITMQ_PROMETHEUS_PORT = 15692

# Prometheus job name per exporter; alert rules and scrape configs share these.
SCRAPE_JOBS = {
    "node": "node",
    "mariadb": "mysqld",
    "redis": "redis",
    "rabbitmq": "rabbitmq",
}
ROLE_EXPORTER_PORT = {
    "mariadb": MYSQLD_EXPORTER_PORT,
    "redis": REDIS_EXPORTER_PORT,
    "rabbitmq": RABBITMQ_PROMETHEUS_PORT,
}
DATA_ROLES = ("mariadb", "redis", "rabbitmq")
# The node exporter's textfile collector directory in Debian's package; the backup scripts
# write their result metrics here.
TEXTFILE_DIRECTORY = "/var/lib/prometheus/node-exporter"


def _defaults_file(path: str, args: Sequence[str], extra: Sequence[str] = ()) -> dict[str, Any]:
    content = "# Managed by platform-infra (cloud-init).\n"
    content += "".join(f"{line}\n" for line in extra)
    content += f"ARGS={shlex.quote(' '.join(args))}\n"
    return {"path": path, "owner": "root:root", "permissions": "0644", "content": content}


def _node_exporter(address: str) -> dict[str, Any]:
    args = [
        f"--web.listen-address={address}:{NODE_EXPORTER_PORT}",
        f"--collector.textfile.directory={TEXTFILE_DIRECTORY}",
        "--collector.systemd",
    ]
    return {
        "packages": ["prometheus-node-exporter"],
        "write_files": [_defaults_file("/etc/default/prometheus-node-exporter", args)],
        "runcmd": [
            ["install", "-d", "-o", "prometheus", "-g", "prometheus", "-m", "0755", TEXTFILE_DIRECTORY],
            ["systemctl", "restart", "prometheus-node-exporter"],
        ],
    }


# The exporter logs in through MariaDB's unix_socket plugin as the OS user it runs as, so no
# password exists to leak; the grant is the minimum its collectors read.
MYSQLD_EXPORTER_GRANTS = (
    "SET SESSION sql_log_bin=0; "
    "CREATE USER IF NOT EXISTS 'prometheus'@'localhost' IDENTIFIED VIA unix_socket "
    "WITH MAX_USER_CONNECTIONS 3; "
    "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'prometheus'@'localhost';"
)


def _mysqld_exporter(address: str) -> dict[str, Any]:
    args = [
        f"--web.listen-address={address}:{MYSQLD_EXPORTER_PORT}",
        "--collect.info_schema.processlist",
        "--collect.slave_status",
        "--collect.global_status",
    ]
    grant_loop = (
        "for attempt in $(seq 60); do "
        f"mariadb -e {shlex.quote(MYSQLD_EXPORTER_GRANTS)} && exit 0; sleep 5; done; exit 1"
    )
    return {
        "packages": ["prometheus-mysqld-exporter"],
        "write_files": [
            _defaults_file(
                "/etc/default/prometheus-mysqld-exporter",
                args,
                extra=['DATA_SOURCE_NAME="prometheus@unix(/run/mysqld/mysqld.sock)/"'],
            )
        ],
        "runcmd": [
            ["sh", "-c", grant_loop],
            ["systemctl", "restart", "prometheus-mysqld-exporter"],
        ],
    }


# The exporter reads Redis's password from the server's own config at each start, so the secret
# is written once (by the data tier) and never copied into another config file.
REDIS_PASSWORD_HELPER = "/usr/local/lib/platform/redis-exporter-env"
REDIS_PASSWORD_SCRIPT = """#!/bin/sh
# Managed by platform-infra (cloud-init): Redis's password for prometheus-redis-exporter.
set -eu
conf="${REDIS_CONF:-/etc/redis/redis.conf}"
out="${EXPORTER_ENV:-/run/prometheus-redis-exporter.env}"
umask 077
password=$(awk '$1 == "requirepass" {print $2}' "$conf" | tr -d '"')
printf 'REDIS_PASSWORD="%s"\\n' "$password" > "$out"
if id prometheus >/dev/null 2>&1; then chown prometheus "$out"; fi
"""
REDIS_EXPORTER_DROPIN = f"""# Managed by platform-infra (cloud-init).
[Service]
ExecStartPre=+{REDIS_PASSWORD_HELPER}
EnvironmentFile=-/run/prometheus-redis-exporter.env
"""


def _redis_exporter(address: str) -> dict[str, Any]:
    args = [
        f"-web.listen-address={address}:{REDIS_EXPORTER_PORT}",
        "-redis.addr=redis://127.0.0.1:6379",
    ]
    return {
        "packages": ["prometheus-redis-exporter"],
        "write_files": [
            _defaults_file("/etc/default/prometheus-redis-exporter", args),
            {
                "path": REDIS_PASSWORD_HELPER,
                "owner": "root:root",
                "permissions": "0755",
                "content": REDIS_PASSWORD_SCRIPT,
            },
            {
                "path": "/etc/systemd/system/prometheus-redis-exporter.service.d/10-password.conf",
                "owner": "root:root",
                "permissions": "0644",
                "content": REDIS_EXPORTER_DROPIN,
            },
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "restart", "prometheus-redis-exporter"],
        ],
    }


def _rabbitmq_prometheus() -> dict[str, Any]:
    enable_loop = (
        "for attempt in $(seq 60); do rabbitmq-plugins enable rabbitmq_prometheus && exit 0; "
        "sleep 5; done; exit 1"
    )
    return {"runcmd": [["sh", "-c", enable_loop]]}


def exporters_cloud_config(role: str, address: str, listen_all: bool = False) -> dict[str, Any]:
    """Cloud-config fragment for one data VM: node exporter plus its service's exporter.

    `listen_all`: a standard-tier cluster scrapes over Linode's private network, whose address
    is assigned at creation, so the exporters listen on every address and the firewall (exporter
    ports from the cluster's sources only) decides who gets through.
    """
    if role not in DATA_ROLES:
        raise ValueError(f"role must be one of {', '.join(DATA_ROLES)}, got {role!r}")
    listen = "0.0.0.0" if listen_all else address
    fragments = [_node_exporter(listen)]
    if role == "mariadb":
        fragments.append(_mysqld_exporter(listen))
    elif role == "redis":
        fragments.append(_redis_exporter(listen))
    else:
        fragments.append(_rabbitmq_prometheus())
    merged: dict[str, Any] = {"packages": [], "write_files": [], "runcmd": []}
    for fragment in fragments:
        for key in merged:
            merged[key].extend(fragment.get(key, []))
    return {key: value for key, value in merged.items() if value}


def exporter_inbound_rules(role: str, monitoring_sources: Sequence[str]) -> tuple[InboundRule, ...]:
    """Exporter ports open to the monitoring sources only (the cluster's subnet)."""
    ports = f"{NODE_EXPORTER_PORT},{ROLE_EXPORTER_PORT[role]}"
    return (
        InboundRule(
            label=f"{role}-metrics",
            protocol="TCP",
            ports=ports,
            sources=tuple(monitoring_sources),
        ),
    )
