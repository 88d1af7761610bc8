"""The MariaDB renderers: topology from the node count, option files, users and replication SQL."""

from __future__ import annotations

import configparser

import pytest

from components.data.connections import TlsFiles
from components.data.mariadb.config import (
    MariaDbCredentials,
    MariaDbNodeArgs,
    MariaDbTopology,
    render_replica_sql,
    render_server_cnf,
    render_users_sql,
    sql_string,
    topology_for,
)

CREDS = MariaDbCredentials(root_password="rootpw", app_password="apppw", replication_password="replpw")
TLS = TlsFiles("/etc/mysql/tls/ca.pem", "/etc/mysql/tls/server.crt", "/etc/mysql/tls/server.key")
ADDRESSES = ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.14"]


def node(nodes: int, index: int, tls: TlsFiles | None = None) -> MariaDbNodeArgs:
    return MariaDbNodeArgs(nodes=nodes, index=index, addresses=ADDRESSES[:nodes], credentials=CREDS, tls=tls)


def parsed(args: MariaDbNodeArgs) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    parser.read_string(render_server_cnf(args))
    return parser


@pytest.mark.parametrize(
    ("nodes", "topology"),
    [
        (1, MariaDbTopology.STANDALONE),
        (2, MariaDbTopology.PRIMARY_REPLICA),
        (3, MariaDbTopology.GALERA),
        (5, MariaDbTopology.GALERA),
    ],
)
def test_node_count_selects_the_topology(nodes: int, topology: MariaDbTopology) -> None:
    assert topology_for(nodes) is topology


@pytest.mark.parametrize("nodes", [0, 4, 6])
def test_other_node_counts_are_refused_with_what_is_allowed(nodes: int) -> None:
    with pytest.raises(ValueError, match=r"1 \(standalone\), 2 \(primary \+ replica\) or an odd number >= 3"):
        topology_for(nodes)


def test_node_needs_one_address_per_node_and_an_index_inside_the_cluster() -> None:
    with pytest.raises(ValueError, match="3 nodes need 3 addresses"):
        MariaDbNodeArgs(nodes=3, index=0, addresses=ADDRESSES[:2], credentials=CREDS)
    with pytest.raises(ValueError, match="outside"):
        MariaDbNodeArgs(nodes=1, index=1, addresses=ADDRESSES[:1], credentials=CREDS)


def test_standalone_binds_to_its_vpc_address_without_replication_or_galera() -> None:
    mysqld = parsed(node(1, 0))["mysqld"]
    assert mysqld["bind-address"] == "10.0.1.10"
    assert "wsrep_on" not in mysqld and "log_bin" not in mysqld and "read_only" not in mysqld


def test_galera_node_lists_every_peer_and_announces_its_own_address() -> None:
    mysqld = parsed(node(3, 1))["mysqld"]
    assert mysqld["wsrep_on"] == "ON"
    assert mysqld["wsrep_cluster_address"] == "gcomm://10.0.1.10:4567,10.0.1.11:4567,10.0.1.12:4567"
    assert mysqld["wsrep_node_address"] == "10.0.1.11:4567"
    assert mysqld["wsrep_sst_receive_address"] == "10.0.1.11:4444"
    assert mysqld["wsrep_sst_method"] == "mariabackup"
    assert mysqld["wsrep_sst_auth"] == "sst:replpw"
    assert "gmcast.listen_addr=tcp://10.0.1.11:4567" in mysqld["wsrep_provider_options"]
    assert mysqld["binlog_format"] == "ROW" and mysqld["innodb_autoinc_lock_mode"] == "2"


def test_every_galera_node_keeps_a_binary_log_with_every_write_for_point_in_time_recovery() -> None:
    server_ids = set()
    for index in range(3):
        mysqld = parsed(node(3, index))["mysqld"]
        assert mysqld["log_bin"] == "mariadb-bin"  # the basename docs/RUNBOOK.md replays
        assert mysqld["log_slave_updates"] == "ON"  # writes applied from peers reach this binlog too
        assert mysqld["binlog_format"] == "ROW"
        server_ids.add(mysqld["server_id"])
    assert len(server_ids) == 3


def test_runbook_replays_the_binary_logs_by_the_name_the_server_writes() -> None:
    from pathlib import Path

    runbook = (Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md").read_text()
    basename = parsed(node(3, 0))["mysqld"]["log_bin"]
    assert f"ls {basename}.[0-9]*" in runbook
    assert "mysql-bin" not in runbook


def test_primary_replica_pair_uses_gtid_and_only_the_replica_is_read_only() -> None:
    primary, replica = parsed(node(2, 0))["mysqld"], parsed(node(2, 1))["mysqld"]
    for mysqld in (primary, replica):
        assert mysqld["log_bin"] and mysqld["gtid_strict_mode"] == "ON" and mysqld["log_slave_updates"] == "ON"
    assert primary["server_id"] != replica["server_id"]
    assert "read_only" not in primary
    assert replica["read_only"] == "ON"


def test_tls_requires_secure_transport_and_encrypts_galera_and_sst() -> None:
    config = parsed(node(3, 0, TLS))
    mysqld = config["mysqld"]
    assert mysqld["require_secure_transport"] == "ON"
    assert (mysqld["ssl_ca"], mysqld["ssl_cert"], mysqld["ssl_key"]) == (TLS.ca_file, TLS.cert_file, TLS.key_file)
    assert f"socket.ssl_cert={TLS.cert_file}" in mysqld["wsrep_provider_options"]
    assert config["sst"]["encrypt"] == "3" and config["sst"]["tca"] == TLS.ca_file
    assert config["sst"]["ssl-mode"] == "VERIFY_CA"


def test_app_user_gets_only_database_privileges_so_read_only_binds_it() -> None:
    sql = render_users_sql(node(2, 0), database="shop", app_user="shopper")
    app_grants = [line for line in sql.splitlines() if line.startswith("GRANT") and "'shopper'" in line]
    assert app_grants == ["GRANT ALL PRIVILEGES ON `shop`.* TO 'shopper'@'%';"]
    assert "IDENTIFIED BY 'apppw'" in sql


def test_replication_user_may_connect_only_from_the_nodes() -> None:
    sql = render_users_sql(node(2, 0), database="app", app_user="app")
    assert "'replicator'@'10.0.1.10'" in sql and "'replicator'@'10.0.1.11'" in sql
    assert "'replicator'@'%'" not in sql


def test_galera_users_include_the_local_sst_account() -> None:
    sql = render_users_sql(node(3, 0), database="app", app_user="app")
    assert "CREATE USER IF NOT EXISTS 'sst'@'localhost' IDENTIFIED BY 'replpw';" in sql
    assert "replicator" not in sql


def test_tls_makes_every_network_user_require_ssl() -> None:
    sql = render_users_sql(node(2, 0, TLS), database="app", app_user="app")
    created = [line for line in sql.splitlines() if line.startswith("CREATE USER")]
    assert created and all(line.endswith("REQUIRE SSL;") for line in created)


def test_replica_sql_points_at_node_zero_by_gtid_and_verifies_tls() -> None:
    sql = render_replica_sql(node(2, 1, TLS))
    assert "MASTER_HOST='10.0.1.10'" in sql and "MASTER_USE_GTID=slave_pos" in sql
    assert "MASTER_SSL=1" in sql and "MASTER_SSL_VERIFY_SERVER_CERT=1" in sql
    assert sql.strip().endswith("START SLAVE;")
    assert "MASTER_SSL" not in render_replica_sql(node(2, 1))
    with pytest.raises(ValueError):
        render_replica_sql(node(2, 0))
    with pytest.raises(ValueError):
        render_replica_sql(node(3, 1))


def test_sql_strings_escape_quotes_and_backslashes() -> None:
    assert sql_string("it's a \\ test") == "'it\\'s a \\\\ test'"
