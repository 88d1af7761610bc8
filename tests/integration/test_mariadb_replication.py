"""MariaDB primary + read-only replica (GTID) and TLS-only mode, from the rendered configs, on 127.0.3.x."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pymysql
import pytest

from components.data.connections import TlsFiles
from components.data.mariadb.config import (
    MariaDbCredentials,
    MariaDbNodeArgs,
    render_replica_sql,
    render_server_cnf,
    render_users_sql,
)
from tests.integration.conftest import (
    ServerProcess,
    TestCa,
    port_open,
    require_binaries,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.integration

CREDENTIALS = MariaDbCredentials(
    root_password="root-Secret-1", app_password="app-Secret-2", replication_password="repl-Secret-3"
)
DATABASE = "app"
APP_USER = "app"


def admin(args: MariaDbNodeArgs, sql: str) -> str:
    """SQL as root over the Unix socket (unix_socket authentication, like on the VM)."""
    result = subprocess.run(
        ["mariadb", f"--socket={args.socket}", "-uroot", "-N", "-B", "-e", sql],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout.strip()


def slave_status(args: MariaDbNodeArgs) -> dict[str, str]:
    result = subprocess.run(
        ["mariadb", f"--socket={args.socket}", "-uroot", "-B", "-e", "SHOW SLAVE STATUS"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    lines = result.stdout.rstrip("\n").split("\n")
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"), strict=True)) if len(lines) > 1 else {}


def start_server(
    base: Path, nodes: int, index: int, addresses: list[str], processes: list[ServerProcess],
    tls: TlsFiles | None = None,
) -> MariaDbNodeArgs:
    directory = base / f"node{index}"
    (directory / "tmp").mkdir(parents=True)
    args = MariaDbNodeArgs(
        nodes=nodes, index=index, addresses=addresses, credentials=CREDENTIALS, tls=tls,
        datadir=str(directory / "data"), socket=str(directory / "mysqld.sock"),
        pid_file=str(directory / "mysqld.pid"), tmpdir=str(directory / "tmp"),
        log_error=str(directory / "error.log"), run_as_user="root", buffer_pool_size="32M",
        extra_options={"innodb_log_file_size": "16M", "performance_schema": "OFF"},
    )
    defaults_file = directory / "my.cnf"
    defaults_file.write_text(render_server_cnf(args))
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={args.datadir}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    processes.append(
        start_process(f"mariadb-{index}", ["mariadbd", f"--defaults-file={defaults_file}"], directory / "out.log")
    )
    wait_until(f"mariadb on {args.address}", lambda: port_open(args.address, args.port), 60)
    wait_until("the socket to accept root", lambda: admin(args, "SELECT 1") == "1", 30)
    return args


def app_connection(args: MariaDbNodeArgs, **kwargs: object) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=args.address, port=args.port, user=APP_USER, password=CREDENTIALS.app_password,
        database=DATABASE, connect_timeout=3, autocommit=True, **kwargs,
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess]) -> list[MariaDbNodeArgs]:
    require_binaries("mariadbd", "mariadb-install-db", "mariadb")
    base = tmp_path_factory.mktemp("mariadb-pair")
    addresses = ["127.0.3.11", "127.0.3.12"]
    primary = start_server(base, 2, 0, addresses, processes)
    # On one host the replica's connection leaves from 127.0.0.1, on the VPC from its own address.
    admin(
        primary,
        render_users_sql(primary, database=DATABASE, app_user=APP_USER, replication_client_hosts=["127.0.0.1"]),
    )
    replica = start_server(base, 2, 1, addresses, processes)
    admin(replica, render_replica_sql(replica))
    wait_until(
        "the replica's IO and SQL threads",
        lambda: (status := slave_status(replica)).get("Slave_IO_Running") == "Yes"
        and status.get("Slave_SQL_Running") == "Yes",
        30,
    )
    return [primary, replica]


def test_replica_follows_the_primary_by_gtid(pair: list[MariaDbNodeArgs]) -> None:
    primary, replica = pair
    with app_connection(primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS invoices (id INT PRIMARY KEY AUTO_INCREMENT, total INT)")
        cur.execute("INSERT INTO invoices (total) VALUES (42)")

    def replicated() -> bool:
        with app_connection(replica) as conn, conn.cursor() as cur:
            cur.execute("SELECT total FROM invoices")
            return cur.fetchall() == ((42,),)

    wait_until("the row on the replica", replicated, 20)
    assert slave_status(replica)["Using_Gtid"] == "Slave_Pos"
    assert admin(primary, "SELECT @@gtid_binlog_pos") == admin(replica, "SELECT @@gtid_slave_pos")


def test_replica_refuses_writes_from_the_app_user(pair: list[MariaDbNodeArgs]) -> None:
    _, replica = pair
    assert admin(replica, "SELECT @@read_only") == "1"
    with app_connection(replica) as conn, conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as error:
        cur.execute("INSERT INTO invoices (total) VALUES (7)")
    assert error.value.args[0] == 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only


def test_tls_mode_accepts_clients_with_the_ca_and_refuses_plaintext(
    tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess], test_ca: TestCa
) -> None:
    require_binaries("mariadbd", "mariadb-install-db", "mariadb")
    address = "127.0.3.21"
    args = start_server(
        tmp_path_factory.mktemp("mariadb-tls"), 1, 0, [address], processes,
        tls=test_ca.issue("mariadb-tls", [address]),
    )
    admin(args, render_users_sql(args, database=DATABASE, app_user=APP_USER))

    with app_connection(args, ssl={"ca": test_ca.ca_file, "check_hostname": True}) as conn, conn.cursor() as cur:
        cur.execute("SHOW STATUS LIKE 'Ssl_version'")
        row = cur.fetchone()
        assert row is not None and row[1].startswith("TLSv1.")
    with pytest.raises(pymysql.err.OperationalError) as error:
        app_connection(args, ssl_disabled=True)  # PyMySQL would otherwise try TLS on its own
    # 3159: require_secure_transport refuses the insecure transport (1045 if REQUIRE SSL hits first).
    assert error.value.args[0] in (3159, 1045)
    assert admin(args, "SELECT @@require_secure_transport") == "1"
