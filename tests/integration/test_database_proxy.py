"""The database proxy for real: HAProxy with the rendered haproxy.cfg in front of three nodes on loopback.

Each "node" is a TCP server that greets with its name (what connection landed where) and the
rendered Galera health script behind socat (one process per connection, as systemd's
`Accept=yes` runs it), with a stand-in `mariadb` answering the node's wsrep state from a file.
HAProxy is started with the rendered file and nothing else; only the addresses and ports differ
from production (the renderer's parameters). Losing node 0 moves clients to node 1 and cuts the
sessions node 0 held; node 0 takes new clients again once healthy.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.data.mariadb.config import render_database_proxy_config, render_galera_health_script
from tests.integration.conftest import ServerProcess, port_open, require_binaries, start_process, wait_until

pytestmark = pytest.mark.integration

PROXY = "127.0.6.1"
NODES = ["127.0.6.11", "127.0.6.12", "127.0.6.13"]
CLIENT_PORT, HEALTH_PORT, MONITOR_PORT = 13306, 19200, 18404
SYNCED, DESYNCED = "wsrep_local_state\t4\nwsrep_ready\tON\n", "wsrep_local_state\t2\nwsrep_ready\tON\n"


class Greeter(socketserver.ThreadingTCPServer):
    """A stand-in database node: says its name, then holds the connection until the client leaves."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, name: str) -> None:
        self.name = name
        self.sessions: list[socket.socket] = []
        super().__init__((address, CLIENT_PORT), GreeterHandler)


class GreeterHandler(socketserver.BaseRequestHandler):
    server: Greeter

    def handle(self) -> None:
        self.request.sendall(f"{self.server.name}\n".encode())
        while self.request.recv(1024):
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Three nodes and the proxy; yields each node's state file (write SYNCED or DESYNCED)."""
    binaries = require_binaries("haproxy", "socat")
    work = tmp_path_factory.mktemp("database-proxy")
    script = work / "galera-health"
    script.write_text(render_galera_health_script())
    processes: list[ServerProcess] = []
    greeters: list[Greeter] = []
    states = []
    try:
        for index, address in enumerate(NODES):
            state = work / f"state-{index}"
            state.write_text(SYNCED)
            states.append(state)
            bin_dir = work / f"bin-{index}"
            bin_dir.mkdir()
            (bin_dir / "mariadb").write_text(f"#!/bin/sh\ncat {state}\n")
            (bin_dir / "mariadb").chmod(0o755)
            greeter = Greeter(address, f"node-{index}")
            threading.Thread(target=greeter.serve_forever, daemon=True).start()
            greeters.append(greeter)
            processes.append(
                start_process(
                    f"health-{index}",
                    [
                        binaries["socat"],
                        f"TCP-LISTEN:{HEALTH_PORT},bind={address},reuseaddr,fork",
                        f"EXEC:bash {script}",
                    ],
                    work / f"health-{index}.log",
                    env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                )
            )
        config = work / "haproxy.cfg"
        config.write_text(
            render_database_proxy_config(
                [(f"node-{i}", address) for i, address in enumerate(NODES)],
                port=CLIENT_PORT,
                listen_port=CLIENT_PORT,
                health_port=HEALTH_PORT,
                monitor_port=MONITOR_PORT,
                bind_address=PROXY,
            )
        )
        haproxy = start_process("haproxy", [binaries["haproxy"], "-W", "-db", "-f", str(config)], work / "haproxy.log")
        processes.append(haproxy)
        wait_until("the proxy listens", lambda: port_open(PROXY, CLIENT_PORT) and port_open(PROXY, MONITOR_PORT), 20)
        wait_until("node 0 serves through the proxy", lambda: greeting() == "node-0", 20)
        yield states
    finally:
        for process in reversed(processes):
            process.kill()
        for greeter in greeters:
            greeter.shutdown()
            greeter.server_close()


def connect() -> socket.socket:
    connection = socket.create_connection((PROXY, CLIENT_PORT), timeout=5)
    return connection


def greeting() -> str:
    with connect() as connection:
        return connection.recv(64).decode().strip()


def test_the_proxys_own_health_answers_on_its_monitor_port(cluster: list[Path]) -> None:
    with urllib.request.urlopen(f"http://{PROXY}:{MONITOR_PORT}/healthz", timeout=5) as response:
        assert response.status == 200


def test_every_client_goes_to_node_zero_while_it_is_synced(cluster: list[Path]) -> None:
    assert {greeting() for _ in range(10)} == {"node-0"}


def test_losing_node_zero_cuts_its_sessions_and_sends_new_clients_to_node_one(cluster: list[Path]) -> None:
    held = connect()
    assert held.recv(64) == b"node-0\n"
    cluster[0].write_text(DESYNCED)
    try:
        wait_until("clients move to node 1", lambda: greeting() == "node-1", 20)
        held.settimeout(10)
        assert held.recv(64) == b""  # on-marked-down shutdown-sessions: the old session is closed
        assert {greeting() for _ in range(5)} == {"node-1"}  # one backup at a time: one writer
    finally:
        held.close()
        cluster[0].write_text(SYNCED)
    wait_until("node 0 takes new clients again", lambda: greeting() == "node-0", 30)


def test_with_nodes_zero_and_one_down_node_two_serves(cluster: list[Path]) -> None:
    cluster[0].write_text(DESYNCED)
    cluster[1].write_text("")  # the server does not answer at all
    try:
        wait_until("clients move to node 2", lambda: greeting() == "node-2", 20)
    finally:
        cluster[0].write_text(SYNCED)
        cluster[1].write_text(SYNCED)
    wait_until("node 0 takes new clients again", lambda: greeting() == "node-0", 30)
