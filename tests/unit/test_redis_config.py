"""The Redis renderers: standalone, primary/replica and Sentinel, AUTH, binding and TLS-only."""

from __future__ import annotations

import pytest

from components.data.connections import TlsFiles
from components.data.redis.config import (
    RedisNodeArgs,
    RedisTopology,
    render_redis_conf,
    render_sentinel_conf,
    sentinel_quorum,
    topology_for,
)

ADDRESSES = ["10.0.1.20", "10.0.1.21", "10.0.1.22", "10.0.1.23", "10.0.1.24"]
TLS = TlsFiles("/etc/redis/tls/ca.pem", "/etc/redis/tls/server.crt", "/etc/redis/tls/server.key")


def node(nodes: int, index: int, tls: TlsFiles | None = None, password: str = "s3cret") -> RedisNodeArgs:
    return RedisNodeArgs(nodes=nodes, index=index, addresses=ADDRESSES[:nodes], password=password, tls=tls)


def directives(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            if key == "sentinel":
                sub, _, value = value.partition(" ")
                key = f"sentinel {sub}"
            pairs.append((key, value))
    return pairs


def value(text: str, key: str) -> str | None:
    return next((v for k, v in directives(text) if k == key), None)


@pytest.mark.parametrize(
    ("nodes", "topology"),
    [
        (1, RedisTopology.STANDALONE),
        (2, RedisTopology.PRIMARY_REPLICA),
        (3, RedisTopology.SENTINEL),
        (5, RedisTopology.SENTINEL),
    ],
)
def test_node_count_selects_the_topology(nodes: int, topology: RedisTopology) -> None:
    assert topology_for(nodes) is topology


@pytest.mark.parametrize(("nodes", "quorum"), [(3, 2), (4, 3), (5, 3), (7, 4)])
def test_sentinel_quorum_is_a_majority(nodes: int, quorum: int) -> None:
    assert sentinel_quorum(nodes) == quorum


@pytest.mark.parametrize(("nodes", "index"), [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_every_node_binds_its_vpc_address_with_auth_and_protected_mode(nodes: int, index: int) -> None:
    conf = render_redis_conf(node(nodes, index))
    assert value(conf, "bind") == ADDRESSES[index]
    assert value(conf, "protected-mode") == "yes"
    assert value(conf, "requirepass") == '"s3cret"'
    assert value(conf, "masterauth") == '"s3cret"'
    assert value(conf, "port") == "6379"


def test_only_nodes_after_the_first_replicate_from_node_zero() -> None:
    assert value(render_redis_conf(node(3, 0)), "replicaof") is None
    assert value(render_redis_conf(node(3, 1)), "replicaof") == "10.0.1.20 6379"
    assert value(render_redis_conf(node(1, 0)), "replicaof") is None


def test_tls_closes_the_plaintext_port_and_replicates_over_tls() -> None:
    conf = render_redis_conf(node(2, 1, TLS))
    assert value(conf, "port") == "0"
    assert value(conf, "tls-port") == "6379"
    assert value(conf, "tls-ca-cert-file") == TLS.ca_file
    assert value(conf, "tls-replication") == "yes"


def test_sentinel_monitors_node_zero_with_the_majority_quorum_and_auth() -> None:
    conf = render_sentinel_conf(node(5, 3))
    assert value(conf, "sentinel monitor") == "platform 10.0.1.20 6379 3"
    assert value(conf, "sentinel auth-pass") == 'platform "s3cret"'
    assert value(conf, "requirepass") == '"s3cret"'
    assert value(conf, "bind") == "10.0.1.23"
    assert value(conf, "sentinel announce-ip") == "10.0.1.23"
    assert value(conf, "port") == "26379"


def test_sentinel_with_tls_listens_only_on_the_tls_port() -> None:
    conf = render_sentinel_conf(node(3, 0, TLS))
    assert value(conf, "port") == "0" and value(conf, "tls-port") == "26379"


def test_sentinel_is_refused_below_three_nodes() -> None:
    with pytest.raises(ValueError, match="3 or more"):
        render_sentinel_conf(node(2, 0))


def test_passwords_are_quoted_and_escaped() -> None:
    conf = render_redis_conf(node(1, 0, password='a"b\\c'))
    assert value(conf, "requirepass") == '"a\\"b\\\\c"'
