"""A local S3 where the backup nodes' environment file says Linode Object Storage is.

The backup node of each data service (components/operations/schedules.py) reads
`/etc/platform-backup/env`: `PLATFORM_BACKUP_S3_ENDPOINT="https://<region>-1.linodeobjects.com"`,
the bucket (the program's ObjectStorageBucket), the bucket-scoped key and the prefix
`<stack>/<role>`. None of that changes here; the network around the VMs does:

- **Server**: moto in server mode (`moto_server` from the project's virtualenv), in a namespace
  `<fleet>-s3` on the fleet's hub bridge, listening on https port 443 at 198.51.100.80. That is
  TEST-NET-2 (RFC 5737, documentation only): no network routes it, so nothing can leave the
  machine by mistake, and traffic to it stays inside the layer's namespaces. Every VM namespace
  gets an on-link route to that /32 (`Lan.routes`, applied when the namespace is attached).
- **Names**: the endpoint's host name and `<bucket>.<host>` (boto3 addresses a bucket either way)
  are /etc/hosts lines written into each VM's root before boot (`Fleet.extra_hosts`).
  `MOTO_S3_CUSTOM_ENDPOINTS` makes moto read the bucket from the path when the Host header is
  the endpoint itself, from the first label otherwise.
- **TLS**: a test CA (P-256, generated with `cryptography`) signs a certificate for the host and
  `*.<host>`. Every VM trusts the CA the Debian way: the PEM in /usr/local/share/ca-certificates
  and `update-ca-certificates` run in a chroot of its root before boot (`Fleet.extra_ca`). Debian's
  python3-botocore takes its bundle from python3-certifi, which Debian points at
  /etc/ssl/certs/ca-certificates.crt, so the backup script verifies the server as it would verify
  Linode's public certificate; no AWS_CA_BUNDLE, nothing in the user data changes.
- **Bucket**: created at start, named as the environment file names it (checked against the
  program's ObjectStorageBucket). moto keeps objects in memory and accepts any access key: the
  key's scope and the bucket's lifecycle rule are not exercised here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.operations.schedules import ENV_PATH, file_content
from tests.system.checks import Fleet, tcp_open
from tests.system.clusters import wait_until
from tests.system.machine import RUN_DIR, sh
from tests.system.program import Vm, stack_records

S3_ADDRESS = "198.51.100.80"  # TEST-NET-2 (RFC 5737): documentation only, routed nowhere
BUCKET = "linode:index/objectStorageBucket:ObjectStorageBucket"
CA_FILE = "platform-infra-system-layer-s3-ca.crt"  # name in /usr/local/share/ca-certificates


def backup_environment(vm: Vm) -> dict[str, str] | None:
    """The VM's /etc/platform-backup/env as the user data writes it, None on a VM without backups."""
    for entry in yaml.safe_load(vm.user_data).get("write_files") or []:
        if entry.get("path") == ENV_PATH:
            values: dict[str, str] = {}
            for line in file_content(entry).splitlines():
                if line.strip() and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    values[key] = shlex.split(value)[0]
            return values
    return None


def program_buckets(stack: str) -> set[str]:
    return {str(r.outputs.get("label") or r.inputs.get("label")) for r in stack_records(stack) if r.type == BUCKET}


# --- the test CA and the endpoint's certificate ------------------------------------------------


CA_NAME = "platform-infra system layer S3 CA"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def test_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # cert and CRL signing
    cert = (
        _builder(CA_NAME, CA_NAME, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(usage, True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def server_certificate(
    names: Sequence[str], ca_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # digital signature
    cert = (
        _builder(names[0], CA_NAME, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(usage, True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _pem(item: x509.Certificate | ec.EllipticCurvePrivateKey) -> str:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM).decode()
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


# A boto3 client run inside the server's namespace (the host's virtualenv), verifying the server
# against the test CA: create the buckets, list them.
_CLIENT = """
import json, sys, boto3
action, endpoint, ca, bucket, prefix = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", verify=ca,
                  aws_access_key_id="system-layer", aws_secret_access_key="system-layer")
if action == "create":
    s3.create_bucket(Bucket=bucket)
    print("[]")
else:
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [{"key": o["Key"], "size": o["Size"]} for o in page.get("Contents", [])]
    print(json.dumps(found))
"""


@dataclass
class LocalS3:
    """moto on the fleet's network, where every endpoint the VMs' backup env files name resolves."""

    buckets: dict[str, list[str]]  # endpoint URL -> the buckets the env files name there
    address: str = S3_ADDRESS
    ca_pem: str = field(init=False)
    _cert_pem: str = field(init=False)
    _key_pem: str = field(init=False)
    netns: str = ""
    workdir: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        ca, ca_key = test_ca()
        names = [name for host in sorted(self.hosts) for name in (host, f"*.{host}")]
        cert, key = server_certificate(names, ca_key)
        self.ca_pem, self._cert_pem, self._key_pem = _pem(ca), _pem(cert), _pem(key)

    @classmethod
    def for_vms(cls, vms: Iterable[Vm]) -> LocalS3 | None:
        """The S3 the VMs' backup env files name (None if no VM takes backups)."""
        buckets: dict[str, list[str]] = {}
        for vm in vms:
            env = backup_environment(vm)
            if env is None:
                continue
            bucket = env["PLATFORM_BACKUP_BUCKET"]
            known = program_buckets(vm.stack)
            if bucket not in known:
                raise AssertionError(f"{vm.label}: bucket {bucket} is none of the program's {known}")
            names = buckets.setdefault(env["PLATFORM_BACKUP_S3_ENDPOINT"], [])
            if bucket not in names:
                names.append(bucket)
        return cls(buckets) if buckets else None

    @property
    def hosts(self) -> list[str]:
        return [str(urlsplit(endpoint).hostname) for endpoint in self.buckets]

    def names(self) -> dict[str, str]:
        """name -> address: each endpoint host and each bucket's virtual-hosted name."""
        names = {}
        for endpoint, buckets in self.buckets.items():
            host = str(urlsplit(endpoint).hostname)
            names[host] = self.address
            names.update({f"{bucket}.{host}": self.address for bucket in buckets})
        return names

    # --- checks.LanService ---

    def configure(self, group: Fleet) -> None:
        assert ipaddress.ip_address(self.address) in ipaddress.ip_network("198.51.100.0/24")
        group.lan.routes.append(f"{self.address}/32")
        group.extra_hosts.update(self.names())
        group.extra_ca[CA_FILE] = self.ca_pem

    def start(self, group: Fleet) -> None:
        self.netns = f"{group.name}-s3"
        self.workdir = RUN_DIR / self.netns
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        for name, text in (("ca.crt", self.ca_pem), ("server.crt", self._cert_pem), ("server.key", self._key_pem)):
            (self.workdir / name).write_text(text)
        (self.workdir / "server.key").chmod(0o600)
        self.etc.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost"] + [f"{address} {name}" for name, address in self.names().items()]
        (self.etc / "hosts").write_text("\n".join(lines) + "\n")
        group.lan._add_ns(self.netns)
        group.lan.attach(self.netns, "eth0", [f"{self.address}/32"])
        log = (self.workdir / "moto.log").open("wb")
        self.process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                str(Path(sys.executable).parent / "moto_server"),
                "-H",
                self.address,
                "-p",
                "443",
                "-c",
                str(self.workdir / "server.crt"),
                "-k",
                str(self.workdir / "server.key"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_S3_CUSTOM_ENDPOINTS": ",".join(self.buckets)},
            start_new_session=True,
        )
        wait_until(lambda: tcp_open(self.netns, self.address, 443, timeout=1), 60, "local S3 listening", 0.5)
        for endpoint, buckets in self.buckets.items():
            for bucket in buckets:
                self._client("create", endpoint, bucket)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.netns:
            shutil.rmtree(self.etc, ignore_errors=True)

    # --- what the tests ask ---

    @property
    def etc(self) -> Path:
        return Path("/etc/netns") / self.netns

    def _client(self, action: str, endpoint: str, bucket: str, prefix: str = "") -> Any:
        out = sh(
            "ip",
            "netns",
            "exec",
            self.netns,
            sys.executable,
            "-c",
            _CLIENT,
            action,
            endpoint,
            str(self.workdir / "ca.crt"),
            bucket,
            prefix,
        )
        return json.loads(out)

    def objects(self, endpoint: str, bucket: str, prefix: str = "") -> dict[str, int]:
        """key -> size of every object under the prefix, listed through the endpoint."""
        return {item["key"]: int(item["size"]) for item in self._client("list", endpoint, bucket, prefix)}


def local_s3(group: Fleet) -> LocalS3:
    for service in group.services:
        if isinstance(service, LocalS3):
            return service
    raise LookupError(f"{group.name}: no local S3 on this fleet")
