"""Prometheus exporters on the data VMs, as cloud-config fragments (pure).

Every data VM runs Debian's prometheus-node-exporter; each service brings its own exporter
(its registry entry in components/data/services.py says which port, job and fragment). They
listen on the VM's VPC address only; the firewall opens those ports to the monitoring sources
(the cluster's pod/node subnet) and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from components.data.plugin import exporter_defaults_file
from components.data.services import service
from components.foundation.firewall import RuleInput, inbound_rule

NODE_EXPORTER_PORT = 9100
NODE_JOB = "node"
# The node exporter's textfile collector directory in Debian's package; the backup scripts
# write their result metrics here.
TEXTFILE_DIRECTORY = "/var/lib/prometheus/node-exporter"


def scrape_job(role: str) -> str:
    """Prometheus job name of a data service's exporter; alert rules and scrape configs share it."""
    return service(role).exporter.job


def exporter_port(role: str) -> int:
    return service(role).exporter.port


def _node_exporter(address: str) -> dict[str, Any]:
    args = [
        f"--web.listen-address={address}:{NODE_EXPORTER_PORT}",
        f"--collector.textfile.directory={TEXTFILE_DIRECTORY}",
        "--collector.systemd",
    ]
    return {
        "packages": ["prometheus-node-exporter"],
        "write_files": [exporter_defaults_file("/etc/default/prometheus-node-exporter", args)],
        "runcmd": [
            ["install", "-d", "-o", "prometheus", "-g", "prometheus", "-m", "0755", TEXTFILE_DIRECTORY],
            ["systemctl", "restart", "prometheus-node-exporter"],
        ],
    }


def exporters_cloud_config(role: str, address: str, listen_all: bool = False) -> dict[str, Any]:
    """Cloud-config fragment for one data VM: node exporter plus its service's exporter.

    `listen_all`: a standard-tier cluster scrapes over Linode's private network, whose address
    is assigned at creation, so the exporters listen on every address and the firewall (exporter
    ports from the cluster's sources only) decides who gets through.
    """
    listen = "0.0.0.0" if listen_all else address
    fragments = [_node_exporter(listen), service(role).exporter.cloud_config(listen)]
    merged: dict[str, Any] = {"packages": [], "write_files": [], "runcmd": []}
    for fragment in fragments:
        for key in merged:
            merged[key].extend(fragment.get(key, []))
    return {key: value for key, value in merged.items() if value}


def exporter_inbound_rules(role: str, monitoring_sources: pulumi.Input[Sequence[str]]) -> tuple[RuleInput, ...]:
    """Exporter ports open to the monitoring sources only (where the cluster connects from)."""
    ports = f"{NODE_EXPORTER_PORT},{exporter_port(role)}"
    return (inbound_rule(f"{role}-metrics", "TCP", ports, monitoring_sources),)
