"""RabbitMQ nodes from the rendered configs, clustered on loopback; quorum queues survive a node loss.

Three node names on one host need three distribution ports and one epmd: the test gives each node
its own `rabbit-itest-<n>@localhost` name, distribution port and AMQP address 127.0.5.<n+1>, and
runs a private epmd on its own port so nothing else on the machine is touched.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from components.data.connections import TlsFiles
from components.data.rabbitmq.config import (
    ADMIN_USER,
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    render_definitions,
    render_enabled_plugins,
    render_inter_node_tls_config,
    render_rabbitmq_conf,
    render_rabbitmq_env,
)
from tests.integration.conftest import (
    ServerProcess,
    TestCa,
    port_open,
    report_measurement,
    require_binaries,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.integration

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
EPMD_PORT = "14369"
CREDENTIALS = RabbitMqCredentials(
    admin_password="admin-Secret-1", app_password="app-Secret-2", erlang_cookie="ITESTCOOKIEABCDEFGHIJ"
)
VHOST = "app"
APP_USER = "app"


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
        result = subprocess.run(
            [f"{RABBIT_BIN}/rabbitmqctl", "-n", self.name, *argv],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return result.stdout

    def connection(self, ca_file: str | None = None) -> pika.BlockingConnection:
        params = pika.ConnectionParameters(
            host=self.args.address,
            port=self.args.port,
            virtual_host=VHOST,
            credentials=pika.PlainCredentials(APP_USER, CREDENTIALS.app_password),
            connection_attempts=1,
            socket_timeout=5,
            blocked_connection_timeout=10,
            ssl_options=(
                pika.SSLOptions(ssl.create_default_context(cafile=ca_file), self.args.address) if ca_file else None
            ),
        )
        return pika.BlockingConnection(params)


def make_nodes(
    base: Path, label: str, first_address: int, dist_base: int, count: int, tls: list[TlsFiles] | None = None
) -> list[RabbitNode]:
    addresses = [f"127.0.5.{first_address + i}" for i in range(count)]
    node_names = [f"rabbit-itest-{label}-{i}@localhost" for i in range(count)]
    nodes = []
    for index in range(count):
        directory = base / f"node{index}"
        (directory / "home").mkdir(parents=True)
        args = RabbitMqNodeArgs(
            index=index,
            addresses=addresses,
            node_names=node_names,
            credentials=CREDENTIALS,
            vhost=VHOST,
            app_user=APP_USER,
            tls=tls[index] if tls else None,
            dist_ports=[dist_base + i for i in range(count)],
            dist_interface="127.0.0.1",  # what the node names' host part (localhost) resolves to
            definitions_file=str(directory / "definitions.json"),
            inter_node_tls_file=str(directory / "inter_node_tls.config"),
            disk_free_limit="50MB",
            memory_high_watermark=0.2,
        )
        config = directory / "rabbitmq.conf"
        config.write_text(render_rabbitmq_conf(args))
        (directory / "rabbitmq-env.conf").write_text(render_rabbitmq_env(args))
        (directory / "enabled_plugins").write_text(render_enabled_plugins())
        Path(args.definitions_file).write_text(render_definitions(args))
        if args.tls:
            Path(args.inter_node_tls_file).write_text(render_inter_node_tls_config(args))
        cookie = directory / "home" / ".erlang.cookie"
        cookie.write_text(CREDENTIALS.erlang_cookie)
        cookie.chmod(0o400)
        env = {
            "HOME": str(directory / "home"),  # the Erlang cookie lives in $HOME
            "RABBITMQ_CONF_ENV_FILE": str(directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(directory / "log"),
            "RABBITMQ_PID_FILE": str(directory / "rabbit.pid"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
            "ERL_EPMD_PORT": EPMD_PORT,
            # One host, three nodes: keep each Erlang VM small (replaces the default VM flags; the
            # rendered env file's SERVER_ADDITIONAL_ERL_ARGS, TLS distribution, still applies).
            "RABBITMQ_SERVER_ERL_ARGS": "+P 1048576 +t 5000000 +S 1:1 +A 4 +sbwt none +sbwtdcpu none +sbwtdio none",
        }
        nodes.append(RabbitNode(args=args, directory=directory, env=env))
    return nodes


def start_node(node: RabbitNode, processes: list[ServerProcess]) -> None:
    node.process = start_process(
        node.name, [f"{RABBIT_BIN}/rabbitmq-server"], node.directory / "stdout.log", env=node.env
    )
    processes.append(node.process)


def await_startup(node: RabbitNode, timeout: float = 120) -> None:
    assert node.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert node.process.alive(), f"{node.name} exited:\n{node.process.tail()}"
        if port_open(node.args.address, node.args.port):
            return
        time.sleep(0.5)
    raise AssertionError(f"{node.name} did not open {node.args.port} in {timeout}s:\n{node.process.tail()}")


@pytest.fixture(scope="module")
def epmd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private epmd on its own port, started (and so stopped) by us rather than by the first node."""
    require_binaries("erl", "epmd")
    process = start_process(
        "epmd", ["epmd", "-port", EPMD_PORT, "-address", "127.0.0.1"], tmp_path_factory.mktemp("epmd") / "epmd.log"
    )
    wait_until("epmd", lambda: port_open("127.0.0.1", int(EPMD_PORT)), 10)
    yield
    process.kill()


@pytest.fixture(scope="module")
def cluster(epmd: None, tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess]) -> list[RabbitNode]:
    require_binaries(f"{RABBIT_BIN}/rabbitmq-server")
    nodes = make_nodes(tmp_path_factory.mktemp("rabbit"), "c", first_address=1, dist_base=35672, count=3)
    started = time.monotonic()
    # As the VMs' setup script does: node 0 seeds, each next node starts once the previous one
    # answers (3.10 nodes booting at the same moment can block on each other's discovery lock).
    for node in nodes:
        start_node(node, processes)
        await_startup(node)
    expected = {node.name for node in nodes}
    wait_until("all three nodes in one cluster", lambda: running_nodes(nodes[0]) == expected, 120, interval=1)
    report_measurement("rabbitmq_cluster_form_seconds", round(time.monotonic() - started, 1))
    return nodes


def running_nodes(node: RabbitNode) -> set[str]:
    status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
    return set(status["running_nodes"])


def test_nodes_form_one_cluster(cluster: list[RabbitNode]) -> None:
    expected = {node.name for node in cluster}
    for node in cluster:
        assert running_nodes(node) == expected


def test_management_and_prometheus_listen_on_the_node_address_only(cluster: list[RabbitNode]) -> None:
    for node in cluster:
        with urllib.request.urlopen(f"http://{node.args.address}:{node.args.prometheus_port}/metrics", timeout=10) as r:
            assert b"rabbitmq_" in r.read()
        assert port_open(node.args.address, node.args.management_port)
    # Every node uses the same ports on its own address: nothing answers on the wildcard's 127.0.0.1.
    assert not port_open("127.0.0.1", cluster[0].args.prometheus_port)
    assert not port_open("127.0.0.1", cluster[0].args.management_port)


def test_app_vhost_declares_quorum_queues_by_default_and_guest_is_absent(cluster: list[RabbitNode]) -> None:
    with cluster[0].connection() as connection:
        connection.channel().queue_declare("default-type-probe", durable=True)
    listing = cluster[0].ctl("list_queues", "-p", VHOST, "name", "type", "--formatter", "json")
    assert '"name":"default-type-probe","type":"quorum"' in listing.replace(" ", "")
    users = cluster[0].ctl("list_users", "--formatter", "json")
    assert "guest" not in users and ADMIN_USER in users and APP_USER in users


def test_quorum_queue_keeps_every_message_when_one_node_of_three_stops(cluster: list[RabbitNode]) -> None:
    queue = "orders"
    published = 0
    with cluster[0].connection() as connection:
        channel = connection.channel()
        channel.confirm_delivery()  # every publish below returns only once the quorum has it
        channel.queue_declare(queue, durable=True)
        for number in range(500):
            channel.basic_publish("", queue, f"order {number}".encode(), pika.BasicProperties(delivery_mode=2))
            published += 1

    stopped = cluster[2]
    stopped.ctl("stop_app")
    wait_until("the cluster to see node 2 gone", lambda: stopped.name not in running_nodes(cluster[0]), 60)

    with cluster[0].connection() as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for number in range(500, 1000):
            channel.basic_publish("", queue, f"order {number}".encode(), pika.BasicProperties(delivery_mode=2))
            published += 1

    received: set[str] = set()
    with cluster[1].connection() as connection:
        channel = connection.channel()
        for _ in range(published + 10):
            method, _, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            received.add(body.decode())
    lost = published - len(received)
    report_measurement("rabbitmq_quorum_messages", {"published": published, "received": len(received), "lost": lost})
    assert lost == 0
    assert received == {f"order {n}" for n in range(1000)}
    stopped.ctl("start_app")
    wait_until("node 2 to rejoin", lambda: stopped.name in running_nodes(cluster[0]), 60)


def test_tls_mode_clusters_over_tls_accepts_clients_with_the_ca_and_refuses_plaintext(
    epmd: None, tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess], test_ca: TestCa
) -> None:
    addresses = ["127.0.5.21", "127.0.5.22"]
    # The node names' host part (localhost) is a SAN too: TLS distribution checks the peer's name.
    certificates = [test_ca.issue(f"rabbit-tls-{i}", [a], ("localhost",)) for i, a in enumerate(addresses)]
    nodes = make_nodes(
        tmp_path_factory.mktemp("rabbit-tls"), "t", first_address=21, dist_base=35682, count=2, tls=certificates
    )
    for node in nodes:
        assert node.args.port == 5671
        start_node(node, processes)
        await_startup(node)
    expected = {node.name for node in nodes}
    wait_until("both TLS nodes in one cluster", lambda: running_nodes(nodes[0]) == expected, 120, interval=1)
    for node in nodes:
        assert "inet_tls" in node.ctl("eval", "init:get_argument(proto_dist).")

    with nodes[1].connection(ca_file=test_ca.ca_file) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("tls-probe", durable=True)
        channel.basic_publish("", "tls-probe", b"over tls")
    with nodes[0].connection(ca_file=test_ca.ca_file) as connection:
        assert connection.channel().basic_get("tls-probe", auto_ack=True)[2] == b"over tls"
    for node in nodes:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            node.connection()  # plaintext AMQP against the TLS listener
        assert not port_open(node.args.address, 5672)
