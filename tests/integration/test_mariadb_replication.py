"""MariaDB from the rendered files: the primary + read-only replica (GTID) of the stacks that have
one, and the client TLS of every stack that takes backups (the nodes test_backup_restore.py uses).

Cluster formation itself (replica threads running, Galera Synced) is the system layer's
(tests/system/test_clusters.py); these tests check what the rendered files decide beyond it.
"""

from __future__ import annotations

from collections.abc import Callable

import pymysql
import pytest

from tests.integration.rendered import MariaDbStack, backup_stacks, replica_status, stacks_where

pytestmark = pytest.mark.integration

PAIR_STACKS = stacks_where(lambda s: s.data.mariadb.nodes == 2)


@pytest.fixture(params=PAIR_STACKS)
def pair(request: pytest.FixtureRequest, mariadb_stacks: Callable[[str], MariaDbStack]) -> MariaDbStack:
    return mariadb_stacks(request.param)


def test_replica_follows_the_primary_by_gtid_over_tls(pair: MariaDbStack) -> None:
    primary, replica = pair.nodes
    with pair.connect(primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS invoices (id INT PRIMARY KEY AUTO_INCREMENT, total INT)")
        cur.execute("INSERT INTO invoices (total) VALUES (42)")
    pair.wait_replicated()
    with pair.connect(replica) as conn, conn.cursor() as cur:
        cur.execute("SELECT total FROM invoices WHERE total = 42")
        assert cur.fetchall() == ((42,),)
    status = replica_status(replica)
    assert status["Using_Gtid"] == "Slave_Pos"
    tls = pair.settings.data.tls
    assert status["Master_SSL_Allowed"] == ("Yes" if tls else "No")
    assert status["Master_SSL_Verify_Server_Cert"] == ("Yes" if tls else "No")
    assert primary.sql("SELECT @@gtid_binlog_pos") == replica.sql("SELECT @@gtid_slave_pos")


def test_replica_refuses_writes_from_the_app_user(pair: MariaDbStack) -> None:
    primary, replica = pair.nodes
    assert replica.sql("SELECT @@read_only") == "1"
    with pair.connect(primary) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS invoices (id INT PRIMARY KEY AUTO_INCREMENT, total INT)")
    pair.wait_replicated()
    with pair.connect(replica) as conn, conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as error:
        cur.execute("INSERT INTO invoices (total) VALUES (7)")
    assert error.value.args[0] == 1290  # ER_OPTION_PREVENTS_STATEMENT: --read-only


@pytest.mark.parametrize("stack", backup_stacks())
def test_app_clients_need_tls_with_the_internal_ca_exactly_when_tls_is_on(
    stack: str, mariadb_stacks: Callable[[str], MariaDbStack]
) -> None:
    group = mariadb_stacks(stack)
    tls = group.settings.data.tls
    for node in group.nodes:
        assert node.sql("SELECT @@require_secure_transport") == ("1" if tls else "0")
        if not tls:
            group.connect(node, ssl_disabled=True).close()
            continue
        with group.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE 'Ssl_version'")
            row = cur.fetchone()
            assert row is not None and row[1] in ("TLSv1.2", "TLSv1.3")
        with pytest.raises(pymysql.err.OperationalError) as error:
            group.connect(node, ssl_disabled=True)  # PyMySQL would otherwise try TLS on its own
        # 3159: require_secure_transport refuses the insecure transport (1045 if REQUIRE SSL hits first).
        assert error.value.args[0] in (3159, 1045)
