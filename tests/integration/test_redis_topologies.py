"""Redis primary/replica, Sentinel failover and TLS from the rendered configs, on 127.0.4.x."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.sentinel import Sentinel

from components.data.connections import TlsFiles
from components.data.redis.config import RedisNodeArgs, render_redis_conf, render_sentinel_conf
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

PASSWORD = "redis-Secret-1"
MASTER = "itest"


@dataclass
class RedisNode:
    args: RedisNodeArgs
    directory: Path
    server: ServerProcess | None = None
    sentinel: ServerProcess | None = None
    ca_file: str | None = None

    def tls_options(self) -> dict[str, Any]:
        if self.ca_file is None:
            return {}
        return {"ssl": True, "ssl_ca_certs": self.ca_file, "ssl_cert_reqs": "required", "ssl_check_hostname": True}

    def client(self) -> redis.Redis:
        return redis.Redis(
            host=self.args.address, port=self.args.port, password=PASSWORD, socket_timeout=3, **self.tls_options()
        )

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(
            host=self.args.address,
            port=self.args.sentinel_port,
            password=PASSWORD,
            socket_timeout=2,
            **self.tls_options(),
        )

    def role(self) -> str:
        return str(self.client().info("replication")["role"])


def make_nodes(base: Path, addresses: list[str], tls: list[TlsFiles] | None = None) -> list[RedisNode]:
    nodes = []
    for index, _ in enumerate(addresses):
        directory = base / f"node{index}"
        directory.mkdir(parents=True)
        args = RedisNodeArgs(
            nodes=len(addresses),
            index=index,
            addresses=addresses,
            password=PASSWORD,
            tls=tls[index] if tls else None,
            sentinel_master=MASTER,
            datadir=str(directory),
            logfile=str(directory / "redis.log"),
            sentinel_logfile=str(directory / "sentinel.log"),
            pidfile=str(directory / "redis.pid"),
            sentinel_pidfile=str(directory / "sentinel.pid"),
            maxmemory="64mb",
            down_after_ms=1000,  # production: 5000; shorter here to keep the suite fast
            failover_timeout_ms=10000,
        )
        nodes.append(RedisNode(args=args, directory=directory, ca_file=tls[index].ca_file if tls else None))
    return nodes


def start_redis(node: RedisNode, processes: list[ServerProcess]) -> None:
    conf = node.directory / "redis.conf"
    conf.write_text(render_redis_conf(node.args))
    node.server = start_process(f"redis-{node.args.index}", ["redis-server", str(conf)], node.directory / "out")
    processes.append(node.server)
    wait_until(f"redis on {node.args.address}", lambda: port_open(node.args.address, node.args.port), 20)


def start_sentinel(node: RedisNode, processes: list[ServerProcess]) -> None:
    conf = node.directory / "sentinel.conf"
    conf.write_text(render_sentinel_conf(node.args))
    node.sentinel = start_process(
        f"sentinel-{node.args.index}", ["redis-sentinel", str(conf)], node.directory / "sentinel.out"
    )
    processes.append(node.sentinel)
    wait_until(f"sentinel on {node.args.address}", lambda: port_open(node.args.address, node.args.sentinel_port), 20)


@pytest.fixture(scope="module")
def binaries() -> None:
    require_binaries("redis-server", "redis-sentinel")


@pytest.fixture(scope="module")
def pair(binaries: None, tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess]) -> list[RedisNode]:
    nodes = make_nodes(tmp_path_factory.mktemp("redis-pair"), ["127.0.4.11", "127.0.4.12"])
    for node in nodes:
        start_redis(node, processes)
    wait_until("the replica to sync", lambda: nodes[1].client().info("replication")["master_link_status"] == "up", 20)
    return nodes


# Sentinel without TLS, then with TLS from a test CA (prod's configuration).
SENTINEL_ADDRESSES = {"plain": ["127.0.4.1", "127.0.4.2", "127.0.4.3"], "tls": ["127.0.4.4", "127.0.4.5", "127.0.4.6"]}


@pytest.fixture(scope="module", params=["plain", "tls"])
def sentinel_cluster(
    request: pytest.FixtureRequest,
    binaries: None,
    tmp_path_factory: pytest.TempPathFactory,
    processes: list[ServerProcess],
    test_ca: TestCa,
) -> Iterator[list[RedisNode]]:
    mode: str = request.param
    addresses = SENTINEL_ADDRESSES[mode]
    tls = [test_ca.issue(f"sentinel-{i}", [a]) for i, a in enumerate(addresses)] if mode == "tls" else None
    nodes = make_nodes(tmp_path_factory.mktemp(f"redis-sentinel-{mode}"), addresses, tls=tls)
    for node in nodes:
        start_redis(node, processes)
    for node in nodes:
        start_sentinel(node, processes)
    yield nodes
    for node in nodes:
        for process in (node.sentinel, node.server):
            if process:
                process.stop()


def test_primary_and_replica_require_auth(pair: list[RedisNode]) -> None:
    anonymous = redis.Redis(host=pair[0].args.address, port=pair[0].args.port, socket_timeout=3)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert pair[0].client().ping()


def test_replica_follows_primary_and_refuses_writes(pair: list[RedisNode]) -> None:
    primary, replica = pair
    primary.client().set("greeting", "from the primary")
    wait_until("the key on the replica", lambda: replica.client().get("greeting") == b"from the primary", 10)
    assert replica.role() == "slave"
    with pytest.raises(redis.ReadOnlyError):
        replica.client().set("greeting", "from the replica")


def test_sentinel_promotes_a_replica_and_clients_find_it(sentinel_cluster: list[RedisNode]) -> None:
    nodes = sentinel_cluster
    tls_options = nodes[0].tls_options()
    sentinel = Sentinel(
        [(node.args.address, node.args.sentinel_port) for node in nodes],
        sentinel_kwargs={"password": PASSWORD, "socket_timeout": 2, **tls_options},
        password=PASSWORD,
        socket_timeout=2,
        **tls_options,
    )

    def sentinels_agree() -> bool:
        for node in nodes:
            view = node.sentinel_client().sentinel_master(MASTER)
            assert isinstance(view, dict)
            if view["num-other-sentinels"] != 2 or view["num-slaves"] != 2:
                return False
        return True

    wait_until("every sentinel to see 2 replicas and 2 other sentinels", sentinels_agree, 30)
    wait_until(
        "both replicas to finish their first sync",
        lambda: all(n.client().info("replication")["master_link_status"] == "up" for n in nodes[1:]),
        30,
    )
    assert sentinel.discover_master(MASTER) == (nodes[0].args.address, nodes[0].args.port)
    sentinel.master_for(MASTER).set("before-failover", "kept")
    wait_until(
        "the write to reach both replicas", lambda: all(n.client().get("before-failover") for n in nodes[1:]), 10
    )

    assert nodes[0].server is not None
    killed_at = time.monotonic()
    nodes[0].server.kill()
    new_primary = wait_until(
        "Sentinel to promote a replica",
        lambda: (
            (address := sentinel.discover_master(MASTER)) != (nodes[0].args.address, nodes[0].args.port) and address
        ),
        30,
    )
    client = sentinel.master_for(MASTER)
    wait_until("the new primary to accept writes", lambda: client.set("after-failover", "written"), 15)
    mode = "tls" if tls_options else "plain"
    report_measurement(f"sentinel_{mode}_failover_seconds", round(time.monotonic() - killed_at, 1))
    assert new_primary[0] in (nodes[1].args.address, nodes[2].args.address)
    assert client.get("before-failover") == b"kept"
    assert client.info("replication")["role"] == "master"


def test_tls_mode_accepts_clients_with_the_ca_and_refuses_plaintext(
    binaries: None, tmp_path_factory: pytest.TempPathFactory, processes: list[ServerProcess], test_ca: TestCa
) -> None:
    address = "127.0.4.21"
    nodes = make_nodes(tmp_path_factory.mktemp("redis-tls"), [address], tls=[test_ca.issue("redis-tls", [address])])
    start_redis(nodes[0], processes)

    secure = redis.Redis(
        host=address,
        port=nodes[0].args.port,
        password=PASSWORD,
        ssl=True,
        ssl_ca_certs=test_ca.ca_file,
        ssl_cert_reqs="required",
        ssl_check_hostname=True,
        socket_timeout=3,
    )
    assert secure.set("tls", "yes") and secure.get("tls") == b"yes"

    plaintext = redis.Redis(host=address, port=nodes[0].args.port, password=PASSWORD, socket_timeout=3)
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
        plaintext.ping()
    untrusted = redis.Redis(
        host=address,
        port=nodes[0].args.port,
        password=PASSWORD,
        ssl=True,
        socket_timeout=3,
        ssl_cert_reqs="required",
        ssl_ca_certs=ssl.get_default_verify_paths().cafile,
    )
    with pytest.raises(redis.ConnectionError):
        untrusted.ping()
