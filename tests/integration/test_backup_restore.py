"""The real backup scripts against a local mariadbd (loopback) and a local S3 endpoint (moto).

Proves: full + incremental backups land in the bucket with a manifest, verification restores
them into a scratch directory, starts a throwaway mariadbd and passes CHECK TABLE; the restored
data holds rows written after the full backup (the incremental was applied); binary logs are
shipped; a corrupted or missing piece, or no backup at all, is reported as failed (exit code
and metric). Times of backup, restore and verification are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "components" / "operations" / "backup_scripts" / "platform_backup.py"
BUCKET = "platform-backups-test"
TIMINGS: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready within {timeout}s")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@dataclass
class MariaDb:
    datadir: Path
    socket: Path
    port: int
    defaults_file: Path

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            [
                "mariadb",
                f"--defaults-file={self.defaults_file}",
                "--batch",
                "--skip-column-names",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{statement[:80]}: {done.stderr}"
        return done.stdout


def _user_args() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _start_mariadbd(datadir: Path, sock: Path, port: int, log_bin: bool) -> subprocess.Popen[bytes]:
    argv = [
        "mariadbd",
        "--no-defaults",
        f"--datadir={datadir}",
        f"--socket={sock}",
        f"--pid-file={datadir}.pid",
        f"--log-error={datadir}.err",
        "--bind-address=127.0.0.1",
        f"--port={port}",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=16M",
        *_user_args(),
    ]
    if log_bin:
        argv += [f"--log-bin={datadir}/mariadb-bin", "--server-id=11", "--binlog-format=ROW"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(
        lambda: (
            server.poll() is None
            and subprocess.run(
                ["mariadb-admin", "--no-defaults", f"--socket={sock}", "--user=root", "ping"],
                capture_output=True,
            ).returncode
            == 0
        ),
        "mariadbd",
    )
    return server


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDb]:
    base = tmp_path_factory.mktemp("mariadb")
    datadir, sock, port = base / "data", base / "mysqld.sock", _free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *_user_args(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    defaults = base / "my.cnf"
    defaults.write_text(
        f"[client]\nsocket={sock}\nuser=root\n"
        f"[mysqld]\ndatadir={datadir}\nsocket={sock}\n"
        f"[mariadb-backup]\nsocket={sock}\nuser=root\n"
    )
    server = _start_mariadbd(datadir, sock, port, log_bin=True)
    try:
        yield MariaDb(datadir, sock, port, defaults)
    finally:
        _stop(server)


def _env(mariadb: MariaDb, endpoint: str, root: Path, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "PLATFORM_BACKUP_S3_ENDPOINT": endpoint,
        "PLATFORM_BACKUP_BUCKET": BUCKET,
        "PLATFORM_BACKUP_PREFIX": prefix,
        "PLATFORM_BACKUP_ACCESS_KEY": "test",
        "PLATFORM_BACKUP_SECRET_KEY": "test",
        "PLATFORM_BACKUP_STATE_DIR": str(root / "state"),
        "PLATFORM_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
        "PLATFORM_BACKUP_WORK_DIR": str(root / "work"),
        "PLATFORM_BACKUP_MYSQL_DEFAULTS_FILE": str(mariadb.defaults_file),
        "PLATFORM_BACKUP_VERIFY_TIMEOUT": "120",
    }


def _backup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    step = args[0] if done.returncode == 0 else f"{args[0]} (detecting a failure)"
    TIMINGS.setdefault(step, time.monotonic() - started)
    return done


def _metrics(env: dict[str, str], kind: str) -> dict[str, float]:
    text = (Path(env["PLATFORM_BACKUP_TEXTFILE_DIR"]) / f"platform_backup_{kind}.prom").read_text()
    return {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@dataclass
class BackedUp:
    env: dict[str, str]
    root: Path
    prefix: str


@pytest.fixture(scope="module")
def backed_up(mariadb: MariaDb, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> BackedUp:
    """A full backup, more writes, an incremental backup and a binlog shipment of a small shop DB."""
    mariadb.sql(
        "CREATE DATABASE shop; "
        "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40), qty INT) ENGINE=InnoDB; "
        "CREATE TABLE shop.audit (id INT PRIMARY KEY, note TEXT) ENGINE=Aria; "
        "INSERT INTO shop.orders (item, qty) SELECT CONCAT('item-', seq), seq FROM shop.seq_1_to_5000; "
        "INSERT INTO shop.audit VALUES (1, 'before full');"
    )
    root = tmp_path_factory.mktemp("backup-run")
    env = _env(mariadb, s3_endpoint, root, "staging/mariadb-1")
    full = _backup(env, "mariadb-full")
    assert full.returncode == 0, full.stderr
    mariadb.sql(
        "INSERT INTO shop.orders (item, qty) VALUES ('after-full', 42); "
        "INSERT INTO shop.audit VALUES (2, 'after full');"
    )
    incremental = _backup(env, "mariadb-incremental")
    assert incremental.returncode == 0, incremental.stderr
    mariadb.sql("INSERT INTO shop.orders (item, qty) VALUES ('after-incremental', 7);")
    shipped = _backup(env, "binlog-ship")
    assert shipped.returncode == 0, shipped.stderr
    return BackedUp(env, root, "staging/mariadb-1")


def test_full_and_incremental_backups_are_uploaded_with_a_manifest(
    backed_up: BackedUp, s3_endpoint: str
) -> None:
    client = _s3(s3_endpoint)
    chain = client.get_object(Bucket=BUCKET, Key=f"{backed_up.prefix}/mariadb/latest")["Body"].read().decode()
    manifest = json.loads(
        client.get_object(Bucket=BUCKET, Key=f"{backed_up.prefix}/mariadb/{chain}/manifest.json")[
            "Body"
        ].read()
    )
    assert [piece["type"] for piece in manifest["pieces"]] == ["full", "incremental"]
    for piece in manifest["pieces"]:
        head = client.head_object(Bucket=BUCKET, Key=piece["key"])
        assert head["ContentLength"] == piece["size"] > 0
    # the incremental holds only changed pages: far smaller than the full backup
    assert manifest["pieces"][1]["size"] < manifest["pieces"][0]["size"]
    assert _metrics(backed_up.env, "full")["platform_backup_last_run_success"] == 1
    assert _metrics(backed_up.env, "incremental")["platform_backup_last_success_timestamp_seconds"] > 0


def test_closed_binary_logs_are_shipped(backed_up: BackedUp, s3_endpoint: str) -> None:
    listing = _s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{backed_up.prefix}/binlog/")
    names = [item["Key"].rsplit("/", 1)[1] for item in listing.get("Contents", [])]
    assert names and all(name.startswith("mariadb-bin.") and name.endswith(".zst") for name in names)
    assert _metrics(backed_up.env, "binlog")["platform_backup_last_run_success"] == 1


def test_verification_restores_starts_a_server_and_passes_check_table(backed_up: BackedUp) -> None:
    done = _backup(backed_up.env, "verify")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["pieces"] == 2
    assert result["tables_ok"] >= 2  # shop.orders, shop.audit, plus the system tables
    metrics = _metrics(backed_up.env, "verify")
    assert metrics["platform_backup_last_run_success"] == 1
    assert time.time() - metrics["platform_backup_last_success_timestamp_seconds"] < 300


def test_restore_holds_rows_written_between_full_and_incremental(backed_up: BackedUp, tmp_path: Path) -> None:
    target = tmp_path / "restored"
    done = _backup(backed_up.env, "restore", "--target-dir", str(target))
    assert done.returncode == 0, done.stderr
    sock = tmp_path / "restored.sock"
    server = _start_mariadbd(target, sock, _free_port(), log_bin=False)
    try:
        rows = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={sock}",
                "--user=root",
                "--batch",
                "--skip-column-names",
                "-e",
                "SELECT COUNT(*), SUM(item='after-full'), SUM(item='after-incremental') FROM shop.orders; "
                "SELECT note FROM shop.audit ORDER BY id;",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split("\n")
    finally:
        _stop(server)
    # 5000 + the row written before the incremental; the later row lives only in the binlog
    assert rows[0].split("\t") == ["5001", "1", "0"]
    assert rows[1:3] == ["before full", "after full"]


def test_point_in_time_restore_replays_the_shipped_binary_logs(backed_up: BackedUp, tmp_path: Path) -> None:
    """The runbook's PITR: restore the chain, then replay binlogs from the backup's position."""
    target = tmp_path / "pitr"
    restored = _backup(backed_up.env, "restore", "--target-dir", str(target))
    assert restored.returncode == 0, restored.stderr
    binlog_file, position = (target / "xtrabackup_binlog_info").read_text().split()[:2]
    logs = tmp_path / "binlogs"
    fetched = _backup(backed_up.env, "binlogs", "--target-dir", str(logs))
    assert fetched.returncode == 0, fetched.stderr
    replay = sorted(str(p) for p in logs.iterdir() if p.name >= binlog_file)
    assert replay and Path(replay[0]).name == binlog_file
    sock = tmp_path / "pitr.sock"
    server = _start_mariadbd(target, sock, _free_port(), log_bin=False)
    client = ["mariadb", "--no-defaults", f"--socket={sock}", "--user=root", "--batch", "--skip-column-names"]
    try:
        events = subprocess.run(
            ["mariadb-binlog", f"--start-position={position}", *replay],
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout
        subprocess.run([*client], input=events, capture_output=True, timeout=120, check=True)
        rows = subprocess.run(
            [*client, "-e", "SELECT COUNT(*), SUM(item='after-incremental') FROM shop.orders"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
    finally:
        _stop(server)
    # the row written after the last incremental comes back from the binary log
    assert rows == ["5002", "1"]


def _clone(s3_endpoint: str, source: str, target: str) -> None:
    """Copy a prefix and rewrite its manifests/latest so the copy is a self-contained backup."""
    client = _s3(s3_endpoint)
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{source}/")["Contents"]:
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        if item["Key"].endswith("manifest.json"):
            body = body.replace(f'"{source}/'.encode(), f'"{target}/'.encode())
        client.put_object(Bucket=BUCKET, Key=target + item["Key"][len(source) :], Body=body)


def _manifest(s3_endpoint: str, prefix: str) -> Any:
    client = _s3(s3_endpoint)
    chain = client.get_object(Bucket=BUCKET, Key=f"{prefix}/mariadb/latest")["Body"].read().decode()
    return json.loads(
        client.get_object(Bucket=BUCKET, Key=f"{prefix}/mariadb/{chain}/manifest.json")["Body"].read()
    )


def _verify_in(
    backed_up: BackedUp, prefix: str, root: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    env = {
        **backed_up.env,
        "PLATFORM_BACKUP_PREFIX": prefix,
        "PLATFORM_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
    }
    env["PLATFORM_BACKUP_WORK_DIR"] = str(root / "work")
    return _backup(env, "verify"), env


def test_corrupted_backup_piece_is_reported_failed(
    backed_up: BackedUp, s3_endpoint: str, tmp_path: Path
) -> None:
    _clone(s3_endpoint, backed_up.prefix, "corrupt")
    piece = _manifest(s3_endpoint, "corrupt")["pieces"][0]["key"]
    client = _s3(s3_endpoint)
    body = bytearray(client.get_object(Bucket=BUCKET, Key=piece)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte in the middle of the full backup
    client.put_object(Bucket=BUCKET, Key=piece, Body=bytes(body))
    done, env = _verify_in(backed_up, "corrupt", tmp_path)
    assert done.returncode == 1
    assert "is corrupt" in done.stderr
    assert _metrics(env, "verify")["platform_backup_last_run_success"] == 0


def test_missing_incremental_is_reported_failed(
    backed_up: BackedUp, s3_endpoint: str, tmp_path: Path
) -> None:
    _clone(s3_endpoint, backed_up.prefix, "missing")
    piece = _manifest(s3_endpoint, "missing")["pieces"][1]["key"]
    _s3(s3_endpoint).delete_object(Bucket=BUCKET, Key=piece)
    done, env = _verify_in(backed_up, "missing", tmp_path)
    assert done.returncode == 1
    assert "is missing" in done.stderr
    assert _metrics(env, "verify")["platform_backup_last_run_success"] == 0


def test_no_backup_at_all_is_reported_failed(backed_up: BackedUp, tmp_path: Path) -> None:
    done, env = _verify_in(backed_up, "never-backed-up", tmp_path)
    assert done.returncode == 1
    assert "no MariaDB backup found" in done.stderr
    metrics = _metrics(env, "verify")
    assert metrics["platform_backup_last_run_success"] == 0
    assert "platform_backup_last_success_timestamp_seconds" not in metrics


def test_failed_run_keeps_the_last_success_time_for_the_staleness_alert(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    (textfile / "platform_backup_verify.prom").write_text(
        'platform_backup_last_success_timestamp_seconds{kind="verify"} 1700000000\n'
    )
    done, env = _verify_in(backed_up, "never-backed-up", tmp_path)
    assert done.returncode == 1
    assert _metrics(env, "verify")["platform_backup_last_success_timestamp_seconds"] == 1700000000


def test_report_backup_restore_and_verify_times(backed_up: BackedUp) -> None:
    """Prints the measured times (pytest -s); the figures go into the closing note."""
    assert shutil.which("mariadb-backup")
    for step, seconds in TIMINGS.items():
        print(f"TIMING {step}: {seconds:.2f}s")
    assert TIMINGS["mariadb-full"] > 0


def test_mysqld_exporter_grants_apply_on_mariadb(mariadb: MariaDb) -> None:
    """The exporter's user logs in by unix_socket with read-only monitoring rights; rerunning is safe."""
    from components.data.mariadb.config import MYSQLD_EXPORTER_GRANTS

    mariadb.sql(MYSQLD_EXPORTER_GRANTS)
    mariadb.sql(MYSQLD_EXPORTER_GRANTS)  # cloud-init may run it again
    grants = mariadb.sql("SHOW GRANTS FOR 'prometheus'@'localhost'")
    # MariaDB 10.11 spells REPLICATION CLIENT as BINLOG MONITOR
    assert grants.strip() == (
        "GRANT SELECT, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `prometheus`@`localhost` "
        "IDENTIFIED VIA unix_socket WITH MAX_USER_CONNECTIONS 3"
    )


def test_redis_snapshot_uploads_a_loadable_rdb(s3_endpoint: str, tmp_path: Path) -> None:
    """redis-snapshot authenticates with the password from redis.conf and uploads an RDB."""
    port = _free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(
        f'bind 127.0.0.1\nport {port}\ndir {tmp_path}\nrequirepass "s3cret-pass"\nsave ""\nappendonly no\n'
    )
    server = subprocess.Popen(
        ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning", "-a", "s3cret-pass"]
    try:
        _wait(
            lambda: subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip() == "PONG",
            "redis",
        )
        subprocess.run([*cli, "set", "session:42", "alive"], capture_output=True, timeout=10, check=True)
        env = {
            **os.environ,
            "PLATFORM_BACKUP_S3_ENDPOINT": s3_endpoint,
            "PLATFORM_BACKUP_BUCKET": BUCKET,
            "PLATFORM_BACKUP_PREFIX": "staging/redis",
            "PLATFORM_BACKUP_ACCESS_KEY": "test",
            "PLATFORM_BACKUP_SECRET_KEY": "test",
            "PLATFORM_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "PLATFORM_BACKUP_TEXTFILE_DIR": str(tmp_path / "textfile"),
            "PLATFORM_BACKUP_REDIS_CONF": str(conf),
            "PLATFORM_BACKUP_REDIS_HOST": "127.0.0.1",
            "PLATFORM_BACKUP_REDIS_PORT": str(port),
        }
        done = _backup(env, "redis-snapshot")
        assert done.returncode == 0, done.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    client = _s3(s3_endpoint)
    [item] = client.list_objects_v2(Bucket=BUCKET, Prefix="staging/redis/redis/")["Contents"]
    compressed = tmp_path / "snapshot.rdb.zst"
    compressed.write_bytes(client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
    rdb = subprocess.run(
        ["zstd", "-d", "-c", str(compressed)], capture_output=True, timeout=30, check=True
    ).stdout
    assert rdb.startswith(b"REDIS") and b"session:42" in rdb
    assert _metrics(env, "redis")["platform_backup_last_run_success"] == 1


def test_rabbitmq_definitions_are_exported_and_uploaded(s3_endpoint: str, tmp_path: Path) -> None:
    """rabbitmq-definitions exports users, vhosts and policies from a running node and uploads them."""
    rabbit_bin = "/usr/lib/rabbitmq/bin"
    home = tmp_path / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text("OPSBACKUPTESTCOOKIE")
    cookie.chmod(0o400)
    (tmp_path / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{_free_port()}\n")
    (tmp_path / "enabled_plugins").write_text("[].\n")
    epmd_port = str(_free_port())
    rabbit_env = {
        "PATH": f"{rabbit_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "RABBITMQ_NODENAME": "rabbit-opsbackup@localhost",
        "RABBITMQ_CONFIG_FILE": str(tmp_path / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp_path / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(tmp_path / "mnesia"),
        "RABBITMQ_LOG_BASE": str(tmp_path / "log"),
        "RABBITMQ_PID_FILE": str(tmp_path / "rabbit.pid"),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "ERL_EPMD_PORT": epmd_port,
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1 +A 4",
    }
    env = {**os.environ, **rabbit_env}

    def ctl(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [f"{rabbit_bin}/rabbitmqctl", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    server = subprocess.Popen(
        [f"{rabbit_bin}/rabbitmq-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait(lambda: ctl("-q", "await_startup", "--timeout", "2").returncode == 0, "rabbitmq", timeout=120)
        assert ctl("add_vhost", "orders").returncode == 0
        assert ctl("set_policy", "-p", "orders", "qq", ".*", '{"max-length":1000}').returncode == 0
        backup_env = {
            **env,
            "PLATFORM_BACKUP_S3_ENDPOINT": s3_endpoint,
            "PLATFORM_BACKUP_BUCKET": BUCKET,
            "PLATFORM_BACKUP_PREFIX": "staging/rabbitmq",
            "PLATFORM_BACKUP_ACCESS_KEY": "test",
            "PLATFORM_BACKUP_SECRET_KEY": "test",
            "PLATFORM_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "PLATFORM_BACKUP_TEXTFILE_DIR": str(tmp_path / "textfile"),
        }
        done = _backup(backup_env, "rabbitmq-definitions")
        assert done.returncode == 0, done.stderr
    finally:
        ctl("stop")
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        # We started this epmd on our private port; stop it and only it.
        subprocess.run(["epmd", "-port", epmd_port, "-kill"], capture_output=True, timeout=10, check=False)
    client = _s3(s3_endpoint)
    [item] = client.list_objects_v2(Bucket=BUCKET, Prefix="staging/rabbitmq/rabbitmq/")["Contents"]
    compressed = tmp_path / "definitions.json.zst"
    compressed.write_bytes(client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
    definitions = json.loads(
        subprocess.run(
            ["zstd", "-d", "-c", str(compressed)], capture_output=True, timeout=30, check=True
        ).stdout
    )
    assert {"name": "orders"} in [{"name": v["name"]} for v in definitions["vhosts"]]
    assert [p["name"] for p in definitions["policies"]] == ["qq"]
    assert _metrics(backup_env, "rabbitmq")["platform_backup_last_run_success"] == 1
