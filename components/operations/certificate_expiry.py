"""When the platform's TLS certificates expire, as metrics, and the alerts on them (pure).

Two kinds of certificates, two sources:
- cert-manager's (the ingress's Let's Encrypt certificates): cert-manager exports
  `certmanager_certificate_expiration_timestamp_seconds`; the monitoring release scrapes it.
- the data tier's internal CA and node certificates (pulumi-tls, written by cloud-init): no
  process exports them, so a systemd timer on each data VM reads the files with `openssl x509`
  and writes their notAfter through the node exporter's textfile collector, which Prometheus
  already scrapes from every data VM.

An unreadable certificate is a metric too (readable 0), so a broken check cannot hide an expiry.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from components.data.plugin import alert
from components.data.services import service
from components.operations.exporters import TEXTFILE_DIRECTORY

EXPIRY_DAYS = 14
NOT_AFTER_METRIC = "platform_tls_certificate_not_after_timestamp_seconds"
READABLE_METRIC = "platform_tls_certificate_readable"
CERT_MANAGER_METRIC = "certmanager_certificate_expiration_timestamp_seconds"
SCRIPT_PATH = "/usr/local/lib/platform/tls-expiry-metrics"
UNIT = "platform-tls-expiry-metrics"

# Arguments are kind=path pairs; output is one .prom file, replaced atomically (the collector
# must never read half a file).
SCRIPT = f"""#!/bin/sh
# Managed by platform-infra (cloud-init): notAfter of this node's TLS certificates, for the
# node exporter's textfile collector. Arguments: kind=path ...
set -eu
out_dir="${{TEXTFILE_DIRECTORY:-{TEXTFILE_DIRECTORY}}}"
tmp="$out_dir/.platform_tls.prom.$$"
trap 'rm -f "$tmp"' EXIT
{{
  echo "# HELP {NOT_AFTER_METRIC} notAfter of a TLS certificate on this node (Unix time)."
  echo "# TYPE {NOT_AFTER_METRIC} gauge"
  echo "# HELP {READABLE_METRIC} 1 if the certificate file could be read and parsed."
  echo "# TYPE {READABLE_METRIC} gauge"
  for pair in "$@"; do
    kind=${{pair%%=*}}
    path=${{pair#*=}}
    labels="kind=\\"$kind\\",path=\\"$path\\""
    if end=$(openssl x509 -noout -enddate -in "$path" 2>/dev/null) \\
      && seconds=$(date -u -d "${{end#notAfter=}}" +%s 2>/dev/null); then
      echo "{NOT_AFTER_METRIC}{{$labels}} $seconds"
      echo "{READABLE_METRIC}{{$labels}} 1"
    else
      echo "{READABLE_METRIC}{{$labels}} 0"
    fi
  done
}} > "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$out_dir/platform_tls.prom"
trap - EXIT
"""


def certificate_arguments(role: str) -> list[str]:
    files = service(role).tls_files
    return [f"ca={files.ca_file}", f"node={files.cert_file}"]


def certificate_expiry_cloud_config(role: str) -> dict[str, Any]:
    """Cloud-config fragment for a data VM with TLS: the script and an hourly timer running it."""
    command = " ".join(shlex.quote(part) for part in [SCRIPT_PATH, *certificate_arguments(role)])
    service = (
        "# Managed by platform-infra (cloud-init).\n"
        "[Unit]\nDescription=Expiry of the TLS certificates for the node exporter\n"
        f"[Service]\nType=oneshot\nExecStart={command}\n"
    )
    timer = (
        "# Managed by platform-infra (cloud-init).\n"
        "[Unit]\nDescription=Hourly expiry check of the TLS certificates\n"
        "[Timer]\nOnBootSec=2min\nOnUnitActiveSec=1h\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {
        "packages": ["openssl"],
        "write_files": [
            {"path": SCRIPT_PATH, "owner": "root:root", "permissions": "0755", "content": SCRIPT},
            {
                "path": f"/etc/systemd/system/{UNIT}.service",
                "owner": "root:root",
                "permissions": "0644",
                "content": service,
            },
            {
                "path": f"/etc/systemd/system/{UNIT}.timer",
                "owner": "root:root",
                "permissions": "0644",
                "content": timer,
            },
        ],
        "runcmd": [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", f"{UNIT}.timer"]],
    }


def certificate_alert_group(data_tls: bool, days: int = EXPIRY_DAYS) -> Mapping[str, Any]:
    """The rule group: cert-manager's certificates always, the data tier's where it runs TLS."""
    seconds = days * 86400
    rules = [
        alert(
            "CertificateExpiringSoon",
            f"{CERT_MANAGER_METRIC} - time() < {seconds}",
            "1h",
            "warning",
            "Certificate {{ $labels.namespace }}/{{ $labels.name }} expires within " + f"{days} days",
            "cert-manager has not renewed it: it expires in {{ $value | humanizeDuration }}.",
        )
    ]
    if data_tls:
        rules += [
            alert(
                "DataCertificateExpiringSoon",
                f"{NOT_AFTER_METRIC} - time() < {seconds}",
                "1h",
                "critical",
                "The {{ $labels.kind }} certificate on {{ $labels.instance }} expires within " + f"{days} days",
                "{{ $labels.path }} expires in {{ $value | humanizeDuration }}: re-issue it with `pulumi up` "
                "and roll it out to the data VMs (README, data VM rollout).",
            ),
            alert(
                "DataCertificateUnreadable",
                f"{READABLE_METRIC} == 0",
                "1h",
                "warning",
                "The {{ $labels.kind }} certificate on {{ $labels.instance }} cannot be read",
                "{{ $labels.path }} is missing or not a certificate, so its expiry is unknown.",
            ),
        ]
    return {"name": "platform-certificates", "rules": rules}
