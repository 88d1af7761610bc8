"""The Galera health check on every node and the HAProxy configuration of the database proxy.

The health script runs for real (bash) with a stand-in `mariadb` that answers what a node in a
given state would; the proxy configuration is read line by line here and by HAProxy itself in
tests/validation/test_database_proxy.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.data.cloud_init import TlsMaterial
from components.data.mariadb.config import (
    GALERA_HEALTH_PORT,
    GALERA_HEALTH_SCRIPT,
    MARIADB_TLS_FILES,
    MariaDbCredentials,
    MariaDbNodeArgs,
    mariadb_cloud_config,
    render_database_proxy_config,
    render_galera_health_script,
    render_galera_health_units,
)

CREDS = MariaDbCredentials(root_password="rootpw", app_password="apppw", replication_password="replpw")
ADDRESSES = ["10.0.1.10", "10.0.1.11", "10.0.1.12"]
SERVERS = [("db-0", "10.0.1.10"), ("db-1", "10.0.1.11"), ("db-2", "10.0.1.12")]


def cloud_config(nodes: int, index: int = 0) -> dict[str, Any]:
    args = MariaDbNodeArgs(
        nodes=nodes, index=index, addresses=ADDRESSES[:nodes], credentials=CREDS, tls=MARIADB_TLS_FILES
    )
    return mariadb_cloud_config(args, database="app", app_user="app", tls=TlsMaterial("CA\n", "CERT\n", "KEY\n"))


# --- the health check -------------------------------------------------------------------------


def ask(tmp_path: Path, status_output: str | None, request: bytes = b"GET / HTTP/1.0\r\n\r\n") -> bytes:
    """Run the rendered script as systemd would for one connection; `None`: the server is down."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "mariadb"
    calls = tmp_path / "calls"
    if status_output is None:
        body = 'echo "ERROR 2002 (HY000): Can\'t connect to local server through socket" >&2; exit 1'
    else:
        body = f"printf '{status_output}'"
    stub.write_text(f'#!/bin/sh\necho "$*" > {calls}\necho "root password rootpw" >&2\n{body}\n')
    stub.chmod(0o755)
    result = subprocess.run(
        ["bash", "-c", render_galera_health_script()],
        input=request,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def parse(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return status, headers, body


@pytest.mark.parametrize(
    ("state", "ready", "status"),
    [
        ("4", "ON", "HTTP/1.1 200 OK"),  # Synced and accepting queries
        ("2", "ON", "HTTP/1.1 503 Service Unavailable"),  # Donor/Desynced
        ("1", "OFF", "HTTP/1.1 503 Service Unavailable"),  # Joining
        ("4", "OFF", "HTTP/1.1 503 Service Unavailable"),  # Synced but not in the primary component
    ],
)
def test_only_a_synced_ready_node_answers_200(tmp_path: Path, state: str, ready: str, status: str) -> None:
    response = ask(tmp_path, f"wsrep_local_state\\t{state}\\nwsrep_ready\\t{ready}\\n")
    got, headers, body = parse(response)
    assert got == status
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)


def test_a_node_whose_server_does_not_answer_is_unavailable_and_nothing_else_leaks(tmp_path: Path) -> None:
    response = ask(tmp_path, None)
    status, headers, body = parse(response)
    assert status == "HTTP/1.1 503 Service Unavailable"
    assert int(headers["Content-Length"]) == len(body)
    assert b"rootpw" not in response and b"ERROR" not in response and b"socket" not in response


def test_the_check_asks_over_the_unix_socket_as_root_with_no_option_file(tmp_path: Path) -> None:
    ask(tmp_path, "wsrep_local_state\\t4\\nwsrep_ready\\tON\\n")
    args = (tmp_path / "calls").read_text().split()
    assert args[0] == "--no-defaults"
    assert {"--protocol=socket", "--socket=/run/mysqld/mysqld.sock", "--user=root", "-N", "-B"} <= set(args)
    assert "wsrep_local_state" in " ".join(args) and "wsrep_ready" in " ".join(args)


def test_a_client_that_sends_nothing_still_gets_an_answer(tmp_path: Path) -> None:
    status, _, _ = parse(ask(tmp_path, "wsrep_local_state\\t4\\nwsrep_ready\\tON\\n", request=b""))
    assert status == "HTTP/1.1 200 OK"


def test_health_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n"], input=render_galera_health_script().encode(), check=True)


def test_socket_accepts_on_9200_and_hands_each_connection_to_the_script_as_root() -> None:
    units = render_galera_health_units()
    assert set(units) == {"galera-health.socket", "galera-health@.service"}
    socket_unit, service_unit = units["galera-health.socket"], units["galera-health@.service"]
    assert f"ListenStream={GALERA_HEALTH_PORT}\n" in socket_unit and "Accept=yes\n" in socket_unit
    assert "WantedBy=sockets.target" in socket_unit
    assert f"ExecStart=-{GALERA_HEALTH_SCRIPT}\n" in service_unit
    assert "StandardInput=socket\n" in service_unit and "StandardOutput=socket\n" in service_unit
    assert "StandardError=journal\n" in service_unit  # errors never go down the socket
    assert "User=" not in service_unit  # root: unix_socket login, no password on disk


def test_every_galera_node_installs_and_starts_the_health_socket() -> None:
    for index in range(3):
        doc = cloud_config(3, index)
        files = {f["path"]: f for f in doc["write_files"]}
        assert files[GALERA_HEALTH_SCRIPT]["content"] == render_galera_health_script()
        assert files[GALERA_HEALTH_SCRIPT]["permissions"] == "0700"
        for unit, content in render_galera_health_units().items():
            assert files[f"/etc/systemd/system/{unit}"]["content"] == content
        runcmd = doc["runcmd"]
        assert runcmd[0] == ["/usr/local/lib/platform/mariadb-setup.sh"]
        assert runcmd.index(["systemctl", "daemon-reload"]) < runcmd.index(
            ["systemctl", "enable", "--now", "galera-health.socket"]
        )


@pytest.mark.parametrize("nodes", [1, 2])
def test_standalone_and_primary_replica_nodes_have_no_health_check(nodes: int) -> None:
    for index in range(nodes):
        doc = cloud_config(nodes, index)
        assert "galera-health" not in str(doc)
        assert doc["runcmd"] == [["/usr/local/lib/platform/mariadb-setup.sh"]]


# --- the proxy's configuration ----------------------------------------------------------------


def section(config: str, header: str) -> list[str]:
    lines = config.splitlines()
    start = lines.index(header)
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        body.append(line.strip())
    return body


def test_node_zero_is_the_one_writer_and_the_others_are_backups_in_order() -> None:
    listen = section(render_database_proxy_config(SERVERS), "listen mariadb")
    servers = [line for line in listen if line.startswith("server ")]
    assert servers == [
        "server db-0 10.0.1.10:3306 check",
        "server db-1 10.0.1.11:3306 check backup",
        "server db-2 10.0.1.12:3306 check backup",
    ]
    assert "option allbackups" not in listen  # one backup at a time: still one writer


def test_health_is_checked_over_http_on_9200_and_a_lost_node_drops_its_sessions() -> None:
    listen = section(render_database_proxy_config(SERVERS), "listen mariadb")
    assert "mode tcp" in listen and "bind :3306" in listen
    assert "option httpchk" in listen and "http-check expect status 200" in listen
    assert "default-server port 9200 inter 2s fall 2 rise 3 on-marked-down shutdown-sessions" in listen


def test_timeouts_suit_long_lived_connections_and_logs_go_to_stdout() -> None:
    config = render_database_proxy_config(SERVERS)
    defaults = section(config, "defaults")
    assert "timeout client 8h" in defaults and "timeout server 8h" in defaults
    assert "timeout check 2s" in defaults and "timeout connect 5s" in defaults
    assert "log stdout format raw local0 info" in section(config, "global")


def test_the_proxys_own_health_answers_on_a_separate_port() -> None:
    monitor = section(render_database_proxy_config(SERVERS), "frontend monitor")
    assert "bind :8404" in monitor and "monitor-uri /healthz" in monitor and "mode http" in monitor


def test_nothing_is_resolved_at_run_time() -> None:
    config = render_database_proxy_config(SERVERS)
    assert "resolvers" not in config
    for line in config.splitlines():
        if line.strip().startswith("server "):
            address = line.split()[2].rsplit(":", 1)[0]
            assert re.fullmatch(r"[0-9.]+", address), line
    with pytest.raises(ValueError):
        render_database_proxy_config([("db-0", "platform-infra-prod-mariadb-0")])


@pytest.mark.parametrize("servers", [[], [("db", "10.0.1.10"), ("db", "10.0.1.11")], [("a b", "10.0.1.10")]])
def test_no_servers_duplicate_or_malformed_names_are_refused(servers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        render_database_proxy_config(servers)
