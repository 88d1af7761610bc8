"""A stack's data VMs as the program renders them, started on loopback.

Each node's arguments are built from the stack file the way components/data/<service>/cluster.py
(`node_document`) builds them for the stack's VMs: node count, topology, TLS, plan-derived sizes,
names, production ports and timings. Only what one shared host forces is changed, each in a
comment that starts with LOOPBACK and says why:

- the VPC addresses become loopback addresses (127.0.3.x MariaDB, 127.0.4.x Redis, 127.0.5.x
  RabbitMQ), and the internal CA is a test CA issuing certificates for those addresses;
- data directories, sockets, pid and log files move into pytest's directory (several servers
  share the host, and a process started by the test has no journald behind it);
- the servers run as root (the tests do; pytest's directories are private to root), not as the
  service user;
- the rendered option files are handed over by path (`--defaults-file`, `RABBITMQ_CONF_ENV_FILE`,
  ...) instead of being found under /etc, which belongs to the host.

Nodes start the way the VMs' setup scripts start them (node 0 first; Galera node 0 bootstraps;
node 0 loads the rendered users SQL; the replica runs the rendered replica SQL). Only the nodes a
test needs are started: node 0 up to the node that takes the backups (`backup_node_index`).
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import pymysql
import redis

from components.data.connections import TlsFiles
from components.data.mariadb.config import (
    SST_PORT,
    MariaDbCredentials,
    MariaDbNodeArgs,
    MariaDbTopology,
    render_client_cnf,
    render_replica_sql,
    render_server_cnf,
    render_users_sql,
)
from components.data.placement import memory_share
from components.data.rabbitmq.config import (
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    render_definitions,
    render_enabled_plugins,
    render_inter_node_tls_config,
    render_rabbitmq_conf,
    render_rabbitmq_env,
)
from components.data.redis.config import RedisNodeArgs, RedisTopology, render_redis_conf, render_sentinel_conf
from components.operations.schedules import backup_node_index
from components.settings import StackSettings
from tests.helpers import STACKS, settings_of
from tests.integration.conftest import ServerProcess, TestCa, port_open, start_process, wait_until

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
# LOOPBACK: every RabbitMQ node of the host registers with one epmd; a private port keeps it apart
# from any epmd of the host (the VMs use 4369, each its own).
EPMD_PORT = "14369"


def password(length: int = 32) -> str:
    """Letters and digits, as the program's pulumi_random passwords (components/data/placement.py)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def stacks_where(predicate: Any) -> list[str]:
    """The discovered stacks whose settings satisfy `predicate` (tests ask for a shape, not a name)."""
    return [stack for stack in STACKS if predicate(settings_of(stack))]


def backup_stacks() -> list[str]:
    """Stacks that take logical backups (their backup node runs platform-backup)."""
    return stacks_where(lambda s: s.operations.backups.enabled)


def rabbitmq_loopback_stacks() -> list[str]:
    """Stacks whose RabbitMQ nodes can share one host as rendered. A private-network stack binds
    every node's metrics listener to 0.0.0.0:15692 (scraped over the private network, limited by
    the firewall): two of its nodes on one host would collide, and a different address would test
    a listener its VMs do not have."""
    return stacks_where(lambda s: s.kubernetes.data_path == "vpc")


def _block(stack: str, base: int) -> int:
    """First host number of a stack's loopback addresses (20 per stack: nodes, then spares)."""
    return base + 20 * STACKS.index(stack)


def _issue(
    ca: TestCa | None, settings: StackSettings, role: str, index: int, address: str, *dns: str
) -> TlsFiles | None:
    # LOOPBACK: the stack's internal CA issues each node a certificate for its VPC address and
    # hostname (components/data/placement.py); the test CA does the same for the loopback address.
    if not settings.data.tls:
        return None
    assert ca is not None, f"{settings.stack} has TLS on: pass the test CA"
    label = settings.label(role, index)
    return ca.issue(f"{label}-{address}", [address], (label, *dns))


# --- MariaDB ---------------------------------------------------------------------------------------


@dataclass
class MariaDbNode:
    args: MariaDbNodeArgs
    directory: Path
    process: ServerProcess | None = None

    @property
    def defaults_file(self) -> Path:
        # LOOPBACK: on the VM root's tools read /etc/mysql/mariadb.conf.d/60-platform.cnf
        # (render_server_cnf) and /root/.my.cnf (render_client_cnf); here one file holds both,
        # passed with --defaults-file, because /etc/mysql and /root belong to the host.
        return self.directory / "my.cnf"

    def write_defaults(self) -> None:
        self.defaults_file.write_text(render_server_cnf(self.args) + render_client_cnf(self.args.socket))

    def sql(self, statement: str, *, stdin: bool = False) -> str:
        """SQL as root the way the VM's setup script and operators run it: `mariadb` over the Unix
        socket (unix_socket authentication), `mariadb < file` when stdin is set."""
        argv = ["mariadb", f"--defaults-file={self.defaults_file}", "--batch", "--skip-column-names"]
        done = subprocess.run(
            argv if stdin else [*argv, "-e", statement],
            input=statement if stdin else None,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{statement[:120]}: {done.stderr}"
        return done.stdout.strip()

    def status(self, variable: str) -> str:
        return self.sql(f"SHOW GLOBAL STATUS LIKE '{variable}'").split("\t")[-1]

    def answers(self) -> bool:
        probe = subprocess.run(
            ["mariadb", f"--defaults-file={self.defaults_file}", "-e", "SELECT 1"], capture_output=True, timeout=10
        )
        return probe.returncode == 0


@dataclass
class MariaDbStack:
    """A stack's MariaDB nodes 0 .. its backup node, started from the rendered files."""

    stack: str
    settings: StackSettings
    credentials: MariaDbCredentials
    addresses: list[str]
    nodes: list[MariaDbNode]
    ca: TestCa | None
    processes: list[ServerProcess]

    @property
    def topology(self) -> MariaDbTopology:
        return self.nodes[0].args.topology

    @property
    def database(self) -> str:
        return self.settings.data.mariadb.database

    @property
    def app_user(self) -> str:
        return self.settings.data.mariadb.user

    @property
    def backup_node(self) -> MariaDbNode:
        return self.nodes[backup_node_index(self.settings.data.mariadb.nodes)]

    def connect(self, node: MariaDbNode, **kwargs: Any) -> pymysql.connections.Connection:
        """The application's login (app user, over TLS with the internal CA when TLS is on)."""
        if node.args.tls and "ssl_disabled" not in kwargs:
            kwargs["ssl"] = {"ca": node.args.tls.ca_file, "check_hostname": True}
        return pymysql.connect(
            host=node.args.address,
            port=node.args.port,
            user=self.app_user,
            password=self.credentials.app_password,
            database=self.database,
            connect_timeout=5,
            read_timeout=30,
            write_timeout=30,
            autocommit=True,
            **kwargs,
        )

    def node_args(self, index: int, directory: Path, addresses: list[str] | None = None) -> MariaDbNodeArgs:
        """Node `index` as components/data/mariadb/cluster.py renders it for the stack's VM."""
        settings, service = self.settings, self.settings.data.mariadb
        addresses = addresses or self.addresses
        tls = _issue(self.ca, settings, "mariadb", index, addresses[index])
        return MariaDbNodeArgs(
            nodes=service.nodes,
            index=index,
            addresses=addresses,
            credentials=self.credentials,
            tls=tls,
            cluster_name=settings.label("mariadb"),
            buffer_pool_size=memory_share(service.plan, 0.5),
            # LOOPBACK: paths of this node inside pytest's directory (several servers share the host).
            datadir=str(directory / "data"),
            socket=str(directory / "mysqld.sock"),
            pid_file=str(directory / "mysqld.pid"),
            # LOOPBACK: the VM logs to journald through systemd; a process the test starts has none.
            log_error=str(directory / "error.log"),
            # LOOPBACK: the tests run as root (the VM runs mariadbd as mysql).
            run_as_user="root",
            # LOOPBACK: the mariabackup SST script's socat listener binds every interface of the host,
            # not the node's address: a port of the test's own keeps joiners off anyone's 4444.
            sst_port=SST_PORT + 10000 + index,
        )

    def start(self, node: MariaDbNode, *, new_cluster: bool = False) -> ServerProcess:
        argv = ["mariadbd", f"--defaults-file={node.defaults_file}"]
        if new_cluster:
            # What `galera_new_cluster` adds on the VM (node 0 of a fresh cluster, runbook restores).
            argv.append("--wsrep-new-cluster")
        node.process = start_process(f"mariadb-{node.args.address}", argv, node.directory / "stdout.log")
        self.processes.append(node.process)
        return node.process

    def wait_synced(self, node: MariaDbNode, size: int, timeout: float) -> None:
        """A Galera node Synced in a primary component of `size`. A joiner can abort at start-up
        (Galera's "Failed to read thread schedparams" race on a busy host); the VM's setup script
        retries `systemctl start mariadb`, so this does too."""
        restarts = 0

        def synced() -> bool:
            nonlocal restarts
            if node.process and not node.process.alive() and restarts < 3:
                restarts += 1
                self.start(node)
            return node.status("wsrep_cluster_size") == str(size) and (
                node.status("wsrep_local_state_comment") == "Synced"
            )

        wait_until(f"{node.args.address} Synced in a cluster of {size}", synced, timeout=timeout)

    def wait_replicated(self) -> None:
        """Every started node has applied what node 0 committed (the backup node reads it next)."""
        primary = self.nodes[0]
        for node in self.nodes[1:]:
            if self.topology is MariaDbTopology.PRIMARY_REPLICA:
                position = primary.sql("SELECT @@gtid_binlog_pos")
                assert node.sql(f"SELECT MASTER_GTID_WAIT('{position}', 60)") == "0", position
            else:
                # Galera applies asynchronously after certification: a causal read waits for it.
                node.sql("SET SESSION wsrep_sync_wait=1; SELECT 1")

    def restored_server(self, datadir: Path, directory: Path) -> MariaDbNode:
        """Runbook step 4: the prepared copy started with node 0's rendered configuration
        (staging: the primary's, `systemctl start mariadb`; prod: `galera_new_cluster`).

        LOOPBACK: the nodes the copy came from keep running for the other tests, so the copy gets
        addresses of its own (the stack's spare block): it binds none of theirs and, for Galera,
        reaches no peer, as with "the others stopped" in the runbook."""
        spare = [f"127.0.3.{_block(self.stack, 10) + 10 + i}" for i in range(len(self.addresses))]
        directory.mkdir(parents=True, exist_ok=True)
        args = replace(self.node_args(0, directory, spare), datadir=str(datadir))
        node = MariaDbNode(args=args, directory=directory)
        node.write_defaults()
        self.start(node, new_cluster=self.topology is MariaDbTopology.GALERA)
        wait_until("the restored copy to answer", node.answers, timeout=120)
        return node


def install_db(datadir: str) -> None:
    """The data directory as Debian's postinst creates it at package install (mysql_install_db
    --skip-test-db, root by unix_socket: Debian's default)."""
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",  # LOOPBACK: the tests run as root (Debian: --user=mysql)
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def start_mariadb(stack: str, base: Path, ca: TestCa | None, processes: list[ServerProcess]) -> MariaDbStack:
    """The stack's MariaDB nodes 0 .. its backup node, brought up as the VMs' setup script does."""
    settings = settings_of(stack)
    service = settings.data.mariadb
    # LOOPBACK: the VPC addresses of the stack's nodes.
    addresses = [f"127.0.3.{_block(stack, 10) + i}" for i in range(service.nodes)]
    credentials = MariaDbCredentials(root_password=password(), app_password=password(), replication_password=password())
    group = MariaDbStack(stack, settings, credentials, addresses, [], ca, processes)
    for index in range(backup_node_index(service.nodes) + 1):
        directory = base / f"node{index}"
        directory.mkdir(parents=True)
        node = MariaDbNode(args=group.node_args(index, directory), directory=directory)
        node.write_defaults()
        install_db(node.args.datadir)
        group.nodes.append(node)

    primary = group.nodes[0]
    # LOOPBACK: the replica's connection to the primary leaves from 127.0.0.1 (the kernel's source
    # for a loopback destination), on the VPC from the replica's address.
    replication_hosts = ["127.0.0.1"] if group.topology is MariaDbTopology.PRIMARY_REPLICA else None
    users_sql = render_users_sql(
        primary.args, database=group.database, app_user=group.app_user, replication_client_hosts=replication_hosts
    )
    if group.topology is MariaDbTopology.GALERA:
        group.start(primary, new_cluster=True)  # node 0, fresh data directory, no peer serving clients
        group.wait_synced(primary, 1, timeout=90)
        primary.sql(users_sql, stdin=True)
        for node in group.nodes[1:]:
            group.start(node)
            group.wait_synced(node, len(group.nodes), timeout=180)
    else:
        group.start(primary)
        wait_until(f"mariadb on {primary.args.address}", primary.answers, timeout=120)
        primary.sql(users_sql, stdin=True)
        for node in group.nodes[1:]:
            group.start(node)
            wait_until(f"mariadb on {node.args.address}", node.answers, timeout=120)
            node.sql(render_replica_sql(node.args), stdin=True)
            wait_until("the replica's IO and SQL threads", partial(replica_running, node), timeout=60)
    return group


def replica_status(node: MariaDbNode) -> dict[str, str]:
    done = subprocess.run(
        ["mariadb", f"--defaults-file={node.defaults_file}", "--batch", "-e", "SHOW SLAVE STATUS"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = done.stdout.rstrip("\n").split("\n")
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True)) if len(lines) > 1 else {}


def replica_running(node: MariaDbNode) -> bool:
    status = replica_status(node)
    return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"


# --- Redis -----------------------------------------------------------------------------------------


@dataclass
class RedisNode:
    args: RedisNodeArgs
    directory: Path
    server: ServerProcess | None = None
    sentinel: ServerProcess | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "redis.conf"

    def tls_options(self) -> dict[str, Any]:
        if self.args.tls is None:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": self.args.tls.ca_file,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
        }

    def client(self, **kwargs: Any) -> redis.Redis:
        options: dict[str, Any] = {"password": self.args.password, "socket_timeout": 3, **self.tls_options()}
        options.update(kwargs)
        return redis.Redis(host=self.args.address, port=self.args.port, **options)

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(
            host=self.args.address,
            port=self.args.sentinel_port,
            password=self.args.password,
            socket_timeout=2,
            **self.tls_options(),
        )


@dataclass
class RedisStack:
    stack: str
    settings: StackSettings
    nodes: list[RedisNode]
    processes: list[ServerProcess] = field(default_factory=list)

    @property
    def password(self) -> str:
        return self.nodes[0].args.password

    @property
    def master(self) -> str:
        return self.settings.data.redis.sentinel_master

    @property
    def backup_node(self) -> RedisNode:
        return self.nodes[backup_node_index(self.settings.data.redis.nodes)]

    def start_server(self, node: RedisNode) -> None:
        # LOOPBACK: the rendered file is passed by path (the VM's unit reads /etc/redis/redis.conf).
        node.server = start_process(
            f"redis-{node.args.address}", ["redis-server", str(node.conf)], node.directory / "out.log"
        )
        self.processes.append(node.server)
        wait_until(f"redis on {node.args.address}", lambda: port_open(node.args.address, node.args.port), 30)

    def start_sentinel(self, node: RedisNode) -> None:
        conf = node.directory / "sentinel.conf"
        node.sentinel = start_process(
            f"sentinel-{node.args.address}", ["redis-sentinel", str(conf)], node.directory / "sentinel.out"
        )
        self.processes.append(node.sentinel)
        wait_until(
            f"sentinel on {node.args.address}", lambda: port_open(node.args.address, node.args.sentinel_port), 30
        )


def start_redis(
    stack: str, base: Path, ca: TestCa | None, processes: list[ServerProcess], *, spare: bool = False
) -> RedisStack:
    """Every Redis node of the stack (and its Sentinels), from the rendered redis.conf/sentinel.conf.

    `spare`: a second set of the stack's nodes, for a test that changes it (a failover), on the
    spare addresses of the stack's block while the session's set keeps the stack's addresses."""
    settings = settings_of(stack)
    service = settings.data.redis
    # LOOPBACK: the VPC addresses of the stack's nodes.
    first = _block(stack, 10) + (10 if spare else 0)
    addresses = [f"127.0.4.{first + i}" for i in range(service.nodes)]
    secret = password()
    nodes = []
    for index, address in enumerate(addresses):
        directory = base / f"node{index}"
        directory.mkdir(parents=True)
        args = RedisNodeArgs(
            nodes=service.nodes,
            index=index,
            addresses=addresses,
            password=secret,
            tls=_issue(ca, settings, "redis", index, address),
            sentinel_master=service.sentinel_master,
            maxmemory=memory_share(service.plan, 0.6, unit="mb"),
            maxmemory_policy=service.maxmemory_policy,
            # LOOPBACK: paths of this node inside pytest's directory (several servers share the host).
            datadir=str(directory),
            logfile=str(directory / "redis.log"),
            sentinel_logfile=str(directory / "sentinel.log"),
            pidfile=str(directory / "redis.pid"),
            sentinel_pidfile=str(directory / "sentinel.pid"),
        )
        node = RedisNode(args=args, directory=directory)
        node.conf.write_text(render_redis_conf(args))
        if args.topology is RedisTopology.SENTINEL:
            (directory / "sentinel.conf").write_text(render_sentinel_conf(args))
        nodes.append(node)
    group = RedisStack(stack, settings, nodes, processes)
    for node in nodes:
        group.start_server(node)
    for node in nodes:
        if node.args.topology is RedisTopology.SENTINEL:
            group.start_sentinel(node)
    wait_until(
        "every replica's link to the primary",
        lambda: all(n.client().info("replication")["master_link_status"] == "up" for n in nodes[1:]),
        60,
    )
    return group


# --- RabbitMQ --------------------------------------------------------------------------------------


@dataclass
class RabbitNode:
    args: RabbitMqNodeArgs
    directory: Path
    env: dict[str, str]
    process: ServerProcess | None = None

    @property
    def name(self) -> str:
        return self.args.node_name(self.args.index)

    def ctl(self, *argv: str, timeout: float = 60) -> str:
        """rabbitmqctl as on the VM: node name and CLI distribution options from rabbitmq-env.conf."""
        result = subprocess.run(
            [f"{RABBIT_BIN}/rabbitmqctl", *argv],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return result.stdout


@dataclass
class RabbitStack:
    stack: str
    settings: StackSettings
    credentials: RabbitMqCredentials
    nodes: list[RabbitNode]

    @property
    def vhost(self) -> str:
        return self.settings.data.rabbitmq.vhost

    @property
    def app_user(self) -> str:
        return self.settings.data.rabbitmq.user

    @property
    def backup_node(self) -> RabbitNode:
        return self.nodes[backup_node_index(self.settings.data.rabbitmq.nodes)]

    @property
    def definitions(self) -> str:
        """What render_definitions gives every node to import at boot."""
        return Path(self.nodes[0].args.definitions_file).read_text()


def start_rabbitmq(stack: str, base: Path, ca: TestCa | None, processes: list[ServerProcess]) -> RabbitStack:
    """The stack's RabbitMQ nodes 0 .. its backup node, one after the other as the setup script
    starts them (each once the previous node's distribution port answers)."""
    settings = settings_of(stack)
    service = settings.data.rabbitmq
    count = service.nodes
    # LOOPBACK: the VPC addresses of the stack's nodes.
    addresses = [f"127.0.5.{_block(stack, 10) + i}" for i in range(count)]
    # LOOPBACK: node names. On the VMs every node is rabbit@<its label>, resolved through the
    # /etc/hosts lines cloud-init appends, and registers with its own epmd. One host has one epmd
    # (a node name's first part must be unique in it) and its /etc/hosts is not ours: each node gets
    # its own name part at `localhost`, its distribution listener on 127.0.0.1 (what localhost
    # resolves to) and its own distribution port (the VMs all use 25672).
    node_names = [f"rabbit-itest-{stack}-{i}@localhost" for i in range(count)]
    dist_ports = [35672 + 20 * STACKS.index(stack) + i for i in range(count)]
    credentials = RabbitMqCredentials(admin_password=password(), app_password=password(), erlang_cookie=password(48))
    nodes = []
    for index in range(backup_node_index(count) + 1):
        directory = base / f"node{index}"
        (directory / "home").mkdir(parents=True)
        args = RabbitMqNodeArgs(
            index=index,
            addresses=addresses,
            node_names=node_names,
            credentials=credentials,
            vhost=service.vhost,
            app_user=service.user,
            # The certificate also names the node name's host part: TLS distribution checks it.
            tls=_issue(ca, settings, "rabbitmq", index, addresses[index], "localhost"),
            metrics_interface="0.0.0.0" if settings.kubernetes.data_path == "private-network" else None,
            dist_ports=dist_ports,
            dist_interface="127.0.0.1",
            # LOOPBACK: files of this node inside pytest's directory (the VM's live in /etc/rabbitmq).
            definitions_file=str(directory / "definitions.json"),
            inter_node_tls_file=str(directory / "inter_node_tls.config"),
        )
        (directory / "rabbitmq.conf").write_text(render_rabbitmq_conf(args))
        (directory / "rabbitmq-env.conf").write_text(render_rabbitmq_env(args))
        (directory / "enabled_plugins").write_text(render_enabled_plugins())
        Path(args.definitions_file).write_text(render_definitions(args))
        if args.tls:
            Path(args.inter_node_tls_file).write_text(render_inter_node_tls_config(args))
        cookie = directory / "home" / ".erlang.cookie"
        cookie.write_text(credentials.erlang_cookie)
        cookie.chmod(0o400)
        env = {
            # LOOPBACK: the rendered files and the node's state by path, since /etc/rabbitmq and
            # /var/lib/rabbitmq belong to the host; $HOME holds the Erlang cookie as
            # /var/lib/rabbitmq does for the rabbitmq user.
            "PATH": f"{RABBIT_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(directory / "home"),
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),  # absent, as on the VM
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
            "ERL_EPMD_PORT": EPMD_PORT,
        }
        nodes.append(RabbitNode(args=args, directory=directory, env=env))

    for node in nodes:
        node.process = start_process(
            node.name, [f"{RABBIT_BIN}/rabbitmq-server"], node.directory / "stdout.log", env=node.env
        )
        processes.append(node.process)
        deadline = time.monotonic() + 180
        while not port_open(node.args.address, node.args.port):
            assert node.process.alive(), f"{node.name} exited:\n{node.process.tail()}"
            assert time.monotonic() < deadline, f"{node.name} did not open {node.args.port}:\n{node.process.tail()}"
            time.sleep(0.5)
    return RabbitStack(stack, settings, credentials, nodes)
