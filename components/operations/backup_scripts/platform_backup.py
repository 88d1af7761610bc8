#!/usr/bin/env python3
"""Backups of the data services to S3-compatible Object Storage, and their verification.

Shipped to the data VMs by cloud-init (/usr/local/sbin/platform-backup) and run by systemd
timers. Needs only Debian packages: python3-boto3, mariadb-backup, mariadb-client, zstd.

  platform-backup mariadb-full          full physical backup (mariabackup), starts a new chain
  platform-backup mariadb-incremental   incremental on top of the chain's last backup
  platform-backup binlog-ship           rotate the binary log and upload every closed one
  platform-backup redis-snapshot        RDB snapshot from the local Redis
  platform-backup rabbitmq-definitions  RabbitMQ definitions (users, vhosts, queues, policies)
  platform-backup verify                restore the latest chain to a scratch dir, start a
                                        throwaway mariadbd on it and CHECK every table
  platform-backup restore --target-dir  restore (download + prepare) the latest chain
  platform-backup binlogs --target-dir  download and decompress every shipped binary log

Every run writes its result as Prometheus metrics for node_exporter's textfile collector and
exits non-zero on failure, so both systemd and the alert rules see it.

Object layout under s3://$BUCKET/$PREFIX/:
  mariadb/<chain>/manifest.json       pieces in apply order, each with its sha256 and size
  mariadb/<chain>/00-full.xbstream.zst, 01-inc.xbstream.zst, ...
  mariadb/latest                      name of the newest chain
  binlog/<file>.zst, redis/<ts>.rdb.zst, rabbitmq/<ts>.json.zst

Configuration comes from the environment (systemd EnvironmentFile=/etc/platform-backup/env).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3

METRIC_PREFIX = "platform_backup"
ZSTD = ("zstd", "-q", "-T0", "-3")
UNZSTD = ("zstd", "-q", "-d")


class BackupError(RuntimeError):
    """A backup or verification step failed; the message says which and why."""


@dataclass(frozen=True)
class Config:
    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key: str
    secret_key: str
    state_dir: Path
    textfile_dir: Path
    work_dir: Path
    mysql_defaults_file: str | None
    redis_conf: Path
    redis_host: str | None  # None: the first address redis.conf binds
    redis_port: int | None  # None: redis.conf's tls-port, else its port
    verify_timeout: int

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Config:
        def need(key: str) -> str:
            value = env.get(key)
            if not value:
                raise BackupError(f"environment variable {key} is not set (see /etc/platform-backup/env)")
            return value

        return cls(
            endpoint=need("PLATFORM_BACKUP_S3_ENDPOINT"),
            region=env.get("PLATFORM_BACKUP_S3_REGION", "us-east-1"),
            bucket=need("PLATFORM_BACKUP_BUCKET"),
            prefix=env.get("PLATFORM_BACKUP_PREFIX", socket.gethostname()).strip("/"),
            access_key=need("PLATFORM_BACKUP_ACCESS_KEY"),
            secret_key=need("PLATFORM_BACKUP_SECRET_KEY"),
            state_dir=Path(env.get("PLATFORM_BACKUP_STATE_DIR", "/var/lib/platform-backup")),
            textfile_dir=Path(env.get("PLATFORM_BACKUP_TEXTFILE_DIR", "/var/lib/prometheus/node-exporter")),
            work_dir=Path(env.get("PLATFORM_BACKUP_WORK_DIR", "/var/tmp/platform-backup")),
            mysql_defaults_file=env.get("PLATFORM_BACKUP_MYSQL_DEFAULTS_FILE") or None,
            redis_conf=Path(env.get("PLATFORM_BACKUP_REDIS_CONF", "/etc/redis/redis.conf")),
            redis_host=env.get("PLATFORM_BACKUP_REDIS_HOST") or None,
            redis_port=int(env["PLATFORM_BACKUP_REDIS_PORT"]) if env.get("PLATFORM_BACKUP_REDIS_PORT") else None,
            verify_timeout=int(env.get("PLATFORM_BACKUP_VERIFY_TIMEOUT", "600")),
        )

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)


class Store:
    """The bucket, seen through boto3 (works with Linode Object Storage and any S3 API)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client = boto3.client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
        )

    def upload_stream(self, stream: IO[bytes], key: str) -> tuple[str, int]:
        reader = _HashingReader(stream)
        self.client.upload_fileobj(reader, self.config.bucket, key)
        return reader.sha256.hexdigest(), reader.size

    def put_bytes(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.config.bucket, Key=key, Body=body)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
        except self.client.exceptions.NoSuchKey as error:
            raise BackupError(f"s3://{self.config.bucket}/{key} does not exist") from error
        body: bytes = response["Body"].read()
        return body

    def download(self, key: str, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=key)
        except self.client.exceptions.NoSuchKey as error:
            raise BackupError(f"backup piece s3://{self.config.bucket}/{key} is missing") from error
        with path.open("wb") as out:
            for chunk in response["Body"].iter_chunks(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return digest.hexdigest(), size

    def exists(self, key: str) -> bool:
        listing = self.client.list_objects_v2(Bucket=self.config.bucket, Prefix=key, MaxKeys=1)
        return any(item["Key"] == key for item in listing.get("Contents", []))


class _HashingReader:
    """File-like wrapper that hashes and counts what boto3 reads from a pipe."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return chunk


# --- metrics -----------------------------------------------------------------------------------


def write_metrics(config: Config, kind: str, success: bool, duration: float, size: int = 0) -> None:
    """Atomically replace this kind's .prom file; keep the last success time across failures."""
    config.textfile_dir.mkdir(parents=True, exist_ok=True)
    path = config.textfile_dir / f"{METRIC_PREFIX}_{kind}.prom"
    last_success = _previous_success(path)
    if success:
        last_success = time.time()
    # Every kind writes its own file but the same metric families: node_exporter's textfile
    # collector drops a sample whose HELP differs from the family's first one ("has help ... but
    # should have ..."), so HELP must not name the kind.
    lines = [
        f"# HELP {METRIC_PREFIX}_last_run_success 1 if the last run of this kind of backup succeeded.",
        f"# TYPE {METRIC_PREFIX}_last_run_success gauge",
        f'{METRIC_PREFIX}_last_run_success{{kind="{kind}"}} {1 if success else 0}',
        f"# TYPE {METRIC_PREFIX}_last_run_duration_seconds gauge",
        f'{METRIC_PREFIX}_last_run_duration_seconds{{kind="{kind}"}} {duration:.3f}',
        f"# TYPE {METRIC_PREFIX}_last_run_timestamp_seconds gauge",
        f'{METRIC_PREFIX}_last_run_timestamp_seconds{{kind="{kind}"}} {time.time():.0f}',
    ]
    if last_success is not None:
        lines += [
            f"# TYPE {METRIC_PREFIX}_last_success_timestamp_seconds gauge",
            f'{METRIC_PREFIX}_last_success_timestamp_seconds{{kind="{kind}"}} {last_success:.0f}',
        ]
    if success and size:
        lines += [
            f"# TYPE {METRIC_PREFIX}_last_size_bytes gauge",
            f'{METRIC_PREFIX}_last_size_bytes{{kind="{kind}"}} {size}',
        ]
    tmp = path.with_suffix(".prom.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _previous_success(path: Path) -> float | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(f"{METRIC_PREFIX}_last_success_timestamp_seconds"):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- helpers -----------------------------------------------------------------------------------


def _mysql_args(config: Config, program: str) -> list[str]:
    # --defaults-file must come first for every MariaDB program.
    return [program, f"--defaults-file={config.mysql_defaults_file}"] if config.mysql_defaults_file else [program]


def _run(argv: Sequence[str], timeout: int = 600, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as error:
        raise BackupError(f"{argv[0]} did not finish within {timeout}s") from error
    if done.returncode != 0:
        raise BackupError(f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _sql(config: Config, statement: str) -> str:
    return _run([*_mysql_args(config, "mariadb"), "--batch", "--skip-column-names", "-e", statement], timeout=60)


@contextlib.contextmanager
def _pipeline(producer: Sequence[str], log: Path) -> Iterator[IO[bytes]]:
    """producer | zstd, yielding zstd's stdout; raises if either side fails."""
    with log.open("wb") as errors:
        first = subprocess.Popen(list(producer), stdout=subprocess.PIPE, stderr=errors)
        assert first.stdout is not None
        second = subprocess.Popen(list(ZSTD), stdin=first.stdout, stdout=subprocess.PIPE, stderr=errors)
        first.stdout.close()  # zstd owns the pipe now; the producer sees SIGPIPE if zstd dies
        assert second.stdout is not None
        try:
            yield second.stdout
        finally:
            second.stdout.close()
            codes = (first.wait(timeout=3600), second.wait(timeout=600))
    if codes != (0, 0):
        tail = log.read_text(errors="replace")[-2000:]
        raise BackupError(f"{producer[0]} | zstd exited with {codes}: {tail}")


def _timestamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


# --- MariaDB -----------------------------------------------------------------------------------


def _chain_state(config: Config) -> Path:
    return config.state_dir / "mariadb-chain"


def mariadb_full(config: Config, store: Store) -> int:
    chain = _timestamp()
    state = _chain_state(config)
    staging = config.state_dir / "mariadb-chain.new"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "lsn").mkdir(parents=True)
    key = config.key("mariadb", chain, "00-full.xbstream.zst")
    producer = [
        *_mysql_args(config, "mariadb-backup"),
        "--backup",
        "--stream=xbstream",
        f"--extra-lsndir={staging / 'lsn'}",
        f"--target-dir={staging / 'tmp'}",
    ]
    with _pipeline(producer, staging / "backup.log") as stream:
        sha256, size = store.upload_stream(stream, key)
    manifest = {"chain": chain, "pieces": [{"key": key, "type": "full", "sha256": sha256, "size": size}]}
    store.put_bytes(config.key("mariadb", chain, "manifest.json"), json.dumps(manifest, indent=2).encode())
    store.put_bytes(config.key("mariadb", "latest"), chain.encode())
    (staging / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(state, ignore_errors=True)
    staging.rename(state)
    return size


def mariadb_incremental(config: Config, store: Store) -> int:
    state = _chain_state(config)
    if not (state / "manifest.json").exists():
        raise BackupError("no full backup in this chain yet; run mariadb-full first")
    manifest = json.loads((state / "manifest.json").read_text())
    index = len(manifest["pieces"])
    key = config.key("mariadb", manifest["chain"], f"{index:02d}-inc.xbstream.zst")
    next_lsn = state / "lsn.next"
    shutil.rmtree(next_lsn, ignore_errors=True)
    next_lsn.mkdir()
    producer = [
        *_mysql_args(config, "mariadb-backup"),
        "--backup",
        "--stream=xbstream",
        f"--incremental-basedir={state / 'lsn'}",
        f"--extra-lsndir={next_lsn}",
        f"--target-dir={state / 'tmp'}",
    ]
    with _pipeline(producer, state / "backup.log") as stream:
        sha256, size = store.upload_stream(stream, key)
    manifest["pieces"].append({"key": key, "type": "incremental", "sha256": sha256, "size": size})
    store.put_bytes(config.key("mariadb", manifest["chain"], "manifest.json"), json.dumps(manifest, indent=2).encode())
    (state / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(state / "lsn")
    next_lsn.rename(state / "lsn")
    return size


def _galera_joining(config: Config) -> bool:
    """A Galera node that is still joining (or rejoining after a failed IST) refuses statements
    with "WSREP has not yet prepared node for application use"; it has no new binary log to ship."""
    # SHOW still answers on such a node. wsrep_ready is OFF on any server without Galera too.
    if _sql(config, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'").split()[-1:] != ["ON"]:
        return False
    return _sql(config, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'").split()[-1:] == ["OFF"]


def binlog_ship(config: Config, store: Store) -> int:
    """Close the current binary log and upload every closed one not shipped yet.

    The timer's first run (2 minutes after boot) can meet a Galera node still joining; that round
    ships nothing and the next one catches up (the Galera alerts cover a node that never joins).
    """
    if _galera_joining(config):
        return 0
    basename = _sql(config, "SELECT @@log_bin_basename").strip()
    if not basename or basename == "NULL":
        raise BackupError("binary logging is off (log_bin); point-in-time recovery needs it")
    _sql(config, "FLUSH BINARY LOGS")
    logs = [line.split("\t")[0] for line in _sql(config, "SHOW BINARY LOGS").splitlines() if line]
    shipped_file = config.state_dir / "binlogs-shipped"
    shipped = set(shipped_file.read_text().split()) if shipped_file.exists() else set()
    directory = Path(basename).parent
    total = 0
    for name in logs[:-1]:  # the last one is still being written
        if name in shipped:
            continue
        with _pipeline(["cat", str(directory / name)], config.state_dir / "binlog.log") as stream:
            _, size = store.upload_stream(stream, config.key("binlog", f"{name}.zst"))
        total += size
        shipped.add(name)
        shipped_file.write_text("\n".join(sorted(shipped)) + "\n")
    return total


def _latest_manifest(config: Config, store: Store) -> dict[str, Any]:
    try:
        chain = store.get_bytes(config.key("mariadb", "latest")).decode().strip()
    except BackupError as error:
        raise BackupError(f"no MariaDB backup found under s3://{config.bucket}/{config.prefix}/mariadb") from error
    manifest: dict[str, Any] = json.loads(store.get_bytes(config.key("mariadb", chain, "manifest.json")))
    if not manifest.get("pieces") or manifest["pieces"][0]["type"] != "full":
        raise BackupError(f"chain {chain} has no full backup")
    return manifest


def restore(config: Config, store: Store, target: Path) -> dict[str, Any]:
    """Download the latest chain, check every piece's sha256, extract and prepare it in target."""
    manifest = _latest_manifest(config, store)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"restore target {target} is not empty")
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pieces-", dir=target.parent))
    try:
        for index, piece in enumerate(manifest["pieces"]):
            archive = scratch / f"{index:02d}.xbstream.zst"
            sha256, size = store.download(piece["key"], archive)
            if sha256 != piece["sha256"] or size != piece["size"]:
                raise BackupError(
                    f"{piece['key']} is corrupt: sha256 {sha256} size {size}, "
                    f"manifest says {piece['sha256']} size {piece['size']}"
                )
            into = target if index == 0 else scratch / f"inc-{index:02d}"
            into.mkdir(exist_ok=True)
            with archive.open("rb") as compressed:
                unzstd = subprocess.Popen(list(UNZSTD), stdin=compressed, stdout=subprocess.PIPE)
                extract = subprocess.run(
                    ["mbstream", "-x", "-C", str(into)],
                    stdin=unzstd.stdout,
                    capture_output=True,
                    timeout=3600,
                )
                if unzstd.wait(timeout=60) != 0 or extract.returncode != 0:
                    raise BackupError(f"cannot extract {piece['key']}: {extract.stderr.decode()[-1000:]}")
            archive.unlink()
        _run(["mariadb-backup", "--prepare", f"--target-dir={target}"], timeout=3600)
        for index in range(1, len(manifest["pieces"])):
            _run(
                [
                    "mariadb-backup",
                    "--prepare",
                    f"--target-dir={target}",
                    f"--incremental-dir={scratch / f'inc-{index:02d}'}",
                ],
                timeout=3600,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def fetch_binlogs(config: Config, store: Store, target: Path) -> list[str]:
    """Every shipped binary log, decompressed into target, for point-in-time replay."""
    target.mkdir(parents=True, exist_ok=True)
    prefix = config.key("binlog") + "/"
    names: list[str] = []
    paginator = store.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=config.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :].removesuffix(".zst")
            compressed = target / f"{name}.zst"
            store.download(item["Key"], compressed)
            _run([*UNZSTD, "--rm", "-f", str(compressed), "-o", str(target / name)], timeout=600)
            names.append(name)
    if not names:
        raise BackupError(f"no binary logs under s3://{config.bucket}/{prefix}")
    return sorted(names)


def _start_throwaway_server(datadir: Path, run: Path, timeout: int) -> subprocess.Popen[bytes]:
    sock = run / "verify.sock"
    argv = [
        "mariadbd",
        "--no-defaults",
        f"--datadir={datadir}",
        f"--socket={sock}",
        f"--pid-file={run / 'verify.pid'}",
        f"--log-error={run / 'verify.err'}",
        "--skip-networking",
        "--skip-grant-tables",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--wsrep-on=OFF",
    ]
    if os.geteuid() == 0:
        argv.append("--user=root" if datadir.owner() == "root" else f"--user={datadir.owner()}")
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = (run / "verify.err").read_text(errors="replace")[-2000:]
            raise BackupError(f"the restored data directory does not start mariadbd: {log}")
        ping = subprocess.run(
            ["mariadb-admin", "--no-defaults", f"--socket={sock}", "ping"], capture_output=True, timeout=10
        )
        if ping.returncode == 0:
            return server
        time.sleep(0.5)
    server.kill()
    raise BackupError(f"the throwaway mariadbd did not answer within {timeout}s")


def check_tables(sock: Path) -> int:
    """CHECK TABLE on every table (mariadb-check); returns how many tables are OK."""
    output = _run(
        ["mariadb-check", "--no-defaults", f"--socket={sock}", "--all-databases", "--check", "--extended"],
        timeout=3600,
    )
    ok = 0
    problems = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "." in parts[0] and parts[-1] == "OK":
            ok += 1
        elif line.strip() and not line.startswith(("note", "Note")):
            problems.append(line.strip())
    if problems:
        raise BackupError("CHECK TABLE reported problems: " + "; ".join(problems[:20]))
    if ok == 0:
        raise BackupError("the restored server has no tables to check")
    return ok


def verify(config: Config, store: Store) -> dict[str, Any]:
    config.work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="verify-", dir=config.work_dir))
    try:
        datadir = scratch / "data"
        manifest = restore(config, store, datadir)
        run = scratch / "run"
        run.mkdir()
        server = _start_throwaway_server(datadir, run, timeout=min(config.verify_timeout, 300))
        try:
            tables = check_tables(run / "verify.sock")
        finally:
            server.terminate()
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        return {"chain": manifest["chain"], "pieces": len(manifest["pieces"]), "tables_ok": tables}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- Redis and RabbitMQ --------------------------------------------------------------------------


def _redis_conf_values(path: Path) -> dict[str, str]:
    """First value of each directive in redis.conf (quotes removed)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and not parts[0].startswith("#"):
                values.setdefault(parts[0], parts[1].split()[0].strip('"') if parts[0] != "requirepass" else parts[1])
    return values


def redis_cli_args(config: Config) -> tuple[list[str], str | None]:
    """redis-cli's connection options the way Redis listens (redis.conf: bind, port or TLS-only
    tls-port with the CA, a client certificate when tls-auth-clients asks), and its password.
    PLATFORM_BACKUP_REDIS_HOST/PORT override the address and port."""
    conf = _redis_conf_values(config.redis_conf)
    password = conf["requirepass"].strip().strip('"') if "requirepass" in conf else None
    tls_port = conf.get("tls-port", "0")
    tls = tls_port != "0"
    host = config.redis_host or conf.get("bind", "127.0.0.1")
    port = config.redis_port or int(tls_port if tls else conf.get("port", "6379"))
    argv = ["redis-cli", "-h", host, "-p", str(port)]
    if tls:
        argv += ["--tls", "--cacert", conf["tls-ca-cert-file"]]
        if conf.get("tls-auth-clients", "yes") != "no":  # Redis's default is yes
            argv += ["--cert", conf["tls-cert-file"], "--key", conf["tls-key-file"]]
    return argv, password


def redis_snapshot(config: Config, store: Store) -> int:
    env = dict(os.environ)
    argv, password = redis_cli_args(config)
    if password is not None:
        env["REDISCLI_AUTH"] = password
    config.state_dir.mkdir(parents=True, exist_ok=True)
    dump = config.state_dir / "redis-snapshot.rdb"
    _run([*argv, "--no-auth-warning", "--rdb", str(dump)], timeout=1800, env=env)
    with _pipeline(["cat", str(dump)], config.state_dir / "redis.log") as stream:
        _, size = store.upload_stream(stream, config.key("redis", f"{_timestamp()}.rdb.zst"))
    dump.unlink()
    return size


def rabbitmq_definitions(config: Config, store: Store) -> int:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    export = config.state_dir / "rabbitmq-definitions.json"
    # To stdout ("-"): Debian's rabbitmqctl runs the CLI as the rabbitmq user, which cannot write
    # into the root-only state directory. A truncated or non-JSON export fails here.
    definitions = _run(["rabbitmqctl", "--quiet", "export_definitions", "-"], timeout=300)
    try:
        json.loads(definitions)
    except ValueError as error:
        raise BackupError(f"rabbitmqctl export_definitions printed no JSON: {definitions[:200]!r}") from error
    export.write_text(definitions)
    with _pipeline(["cat", str(export)], config.state_dir / "rabbitmq.log") as stream:
        _, size = store.upload_stream(stream, config.key("rabbitmq", f"{_timestamp()}.json.zst"))
    export.unlink()
    return size


# --- entry point ---------------------------------------------------------------------------------

KINDS = {
    "mariadb-full": "full",
    "mariadb-incremental": "incremental",
    "binlog-ship": "binlog",
    "redis-snapshot": "redis",
    "rabbitmq-definitions": "rabbitmq",
    "verify": "verify",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platform-backup", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=[*KINDS, "restore", "binlogs"])
    parser.add_argument("--target-dir", type=Path, help="restore/binlogs: where the files go")
    args = parser.parse_args(argv)
    try:
        config = Config.from_env()
    except BackupError as error:
        print(f"platform-backup: {error}", file=sys.stderr)
        return 2
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(config)
    if args.command in ("restore", "binlogs"):
        if args.target_dir is None:
            parser.error(f"{args.command} needs --target-dir")
        try:
            if args.command == "restore":
                manifest = restore(config, store, args.target_dir)
                summary: dict[str, Any] = {"chain": manifest["chain"]}
            else:
                summary = {"binlogs": fetch_binlogs(config, store, args.target_dir)}
        except BackupError as error:
            print(f"platform-backup {args.command}: FAILED: {error}", file=sys.stderr)
            return 1
        print(json.dumps({"result": "ok", "target": str(args.target_dir), **summary}))
        return 0
    kind = KINDS[args.command]
    started = time.monotonic()
    try:
        result: Any
        if args.command == "mariadb-full":
            result = {"bytes": mariadb_full(config, store)}
        elif args.command == "mariadb-incremental":
            result = {"bytes": mariadb_incremental(config, store)}
        elif args.command == "binlog-ship":
            result = {"bytes": binlog_ship(config, store)}
        elif args.command == "redis-snapshot":
            result = {"bytes": redis_snapshot(config, store)}
        elif args.command == "rabbitmq-definitions":
            result = {"bytes": rabbitmq_definitions(config, store)}
        else:
            result = verify(config, store)
    except Exception as error:  # any failure must reach the metric and the exit code
        duration = time.monotonic() - started
        write_metrics(config, kind, success=False, duration=duration)
        print(f"platform-backup {args.command}: FAILED after {duration:.1f}s: {error}", file=sys.stderr)
        return 1
    duration = time.monotonic() - started
    write_metrics(config, kind, success=True, duration=duration, size=int(result.get("bytes", 0)))
    print(json.dumps({"result": "ok", "command": args.command, "seconds": round(duration, 3), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
