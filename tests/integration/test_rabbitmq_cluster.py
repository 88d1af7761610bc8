"""RabbitMQ from the rendered rabbitmq.conf, rabbitmq-env.conf, enabled_plugins, definitions and
inter-node TLS options: node 0 and the node that takes the backups, joined as the setup script
joins them (rendered.py names the loopback adaptations: node names, distribution ports, epmd).

That the nodes form one cluster is the system layer's (tests/system/test_clusters.py); these tests
check what the rendered files decide beyond it: where the listeners are, TLS for clients and
between the nodes, the imported definitions (users, quorum queues by default).
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Callable

import pika
import pika.exceptions
import pytest

from components.data.rabbitmq.config import ADMIN_USER, AMQP_PORT
from tests.integration.conftest import port_open
from tests.integration.rendered import RabbitNode, RabbitStack, rabbitmq_loopback_stacks, stacks_where

pytestmark = pytest.mark.integration

CLUSTER_STACKS = [s for s in rabbitmq_loopback_stacks() if s in stacks_where(lambda s: s.data.rabbitmq.nodes >= 2)]


@pytest.fixture(params=CLUSTER_STACKS)
def cluster(request: pytest.FixtureRequest, rabbitmq_stacks: Callable[[str], RabbitStack]) -> RabbitStack:
    return rabbitmq_stacks(request.param)


def connection(group: RabbitStack, node: RabbitNode, *, tls: bool | None = None) -> pika.BlockingConnection:
    """The application's login; over TLS with the internal CA where the stack has TLS on."""
    use_tls = node.args.tls is not None if tls is None else tls
    ssl_options = None
    if use_tls:
        assert node.args.tls is not None
        ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=node.args.tls.ca_file), node.args.address)
    params = pika.ConnectionParameters(
        host=node.args.address,
        port=node.args.port,
        virtual_host=group.vhost,
        credentials=pika.PlainCredentials(group.app_user, group.credentials.app_password),
        connection_attempts=1,
        socket_timeout=5,
        blocked_connection_timeout=10,
        ssl_options=ssl_options,
    )
    return pika.BlockingConnection(params)


def running_nodes(node: RabbitNode) -> set[str]:
    return set(json.loads(node.ctl("cluster_status", "--formatter", "json"))["running_nodes"])


def test_management_and_prometheus_listen_on_the_node_address_only(cluster: RabbitStack) -> None:
    for node in cluster.nodes:
        url = f"http://{node.args.address}:{node.args.prometheus_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b"rabbitmq_" in response.read()
        assert port_open(node.args.address, node.args.management_port)
    # Every node uses the same ports on its own address: nothing answers on the wildcard's 127.0.0.1.
    assert not port_open("127.0.0.1", cluster.nodes[0].args.prometheus_port)
    assert not port_open("127.0.0.1", cluster.nodes[0].args.management_port)


def test_app_vhost_declares_quorum_queues_by_default_and_guest_is_absent(cluster: RabbitStack) -> None:
    with connection(cluster, cluster.nodes[0]) as conn:
        conn.channel().queue_declare("default-type-probe", durable=True)
    listing = cluster.nodes[0].ctl("list_queues", "-p", cluster.vhost, "name", "type", "--formatter", "json")
    assert '"name":"default-type-probe","type":"quorum"' in listing.replace(" ", "")
    users = {user["user"] for user in json.loads(cluster.nodes[0].ctl("list_users", "--formatter", "json"))}
    assert users == {ADMIN_USER, cluster.app_user}


def test_nodes_talk_tls_to_each_other_and_to_clients_and_refuse_plaintext(cluster: RabbitStack) -> None:
    if not cluster.settings.data.tls:
        pytest.skip(f"{cluster.stack} has no TLS")
    assert running_nodes(cluster.nodes[0]) == {node.name for node in cluster.nodes}
    for node in cluster.nodes:
        # Erlang distribution over TLS (rabbitmq-env.conf), for the node and for rabbitmqctl.
        assert "inet_tls" in node.ctl("eval", "init:get_argument(proto_dist).")
    first, last = cluster.nodes[0], cluster.nodes[-1]
    with connection(cluster, last) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.queue_declare("tls-probe", durable=True)
        channel.basic_publish("", "tls-probe", b"over tls")
    with connection(cluster, first) as conn:
        assert conn.channel().basic_get("tls-probe", auto_ack=True)[2] == b"over tls"
    for node in cluster.nodes:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            connection(cluster, node, tls=False)  # plaintext AMQP against the TLS listener
        assert not port_open(node.args.address, AMQP_PORT)
