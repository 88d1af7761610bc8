"""Shared helpers for the data tier's integration tests: real servers on loopback.

The servers are fed the files the program renders for a stack's VMs (tests/integration/rendered.py
builds them; its LOOPBACK comments name every adaptation to one shared host). Each service uses
its own 127.0.x.0/24 block so parallel test modules (and other engineers' tests) never collide.
A missing server binary skips the test locally but fails it in CI.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.data.connections import TlsFiles

if TYPE_CHECKING:
    from tests.integration.rendered import MariaDbStack, RabbitStack, RedisStack

T = TypeVar("T")


def require_binaries(*names: str) -> dict[str, str]:
    """Absolute paths of the named programs; in CI (CI=true) a missing one is a failure, not a skip."""
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/lib/rabbitmq/bin")
        if path is None:
            message = f"{name} is not installed (the data tier's integration tests need it)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message)
            pytest.skip(message)
        found[name] = path
    return found


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except Exception as error:  # the server is not there yet: keep polling
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    """A server we started; stopped by its own pid (and process group) only."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_process(
    name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> ServerProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    popen = subprocess.Popen(
        argv,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,  # own process group: stop() never touches anything else
    )
    return ServerProcess(name=name, popen=popen, log=log)


@pytest.fixture(scope="module")
def processes() -> Iterator[list[ServerProcess]]:
    """Every server a module starts is registered here and stopped at the end of the module."""
    started: list[ServerProcess] = []
    yield started
    for process in reversed(started):
        process.kill()


@dataclass(frozen=True)
class TestCa:
    __test__ = False  # a helper, not a test class
    ca_pem: bytes
    ca_key: ec.EllipticCurvePrivateKey
    directory: Path

    @property
    def ca_file(self) -> str:
        return str(self.directory / "ca.pem")

    def issue(self, name: str, ip_addresses: list[str], dns_names: tuple[str, ...] = ()) -> TlsFiles:
        """A server certificate with the given IP SANs, as the internal CA issues per node."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = x509.load_pem_x509_certificate(self.ca_pem)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
                    + [x509.DNSName(d) for d in dns_names]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_file = self.directory / f"{name}.crt"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return TlsFiles(ca_file=self.ca_file, cert_file=str(cert_file), key_file=str(key_file))


def make_test_ca(directory: Path) -> TestCa:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "platform-infra test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "ca.pem").write_bytes(pem)
    return TestCa(ca_pem=pem, ca_key=key, directory=directory)


def report_measurement(name: str, value: object) -> None:
    """Record a figure the issue asks for; printed with -s and appended to a JSON-lines file."""
    line = json.dumps({"measurement": name, "value": value})
    print(line)
    with open(os.environ.get("DATA_TIER_MEASUREMENTS", "/tmp/data-tier-measurements.jsonl"), "a") as out:
        out.write(line + "\n")


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def session_processes() -> Iterator[list[ServerProcess]]:
    """Servers several modules share (a stack's nodes), stopped at the end of the session."""
    started: list[ServerProcess] = []
    yield started
    for process in reversed(started):
        process.kill()


@pytest.fixture(scope="session")
def mariadb_stacks(
    tmp_path_factory: pytest.TempPathFactory, session_processes: list[ServerProcess], test_ca: TestCa
) -> Callable[[str], MariaDbStack]:
    """`mariadb_stacks(stack)`: the stack's MariaDB nodes 0 .. backup node, started once per session."""
    from tests.integration.rendered import start_mariadb

    require_binaries("mariadbd", "mariadb-install-db", "mariadb", "mariadb-backup", "socat")
    started: dict[str, MariaDbStack] = {}

    def get(stack: str) -> MariaDbStack:
        if stack not in started:
            begun = time.monotonic()
            base = tmp_path_factory.mktemp(f"mariadb-{stack}")
            started[stack] = start_mariadb(stack, base, test_ca, session_processes)
            report_measurement(f"mariadb_{stack}_start_seconds", round(time.monotonic() - begun, 1))
        return started[stack]

    return get


@pytest.fixture(scope="session")
def redis_stacks(
    tmp_path_factory: pytest.TempPathFactory, session_processes: list[ServerProcess], test_ca: TestCa
) -> Callable[[str], RedisStack]:
    """`redis_stacks(stack)`: every Redis node (and Sentinel) of the stack, started once per session."""
    from tests.integration.rendered import start_redis

    require_binaries("redis-server", "redis-sentinel", "redis-cli")
    started: dict[str, RedisStack] = {}

    def get(stack: str) -> RedisStack:
        if stack not in started:
            started[stack] = start_redis(stack, tmp_path_factory.mktemp(f"redis-{stack}"), test_ca, session_processes)
        return started[stack]

    return get


@pytest.fixture(scope="session")
def epmd(tmp_path_factory: pytest.TempPathFactory, session_processes: list[ServerProcess]) -> None:
    """A private epmd on its own port, started (and so stopped) by us rather than by the first node."""
    from tests.integration.rendered import EPMD_PORT

    require_binaries("erl", "epmd")
    session_processes.append(
        start_process(
            "epmd",
            ["epmd", "-port", EPMD_PORT, "-address", "127.0.0.1"],
            tmp_path_factory.mktemp("epmd") / "epmd.log",
        )
    )
    wait_until("epmd", lambda: port_open("127.0.0.1", int(EPMD_PORT)), 10)


@pytest.fixture(scope="session")
def rabbitmq_stacks(
    epmd: None, tmp_path_factory: pytest.TempPathFactory, session_processes: list[ServerProcess], test_ca: TestCa
) -> Callable[[str], RabbitStack]:
    """`rabbitmq_stacks(stack)`: the stack's RabbitMQ nodes 0 .. backup node, started once per session."""
    from tests.integration.rendered import RABBIT_BIN, start_rabbitmq

    require_binaries(f"{RABBIT_BIN}/rabbitmq-server")
    started: dict[str, RabbitStack] = {}

    def get(stack: str) -> RabbitStack:
        if stack not in started:
            begun = time.monotonic()
            started[stack] = start_rabbitmq(
                stack, tmp_path_factory.mktemp(f"rabbitmq-{stack}"), test_ca, session_processes
            )
            report_measurement(f"rabbitmq_{stack}_start_seconds", round(time.monotonic() - begun, 1))
        return started[stack]

    return get
