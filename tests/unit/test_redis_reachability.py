"""The Redis exporter and `platform-backup redis-snapshot` reach Redis the way redis.conf says it
listens: on the address it binds (never 127.0.0.1), TLS-only with the internal CA where TLS is on,
with its password."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from components.data.connections import TlsFiles
from components.data.redis.config import (
    REDIS_PASSWORD_SCRIPT,
    RedisNodeArgs,
    exporter_cloud_config,
    render_redis_conf,
)

SCRIPT = Path(__file__).resolve().parents[2] / "components" / "operations" / "backup_scripts" / "platform_backup.py"
ADDRESSES = ["10.0.1.20", "10.0.1.21", "10.0.1.22"]


def backup_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("platform_backup_under_test", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def redis_conf(tmp_path: Path, tls: bool, index: int = 1) -> tuple[Path, TlsFiles]:
    files = TlsFiles(str(tmp_path / "ca.pem"), str(tmp_path / "server.crt"), str(tmp_path / "server.key"))
    for name in ("ca.pem", "server.crt", "server.key"):
        (tmp_path / name).write_text(f"{name}\n")
    args = RedisNodeArgs(nodes=3, index=index, addresses=ADDRESSES, password="Zx81-secret", tls=files if tls else None)
    conf = tmp_path / "redis.conf"
    conf.write_text(render_redis_conf(args))
    return conf, files


def exporter_env(tmp_path: Path, conf: Path) -> dict[str, str]:
    script = tmp_path / "helper.sh"
    script.write_text(REDIS_PASSWORD_SCRIPT)
    out = tmp_path / "exporter.env"
    done = subprocess.run(
        ["sh", str(script)],
        env={
            "REDIS_CONF": str(conf),
            "EXPORTER_ENV": str(out),
            "EXPORTER_TLS_DIR": str(tmp_path / "run"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    return dict(line.split("=", 1) for line in out.read_text().replace('"', "").splitlines())


def test_exporter_is_not_told_to_dial_loopback() -> None:
    written = exporter_cloud_config("10.0.1.21")["write_files"]
    defaults = next(f for f in written if f["path"].startswith("/etc/default"))
    assert "127.0.0.1" not in defaults["content"] and "redis.addr" not in defaults["content"]


def test_exporter_dials_the_bound_address_in_plaintext_without_tls(tmp_path: Path) -> None:
    conf, _ = redis_conf(tmp_path, tls=False)
    env = exporter_env(tmp_path, conf)
    assert env == {"REDIS_PASSWORD": "Zx81-secret", "REDIS_ADDR": "redis://10.0.1.21:6379"}


def test_exporter_dials_tls_with_a_copy_of_the_ca_it_can_read(tmp_path: Path) -> None:
    conf, _ = redis_conf(tmp_path, tls=True)
    env = exporter_env(tmp_path, conf)
    assert env["REDIS_ADDR"] == "rediss://10.0.1.21:6379"
    ca = Path(env["REDIS_EXPORTER_TLS_CA_CERT_FILE"])
    assert ca.read_text() == "ca.pem\n" and oct(ca.stat().st_mode & 0o777) == "0o644"
    # render_redis_conf sets tls-auth-clients no: AUTH, no client certificate
    assert "REDIS_EXPORTER_TLS_CLIENT_KEY_FILE" not in env


def test_exporter_presents_a_client_certificate_when_redis_asks_for_one(tmp_path: Path) -> None:
    conf, _ = redis_conf(tmp_path, tls=True)
    conf.write_text(conf.read_text().replace("tls-auth-clients no", "tls-auth-clients yes"))
    env = exporter_env(tmp_path, conf)
    assert Path(env["REDIS_EXPORTER_TLS_CLIENT_CERT_FILE"]).read_text() == "server.crt\n"
    assert Path(env["REDIS_EXPORTER_TLS_CLIENT_KEY_FILE"]).read_text() == "server.key\n"


@pytest.mark.parametrize("tls", [False, True])
def test_backup_snapshot_connects_the_way_redis_listens(tmp_path: Path, tls: bool) -> None:
    module = backup_module()
    conf, files = redis_conf(tmp_path, tls=tls)
    config = module.Config.from_env(
        {
            "PLATFORM_BACKUP_S3_ENDPOINT": "http://s3",
            "PLATFORM_BACKUP_BUCKET": "b",
            "PLATFORM_BACKUP_ACCESS_KEY": "a",
            "PLATFORM_BACKUP_SECRET_KEY": "s",
            "PLATFORM_BACKUP_REDIS_CONF": str(conf),
        }
    )
    argv, password = module.redis_cli_args(config)
    assert password == "Zx81-secret"
    expected = ["redis-cli", "-h", "10.0.1.21", "-p", "6379"]
    if tls:
        expected += ["--tls", "--cacert", files.ca_file]
    assert argv == expected
