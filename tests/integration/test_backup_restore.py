"""platform-backup against the servers of each stack's backup node, started from the rendered files.

The script (components/operations/backup_scripts/platform_backup.py) runs with the environment
file the program renders for the backup node (components/operations/schedules.py), the stack's
own MariaDB jobs (`backup_jobs`: a full backup, an incremental where the stack schedules one, the
binary-log shipment, the verification) on the node that takes the backups (`backup_node_index`:
staging's read-only replica, prod's Galera node 1) while the application writes through node 0.
The runbook's point-in-time restore (docs/RUNBOOK.md steps 2-6) starts the prepared copy with the
rendered configuration and replays the shipped binary logs. The Redis snapshot reads how to reach
Redis from the rendered redis.conf; the RabbitMQ export goes through rabbitmqctl with the rendered
rabbitmq-env.conf. Then the script's own failure reporting: a corrupt or missing piece, no backup.

LOOPBACK: Object Storage is a local S3 endpoint (moto); the script's state, scratch and metrics
directories live in pytest's directory; the server-specific adaptations are named in rendered.py.
Times of each step are reported as measurements (printed with -s).
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pika
import pytest

from components.data.mariadb.config import MYSQLD_EXPORTER_GRANTS, MariaDbTopology
from components.operations.schedules import SCRIPT_SOURCE, BackupTarget, backup_jobs, environment_file
from tests.helpers import settings_of
from tests.integration.conftest import report_measurement, wait_until
from tests.integration.rendered import MariaDbStack, RabbitStack, RedisStack, backup_stacks, rabbitmq_loopback_stacks

pytestmark = pytest.mark.integration

BUCKET = "platform-backups-test"
BACKUP_STACKS = backup_stacks()
RABBITMQ_STACKS = [s for s in BACKUP_STACKS if s in rabbitmq_loopback_stacks()]
# The failure tests need a chain with more than one piece where a stack schedules incrementals.
FAILURE_STACK = next(
    (s for s in BACKUP_STACKS if settings_of(s).operations.backups.incremental_schedule), BACKUP_STACKS[0]
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _s3(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def backup_env(endpoint: str, stack: str, role: str, root: Path, **extra: str) -> dict[str, str]:
    """The environment file the program renders for the role's backup node, read as systemd does."""
    target = BackupTarget(
        endpoint=endpoint, bucket=BUCKET, access_key="test", secret_key="test", prefix=f"{stack}/{role}"
    )
    values: dict[str, str] = {}
    for line in environment_file(target).splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = shlex.split(value)[0]
    # LOOPBACK: the script's state, scratch and metrics directories inside pytest's directory
    # (the VM's are /var/lib/platform-backup, /var/tmp/platform-backup, node_exporter's textfile dir).
    values["PLATFORM_BACKUP_STATE_DIR"] = str(root / "state")
    values["PLATFORM_BACKUP_WORK_DIR"] = str(root / "work")
    values["PLATFORM_BACKUP_TEXTFILE_DIR"] = str(root / "textfile")
    return {**os.environ, **values, **extra}


def run_backup(env: dict[str, str], *args: str, report: str | None = None) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPT_SOURCE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if report and done.returncode == 0:
        report_measurement(report, round(time.monotonic() - started, 2))
    return done


def metrics(env: dict[str, str], kind: str) -> dict[str, float]:
    text = (Path(env["PLATFORM_BACKUP_TEXTFILE_DIR"]) / f"platform_backup_{kind}.prom").read_text()
    return {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#")
    }


def _download(endpoint: str, key: str, path: Path) -> bytes:
    path.write_bytes(_s3(endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return subprocess.run(["zstd", "-d", "-c", str(path)], capture_output=True, timeout=30, check=True).stdout


# --- MariaDB: the stack's jobs on its backup node ----------------------------------------------------


@dataclass
class BackedUp:
    group: MariaDbStack
    env: dict[str, str]
    jobs: list[str]  # the stack's MariaDB backup jobs (backup_jobs), in the order they ran
    in_chain: list[str]  # marker rows written before the chain's last piece
    markers: list[str]  # every marker row, in the order the application wrote them

    @property
    def prefix(self) -> str:
        return self.env["PLATFORM_BACKUP_PREFIX"]


def _app_write(group: MariaDbStack, *statements: str) -> None:
    """The application writes through node 0 (TLS, its own login); the backup node applies it."""
    with group.connect(group.nodes[0]) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    group.wait_replicated()


def _back_up(group: MariaDbStack, endpoint: str, root: Path) -> BackedUp:
    jobs = [job.name for job in backup_jobs("mariadb", group.settings.operations.backups)]
    assert {"mariadb-full", "binlog-ship", "verify"} <= set(jobs), jobs
    # LOOPBACK: the VM's root reads the rendered option files from /etc/mysql and /root/.my.cnf;
    # here the backup node's rendered files are the one --defaults-file (rendered.py).
    env = backup_env(
        endpoint, group.stack, "mariadb", root, PLATFORM_BACKUP_MYSQL_DEFAULTS_FILE=str(group.backup_node.defaults_file)
    )
    _app_write(
        group,
        "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40), qty INT) ENGINE=InnoDB",
        "INSERT INTO orders (item, qty) SELECT CONCAT('item-', seq), seq FROM seq_1_to_5000",
    )
    ran: list[str] = []
    in_chain: list[str] = []
    markers: list[str] = []
    for job in ("mariadb-full", "mariadb-incremental"):
        if job not in jobs:
            continue
        done = run_backup(env, job, report=f"backup_{group.stack}_{job}_seconds")
        assert done.returncode == 0, done.stderr
        ran.append(job)
        in_chain = list(markers)
        marker = f"after-{job}"
        _app_write(group, f"INSERT INTO orders (item, qty) VALUES ('{marker}', 1)")
        markers.append(marker)
    shipped = run_backup(env, "binlog-ship", report=f"backup_{group.stack}_binlog-ship_seconds")
    assert shipped.returncode == 0, shipped.stderr
    return BackedUp(group, env, [*ran, "binlog-ship"], in_chain, markers)


@pytest.fixture(scope="module")
def chains(
    s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[MariaDbStack], BackedUp]:
    """One backup history per stack for the module, made on first use."""
    made: dict[str, BackedUp] = {}

    def chain(group: MariaDbStack) -> BackedUp:
        if group.stack not in made:
            made[group.stack] = _back_up(group, s3_endpoint, tmp_path_factory.mktemp(f"backup-{group.stack}"))
        return made[group.stack]

    return chain


@pytest.fixture(params=BACKUP_STACKS)
def backed_up(
    request: pytest.FixtureRequest,
    mariadb_stacks: Callable[[str], MariaDbStack],
    chains: Callable[[MariaDbStack], BackedUp],
) -> BackedUp:
    return chains(mariadb_stacks(request.param))


def _manifest(endpoint: str, prefix: str) -> Any:
    client = _s3(endpoint)
    chain = client.get_object(Bucket=BUCKET, Key=f"{prefix}/mariadb/latest")["Body"].read().decode()
    return json.loads(client.get_object(Bucket=BUCKET, Key=f"{prefix}/mariadb/{chain}/manifest.json")["Body"].read())


def test_the_stacks_backups_are_uploaded_with_a_manifest(backed_up: BackedUp, s3_endpoint: str) -> None:
    manifest = _manifest(s3_endpoint, backed_up.prefix)
    expected = ["full"] + (["incremental"] if "mariadb-incremental" in backed_up.jobs else [])
    assert [piece["type"] for piece in manifest["pieces"]] == expected
    client = _s3(s3_endpoint)
    for piece in manifest["pieces"]:
        assert client.head_object(Bucket=BUCKET, Key=piece["key"])["ContentLength"] == piece["size"] > 0
    if len(manifest["pieces"]) > 1:  # an incremental holds only changed pages: far smaller than the full
        assert manifest["pieces"][1]["size"] < manifest["pieces"][0]["size"]
    for kind in expected:
        assert metrics(backed_up.env, kind)["platform_backup_last_run_success"] == 1
        assert metrics(backed_up.env, kind)["platform_backup_last_success_timestamp_seconds"] > 0


def test_closed_binary_logs_of_the_rendered_configuration_are_shipped(backed_up: BackedUp, s3_endpoint: str) -> None:
    """The backup node's rendered configuration writes the binary log docs/RUNBOOK.md replays."""
    listing = _s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{backed_up.prefix}/binlog/")
    names = [item["Key"].rsplit("/", 1)[1] for item in listing.get("Contents", [])]
    assert names and all(name.startswith("mariadb-bin.") and name.endswith(".zst") for name in names)
    assert metrics(backed_up.env, "binlog")["platform_backup_last_run_success"] == 1


def test_verification_restores_starts_a_server_and_passes_check_table(backed_up: BackedUp) -> None:
    done = run_backup(backed_up.env, "verify", report=f"backup_{backed_up.group.stack}_verify_seconds")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["pieces"] == len(backed_up.jobs) - 1  # every backup job but the binlog shipment
    assert result["tables_ok"] >= 2  # app.orders plus the system tables
    verified = metrics(backed_up.env, "verify")
    assert verified["platform_backup_last_run_success"] == 1
    assert time.time() - verified["platform_backup_last_success_timestamp_seconds"] < 300


def test_point_in_time_restore_as_the_runbook_does_it(backed_up: BackedUp, tmp_path: Path) -> None:
    """docs/RUNBOOK.md steps 2-6: restore the chain, start it with the rendered configuration,
    replay the shipped binary logs from the backup's position, check every table."""
    group, env = backed_up.group, backed_up.env
    target = tmp_path / "data"
    restored = run_backup(env, "restore", "--target-dir", str(target), report=f"backup_{group.stack}_restore_seconds")
    assert restored.returncode == 0, restored.stderr
    # The host's MariaDB 10.11 (Debian 12) writes xtrabackup_binlog_info; the VMs' 11.8
    # (Debian 13) mariadb_backup_binlog_info, which the system layer's restore reads.
    binlog_file, position = (target / "xtrabackup_binlog_info").read_text().split()[:2]
    logs = tmp_path / "binlogs"
    fetched = run_backup(env, "binlogs", "--target-dir", str(logs))
    assert fetched.returncode == 0, fetched.stderr
    replay = sorted(str(p) for p in logs.iterdir() if p.name >= binlog_file)
    assert replay and Path(replay[0]).name == binlog_file

    server = group.restored_server(target, tmp_path / "server")
    count = "SELECT COUNT(*), " + ", ".join(f"SUM(item='{m}')" for m in backed_up.markers)
    count += f" FROM `{group.database}`.orders"
    # The chain holds the rows written before its last piece (the incremental was applied) ...
    before = ["1" if m in backed_up.in_chain else "0" for m in backed_up.markers]
    assert server.sql(count).split("\t") == [str(5000 + len(backed_up.in_chain)), *before]
    # ... and the shipped binary logs of the backup node hold the writes made through node 0 since.
    events = subprocess.run(
        ["mariadb-binlog", f"--start-position={position}", *replay], capture_output=True, timeout=120, check=True
    ).stdout
    server.sql(events.decode(), stdin=True)
    assert server.sql(count).split("\t") == [str(5000 + len(backed_up.markers)), *["1"] * len(backed_up.markers)]
    check = subprocess.run(
        ["mariadb-check", f"--defaults-file={server.defaults_file}", "--all-databases"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert check.returncode == 0 and "error" not in check.stdout.lower(), check.stdout + check.stderr
    if group.topology is MariaDbTopology.GALERA:  # bootstrapped as `galera_new_cluster` does
        assert server.status("wsrep_cluster_status") == "Primary"
    assert server.process is not None
    server.process.stop()


@pytest.mark.parametrize("stack", BACKUP_STACKS)
def test_mysqld_exporter_grants_apply_on_every_node(stack: str, mariadb_stacks: Callable[[str], MariaDbStack]) -> None:
    """cloud-init runs the exporter's grant on every node at each boot (as root, over the socket):
    it works on the rendered configurations (a read-only replica, Galera) and reruns safely."""
    group = mariadb_stacks(stack)
    for node in group.nodes:
        node.sql(MYSQLD_EXPORTER_GRANTS)
        node.sql(MYSQLD_EXPORTER_GRANTS)  # cloud-init may run it again
    for node in group.nodes:
        # MariaDB 10.11 spells REPLICATION CLIENT as BINLOG MONITOR
        assert node.sql("SHOW GRANTS FOR 'prometheus'@'localhost'") == (
            "GRANT SELECT, PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `prometheus`@`localhost` "
            "IDENTIFIED VIA unix_socket WITH MAX_USER_CONNECTIONS 3"
        )


# --- the script's own failure reporting --------------------------------------------------------------


def _clone(endpoint: str, source: str, target: str) -> None:
    """Copy a prefix and rewrite its manifests so the copy is a self-contained backup."""
    client = _s3(endpoint)
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix=f"{source}/")["Contents"]:
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        if item["Key"].endswith("manifest.json"):
            body = body.replace(f'"{source}/'.encode(), f'"{target}/'.encode())
        client.put_object(Bucket=BUCKET, Key=target + item["Key"][len(source) :], Body=body)


@pytest.fixture
def failure_chain(
    mariadb_stacks: Callable[[str], MariaDbStack], chains: Callable[[MariaDbStack], BackedUp]
) -> BackedUp:
    return chains(mariadb_stacks(FAILURE_STACK))


def _verify_in(chain: BackedUp, prefix: str, root: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    env = {
        **chain.env,
        "PLATFORM_BACKUP_PREFIX": prefix,
        "PLATFORM_BACKUP_TEXTFILE_DIR": str(root / "textfile"),
        "PLATFORM_BACKUP_WORK_DIR": str(root / "work"),
    }
    return run_backup(env, "verify"), env


def test_corrupted_backup_piece_is_reported_failed(
    failure_chain: BackedUp, s3_endpoint: str, tmp_path: Path
) -> None:
    _clone(s3_endpoint, failure_chain.prefix, "corrupt")
    piece = _manifest(s3_endpoint, "corrupt")["pieces"][0]["key"]
    client = _s3(s3_endpoint)
    body = bytearray(client.get_object(Bucket=BUCKET, Key=piece)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte in the middle of the full backup
    client.put_object(Bucket=BUCKET, Key=piece, Body=bytes(body))
    done, env = _verify_in(failure_chain, "corrupt", tmp_path)
    assert done.returncode == 1
    assert "is corrupt" in done.stderr
    assert metrics(env, "verify")["platform_backup_last_run_success"] == 0


def test_missing_piece_is_reported_failed(failure_chain: BackedUp, s3_endpoint: str, tmp_path: Path) -> None:
    _clone(s3_endpoint, failure_chain.prefix, "missing")
    piece = _manifest(s3_endpoint, "missing")["pieces"][-1]["key"]  # the incremental where there is one
    _s3(s3_endpoint).delete_object(Bucket=BUCKET, Key=piece)
    done, env = _verify_in(failure_chain, "missing", tmp_path)
    assert done.returncode == 1
    assert "is missing" in done.stderr
    assert metrics(env, "verify")["platform_backup_last_run_success"] == 0


def test_no_backup_at_all_is_reported_failed(s3_endpoint: str, tmp_path: Path) -> None:
    env = backup_env(s3_endpoint, "never-backed-up", "mariadb", tmp_path)
    done = run_backup(env, "verify")
    assert done.returncode == 1
    assert "no MariaDB backup found" in done.stderr
    verified = metrics(env, "verify")
    assert verified["platform_backup_last_run_success"] == 0
    assert "platform_backup_last_success_timestamp_seconds" not in verified


def test_failed_run_keeps_the_last_success_time_for_the_staleness_alert(s3_endpoint: str, tmp_path: Path) -> None:
    env = backup_env(s3_endpoint, "never-backed-up", "mariadb", tmp_path)
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    (textfile / "platform_backup_verify.prom").write_text(
        'platform_backup_last_success_timestamp_seconds{kind="verify"} 1700000000\n'
    )
    done = run_backup(env, "verify")
    assert done.returncode == 1
    assert metrics(env, "verify")["platform_backup_last_success_timestamp_seconds"] == 1700000000


# --- Redis and RabbitMQ --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", BACKUP_STACKS)
def test_redis_snapshot_reaches_redis_the_way_the_rendered_redis_conf_listens(
    stack: str, redis_stacks: Callable[[str], RedisStack], s3_endpoint: str, tmp_path: Path
) -> None:
    """redis-snapshot on the backup node takes address, TLS and password from redis.conf alone."""
    group = redis_stacks(stack)
    group.nodes[0].client().set("session:42", "alive")
    wait_until("the key on the backup node", lambda: group.backup_node.client().get("session:42") == b"alive", 30)
    # LOOPBACK: the rendered redis.conf by path (the VM's is /etc/redis/redis.conf, the default).
    env = backup_env(s3_endpoint, stack, "redis", tmp_path, PLATFORM_BACKUP_REDIS_CONF=str(group.backup_node.conf))
    done = run_backup(env, "redis-snapshot", report=f"backup_{stack}_redis-snapshot_seconds")
    assert done.returncode == 0, done.stderr
    [item] = _s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{stack}/redis/redis/")["Contents"]
    rdb = _download(s3_endpoint, item["Key"], tmp_path / "snapshot.rdb.zst")
    assert rdb.startswith(b"REDIS") and b"session:42" in rdb
    assert metrics(env, "redis")["platform_backup_last_run_success"] == 1


@pytest.mark.parametrize("stack", RABBITMQ_STACKS)
def test_rabbitmq_definitions_export_holds_what_restores_the_broker(
    stack: str, rabbitmq_stacks: Callable[[str], RabbitStack], s3_endpoint: str, tmp_path: Path
) -> None:
    """rabbitmq-definitions on the backup node: rabbitmqctl reaches the node the way the rendered
    rabbitmq-env.conf says (its name, TLS distribution) and the export holds the rendered logins,
    the quorum default of the application vhost and the queues the application declared."""
    group = rabbitmq_stacks(stack)
    node = group.backup_node
    tls = node.args.tls
    params = pika.ConnectionParameters(
        host=group.nodes[0].args.address,
        port=group.nodes[0].args.port,
        virtual_host=group.vhost,
        credentials=pika.PlainCredentials(group.app_user, group.credentials.app_password),
        connection_attempts=1,
        socket_timeout=5,
        ssl_options=(
            pika.SSLOptions(ssl.create_default_context(cafile=tls.ca_file), group.nodes[0].args.address)
            if tls
            else None
        ),
    )
    with pika.BlockingConnection(params) as connection:
        connection.channel().queue_declare("orders", durable=True)
    # LOOPBACK: rabbitmqctl from the node's environment (rendered.py: the rendered env file by path,
    # the cookie in $HOME, the private epmd port).
    env = backup_env(s3_endpoint, stack, "rabbitmq", tmp_path, **node.env)
    done = run_backup(env, "rabbitmq-definitions", report=f"backup_{stack}_rabbitmq-definitions_seconds")
    assert done.returncode == 0, done.stderr
    [item] = _s3(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{stack}/rabbitmq/rabbitmq/")["Contents"]
    exported = json.loads(_download(s3_endpoint, item["Key"], tmp_path / "definitions.json.zst"))
    rendered = json.loads(group.definitions)
    hashes = {user["name"]: user["password_hash"] for user in exported["users"]}
    assert hashes == {user["name"]: user["password_hash"] for user in rendered["users"]}  # no guest either
    [vhost] = [v for v in exported["vhosts"] if v["name"] == group.vhost]
    assert vhost["metadata"]["default_queue_type"] == "quorum"
    [queue] = [q for q in exported["queues"] if q["name"] == "orders"]
    assert queue["vhost"] == group.vhost and queue["arguments"]["x-queue-type"] == "quorum"
    assert metrics(env, "rabbitmq")["platform_backup_last_run_success"] == 1
