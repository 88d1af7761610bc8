"""A 3-node Galera cluster from the rendered option files, started for real on 127.0.3.1-3."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from components.data.connections import TlsFiles
from components.data.mariadb.config import (
    MariaDbCredentials,
    MariaDbNodeArgs,
    render_galera_health_script,
    render_server_cnf,
    render_users_sql,
)
from tests.integration.conftest import (
    ServerProcess,
    TestCa,
    report_measurement,
    require_binaries,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.integration

# One cluster without TLS, one with TLS from a test CA (prod's configuration), one after the other.
ADDRESSES = {"plain": ["127.0.3.1", "127.0.3.2", "127.0.3.3"], "tls": ["127.0.3.4", "127.0.3.5", "127.0.3.6"]}
SST_PORT_BASE = {"plain": 14444, "tls": 14454}
CREDENTIALS = MariaDbCredentials(
    root_password="root-Secret-1", app_password="app-Secret-2", replication_password="sst-Secret-3"
)
DATABASE = "app"
APP_USER = "app"


@dataclass
class MariaDbNode:
    args: MariaDbNodeArgs
    defaults_file: Path
    directory: Path
    process: ServerProcess | None = None
    ca_file: str | None = None

    def connect(self, **kwargs: object) -> pymysql.connections.Connection:
        if self.ca_file and "ssl_disabled" not in kwargs:
            kwargs["ssl"] = {"ca": self.ca_file, "check_hostname": True}
        return pymysql.connect(
            host=self.args.address,
            port=self.args.port,
            user=APP_USER,
            password=CREDENTIALS.app_password,
            database=DATABASE,
            connect_timeout=3,
            read_timeout=10,
            write_timeout=10,
            autocommit=True,
            **kwargs,
        )

    def admin(self, sql: str) -> str:
        """Run SQL as root over the Unix socket (unix_socket authentication, like on the VM)."""
        result = subprocess.run(
            ["mariadb", f"--socket={self.args.socket}", "-uroot", "-N", "-B", "-e", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout.strip()

    def status(self, variable: str) -> str:
        return self.admin(f"SHOW STATUS LIKE '{variable}'").split("\t")[-1]


def node_args(mode: str, index: int, directory: Path, tls: TlsFiles | None) -> MariaDbNodeArgs:
    return MariaDbNodeArgs(
        nodes=3,
        index=index,
        addresses=ADDRESSES[mode],
        credentials=CREDENTIALS,
        tls=tls,
        cluster_name="itest",
        datadir=str(directory / "data"),
        socket=str(directory / "mysqld.sock"),
        pid_file=str(directory / "mysqld.pid"),
        tmpdir=str(directory / "tmp"),
        log_error=str(directory / "error.log"),
        # mariabackup's SST listener binds every interface: on one host each joiner needs its own port.
        sst_port=SST_PORT_BASE[mode] + index,
        run_as_user="root",  # the test runs as root; the VM runs as mysql (the default)
        buffer_pool_size="32M",
        extra_options={"innodb_log_file_size": "16M", "performance_schema": "OFF"},
    )


def start_node(node: MariaDbNode, processes: list[ServerProcess], *, new_cluster: bool) -> ServerProcess:
    argv = ["mariadbd", f"--defaults-file={node.defaults_file}"]
    if new_cluster:
        argv.append("--wsrep-new-cluster")
    node.process = start_process(f"mariadb-{node.args.index}", argv, node.directory / "stdout.log")
    processes.append(node.process)  # stopped at the end of the module whatever happens
    return node.process


def synced(node: MariaDbNode, size: int) -> bool:
    return node.status("wsrep_cluster_size") == str(size) and node.status("wsrep_local_state_comment") == "Synced"


def wait_for_synced_cluster(nodes: list[MariaDbNode], processes: list[ServerProcess], timeout: float) -> int:
    """Wait until every node is Synced in a cluster of len(nodes); returns how many restarts it took.

    A joiner can abort at start-up (Galera's "Failed to read thread schedparams" race on a busy
    host); on the VM the setup script's start loop retries it, so the test does too (3 times).
    """
    restarts = 0

    def formed() -> bool:
        nonlocal restarts
        for node in nodes:
            if node.process and not node.process.alive() and restarts < 3:
                restarts += 1
                start_node(node, processes, new_cluster=False)
        return all(synced(node, len(nodes)) for node in nodes)

    wait_until(f"{len(nodes)} synced nodes", formed, timeout=timeout)
    return restarts


@pytest.fixture(scope="module", params=["plain", "tls"])
def galera(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    processes: list[ServerProcess],
    test_ca: TestCa,
) -> Iterator[list[MariaDbNode]]:
    mode: str = request.param
    require_binaries("mariadbd", "mariadb-install-db", "mariadb", "mariabackup", "socat")
    nodes: list[MariaDbNode] = []
    for index in range(3):
        directory = tmp_path_factory.mktemp(f"galera-{mode}-{index}")
        (directory / "tmp").mkdir()
        address = ADDRESSES[mode][index]
        tls = test_ca.issue(f"galera-{index}", [address]) if mode == "tls" else None
        args = node_args(mode, index, directory, tls)
        defaults_file = directory / "my.cnf"
        defaults_file.write_text(render_server_cnf(args))
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={args.datadir}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        nodes.append(
            MariaDbNode(
                args=args, defaults_file=defaults_file, directory=directory, ca_file=tls.ca_file if tls else None
            )
        )

    started = time.monotonic()
    # Node 0 bootstraps the fresh cluster (what the VM's setup script does when no peer answers).
    start_node(nodes[0], processes, new_cluster=True)
    wait_until("node 0 to bootstrap", lambda: synced(nodes[0], 1), timeout=60)
    nodes[0].admin(render_users_sql(nodes[0].args, database=DATABASE, app_user=APP_USER))
    for node in nodes[1:]:
        start_node(node, processes, new_cluster=False)
    restarts = wait_for_synced_cluster(nodes, processes, timeout=180)
    report_measurement(f"galera_{mode}_joiner_restarts", restarts)
    report_measurement(f"galera_{mode}_form_seconds", round(time.monotonic() - started, 1))
    yield nodes
    for node in nodes:  # free the addresses before the next cluster of this module starts
        if node.process:
            node.process.stop()


def test_plaintext_clients_are_refused_exactly_when_tls_is_on(galera: list[MariaDbNode]) -> None:
    tls = galera[0].ca_file is not None
    for node in galera:
        if tls:
            with pytest.raises(pymysql.err.OperationalError) as error:
                node.connect(ssl_disabled=True)
            assert error.value.args[0] in (3159, 1045)
            with node.connect() as conn, conn.cursor() as cur:
                cur.execute("SHOW STATUS LIKE 'Ssl_version'")
                row = cur.fetchone()
                assert row is not None and row[1].startswith("TLSv1.")
        else:
            node.connect(ssl_disabled=True).close()


def test_galera_cluster_reaches_three_members(galera: list[MariaDbNode]) -> None:
    for node in galera:
        assert node.status("wsrep_cluster_size") == "3"
        assert node.status("wsrep_cluster_status") == "Primary"


def test_write_on_one_node_is_read_on_the_others(galera: list[MariaDbNode]) -> None:
    with galera[0].connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS greetings (id INT PRIMARY KEY AUTO_INCREMENT, text VARCHAR(64))")
        cur.execute("INSERT INTO greetings (text) VALUES ('from node 0')")
    for node in galera[1:]:
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT text FROM greetings WHERE text = 'from node 0'")
            assert cur.fetchall() == (("from node 0",),)


def health(node: MariaDbNode) -> str:
    """The status line the rendered health script answers for this node (one connection)."""
    result = subprocess.run(
        ["bash", "-c", render_galera_health_script(socket=node.args.socket)],
        input=b"GET / HTTP/1.0\r\n\r\n",
        capture_output=True,
        timeout=30,
        check=True,
    )
    return result.stdout.decode().split("\r\n", 1)[0]


def test_the_health_check_answers_200_when_synced_and_503_when_desynced(galera: list[MariaDbNode]) -> None:
    assert [health(node) for node in galera] == ["HTTP/1.1 200 OK"] * 3
    galera[1].admin("SET GLOBAL wsrep_desync=ON")
    try:
        wait_until("node 1 reports not synced", lambda: health(galera[1]) == "HTTP/1.1 503 Service Unavailable", 30)
        assert health(galera[0]) == "HTTP/1.1 200 OK"
    finally:
        galera[1].admin("SET GLOBAL wsrep_desync=OFF")
    wait_until("node 1 synced again", lambda: health(galera[1]) == "HTTP/1.1 200 OK", 60)


def test_two_nodes_keep_accepting_writes_when_one_stops_and_it_rejoins(
    galera: list[MariaDbNode], processes: list[ServerProcess]
) -> None:
    with galera[0].connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS events (id INT PRIMARY KEY AUTO_INCREMENT, text VARCHAR(64))")
    stopped = galera[2]
    assert stopped.process is not None
    stopped.process.stop()
    wait_until("the cluster to shrink to 2", lambda: synced(galera[0], 2) and synced(galera[1], 2), timeout=60)
    for node in galera[:2]:
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO events (text) VALUES (%s)", (f"while node 2 is down, via {node.args.index}",))

    start_node(stopped, processes, new_cluster=False)
    wait_for_synced_cluster(galera, processes, timeout=120)
    with stopped.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM events WHERE text LIKE 'while node 2 is down%'")
        assert cur.fetchone() == (2,)
