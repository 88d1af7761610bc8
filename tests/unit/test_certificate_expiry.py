"""Certificate expiry: the data VMs' textfile script run on real certificates, the alerts by promtool."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.data.services import SERVICES
from components.operations.certificate_expiry import (
    CERT_MANAGER_METRIC,
    NOT_AFTER_METRIC,
    READABLE_METRIC,
    SCRIPT,
    certificate_alert_group,
    certificate_expiry_cloud_config,
)

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _certificate(path: Path, not_after: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform-infra test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_the_script_publishes_each_certificates_not_after_and_flags_an_unreadable_one(tmp_path: Path) -> None:
    ca_expiry = datetime.datetime(2036, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    node_expiry = datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    _certificate(tmp_path / "ca.pem", ca_expiry)
    _certificate(tmp_path / "server.crt", node_expiry)
    (tmp_path / "broken.crt").write_text("not a certificate\n")
    script = tmp_path / "tls-expiry-metrics"
    script.write_text(SCRIPT)
    out = tmp_path / "textfile"
    out.mkdir()
    args = [f"ca={tmp_path / 'ca.pem'}", f"node={tmp_path / 'server.crt'}", f"other={tmp_path / 'broken.crt'}"]
    env = {**os.environ, "TEXTFILE_DIRECTORY": str(out)}
    subprocess.run(["sh", str(script), *args], check=True, env=env, timeout=60)
    assert [p.name for p in out.iterdir()] == ["platform_tls.prom"]  # no temporary file left
    text = (out / "platform_tls.prom").read_text()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#"}
    assert samples[f'{NOT_AFTER_METRIC}{{kind="ca",path="{tmp_path}/ca.pem"}}'] == ca_expiry.timestamp()
    assert samples[f'{NOT_AFTER_METRIC}{{kind="node",path="{tmp_path}/server.crt"}}'] == node_expiry.timestamp()
    assert samples[f'{READABLE_METRIC}{{kind="node",path="{tmp_path}/server.crt"}}'] == 1
    assert samples[f'{READABLE_METRIC}{{kind="other",path="{tmp_path}/broken.crt"}}'] == 0
    assert not any(key.startswith(NOT_AFTER_METRIC) and "broken" in key for key in samples)
    # The node exporter's parser (the textfile collector uses the same exposition format).
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("role", sorted(SERVICES))
def test_the_timer_checks_the_ca_and_node_certificate_the_data_tier_writes(role: str) -> None:
    fragment = certificate_expiry_cloud_config(role)
    (service,) = [f for f in fragment["write_files"] if f["path"].endswith(".service")]
    assert f"ca={SERVICES[role].tls_files.ca_file}" in service["content"]
    assert f"node={SERVICES[role].tls_files.cert_file}" in service["content"]
    assert ["systemctl", "enable", "--now", "platform-tls-expiry-metrics.timer"] in fragment["runcmd"]


def _promtool_test(tmp_path: Path, group: Any, series: dict[str, str], alerts: list[dict[str, Any]]) -> None:
    # promtool compares annotations verbatim: the copy under test has none (as in test_promtool).
    bare = [{key: value for key, value in rule.items() if key != "annotations"} for rule in group["rules"]]
    rules = {"groups": [{**group, "rules": bare}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    names = {rule["alert"] for rule in group["rules"]}
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": "2h",
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": a["labels"]} for a in alerts if a["alert"] == name],
                    }
                    for name in sorted(names)
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [certificate_alert_group(data_tls=True)]}))
    result = subprocess.run(
        [PROMTOOL, "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


DAY = 86400
CM = 'namespace="app",name="api-tls"'
NODE = 'instance="10.0.1.10:9100",job="node",kind="node",path="/etc/mysql/tls/server.crt"'


def test_certificates_expiring_within_14_days_fire_and_later_ones_stay_silent(tmp_path: Path) -> None:
    group = certificate_alert_group(data_tls=True)
    series = {
        f"{CERT_MANAGER_METRIC}{{{CM}}}": f"{13 * DAY}x150",
        f"{CERT_MANAGER_METRIC}{{namespace=\"app\",name=\"fine\"}}": f"{20 * DAY}x150",
        f"{NOT_AFTER_METRIC}{{{NODE}}}": f"{10 * DAY}x150",
        f'{NOT_AFTER_METRIC}{{instance="10.0.1.10:9100",job="node",kind="ca",path="/etc/mysql/tls/ca.pem"}}': (
            f"{3650 * DAY}x150"
        ),
        f"{READABLE_METRIC}{{{NODE}}}": "1x150",
        f'{READABLE_METRIC}{{instance="10.0.1.11:9100",job="node",kind="ca",path="/etc/redis/tls/ca.pem"}}': "0x150",
    }
    alerts = [
        {"alert": "CertificateExpiringSoon", "labels": {"namespace": "app", "name": "api-tls", "severity": "warning"}},
        {
            "alert": "DataCertificateExpiringSoon",
            "labels": {
                "instance": "10.0.1.10:9100",
                "job": "node",
                "kind": "node",
                "path": "/etc/mysql/tls/server.crt",
                "severity": "critical",
            },
        },
        {
            "alert": "DataCertificateUnreadable",
            "labels": {
                "instance": "10.0.1.11:9100",
                "job": "node",
                "kind": "ca",
                "path": "/etc/redis/tls/ca.pem",
                "severity": "warning",
            },
        },
    ]
    _promtool_test(tmp_path, group, series, alerts)


def test_without_data_tls_only_cert_managers_certificates_are_watched() -> None:
    assert [rule["alert"] for rule in certificate_alert_group(data_tls=False)["rules"]] == ["CertificateExpiringSoon"]
