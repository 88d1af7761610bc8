"""Redis from the rendered redis.conf/sentinel.conf: the stacks' primary + replica and their TLS,
and a Sentinel failover with the production timings of the stacks that run Sentinel.

That the replicas connect and Sentinel sees its quorum is the system layer's
(tests/system/test_clusters.py); these tests check what the rendered files decide beyond it:
AUTH, read-only replicas, TLS-only listeners, and that Sentinel can actually fail over.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from tests.integration.conftest import ServerProcess, TestCa, report_measurement, require_binaries, wait_until
from tests.integration.rendered import RedisStack, stacks_where, start_redis

pytestmark = pytest.mark.integration

PAIR_STACKS = stacks_where(lambda s: s.data.redis.nodes == 2)
SENTINEL_STACKS = stacks_where(lambda s: s.data.redis.nodes >= 3)
# A refusal is expected: no retries with back-off (redis-py's default), which only add seconds.
ONCE = Retry(NoBackoff(), 0)


@pytest.fixture(params=PAIR_STACKS)
def pair(request: pytest.FixtureRequest, redis_stacks: Callable[[str], RedisStack]) -> RedisStack:
    return redis_stacks(request.param)


def test_primary_and_replica_require_auth(pair: RedisStack) -> None:
    for node in pair.nodes:
        with pytest.raises(redis.AuthenticationError):
            node.client(password=None, retry=ONCE).ping()
        assert node.client().ping()


def test_replica_follows_primary_and_refuses_writes(pair: RedisStack) -> None:
    primary, replica = pair.nodes
    primary.client().set("greeting", "from the primary")
    wait_until("the key on the replica", lambda: replica.client().get("greeting") == b"from the primary", 10)
    assert replica.client().info("replication")["role"] == "slave"
    with pytest.raises(redis.ReadOnlyError):
        replica.client().set("greeting", "from the replica")


def test_tls_only_listeners_accept_clients_with_the_ca_and_refuse_the_rest(pair: RedisStack) -> None:
    if not pair.settings.data.tls:
        pytest.skip(f"{pair.stack} has no TLS")
    for node in pair.nodes:
        assert node.client().ping()  # TLS, the internal CA, the host name checked against the address
        plaintext = redis.Redis(
            host=node.args.address, port=node.args.port, password=pair.password, socket_timeout=3, retry=ONCE
        )
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            plaintext.ping()
        untrusted = node.client(ssl_ca_certs=ssl.get_default_verify_paths().cafile, retry=ONCE)
        with pytest.raises(redis.ConnectionError):
            untrusted.ping()


@pytest.fixture(scope="module", params=SENTINEL_STACKS)
def sentinel_group(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    processes: list[ServerProcess],
    test_ca: TestCa,
) -> Iterator[RedisStack]:
    require_binaries("redis-server", "redis-sentinel")
    stack: str = request.param
    group = start_redis(stack, tmp_path_factory.mktemp(f"redis-failover-{stack}"), test_ca, processes, spare=True)
    yield group
    for node in group.nodes:
        for process in (node.sentinel, node.server):
            if process:
                process.stop()


def test_sentinel_promotes_a_replica_and_clients_find_it(sentinel_group: RedisStack) -> None:
    nodes = sentinel_group.nodes
    master = sentinel_group.master
    tls_options = nodes[0].tls_options()
    password = sentinel_group.password
    sentinel = Sentinel(
        [(node.args.address, node.args.sentinel_port) for node in nodes],
        sentinel_kwargs={"password": password, "socket_timeout": 2, **tls_options},
        password=password,
        socket_timeout=2,
        **tls_options,
    )

    def sentinels_agree() -> bool:
        for node in nodes:
            view = node.sentinel_client().sentinel_master(master)
            assert isinstance(view, dict)
            if view["num-other-sentinels"] != len(nodes) - 1 or view["num-slaves"] != len(nodes) - 1:
                return False
        return True

    wait_until(f"every sentinel to see {len(nodes) - 1} replicas and other sentinels", sentinels_agree, 60)
    primary = (nodes[0].args.address, nodes[0].args.port)
    assert sentinel.discover_master(master) == primary
    sentinel.master_for(master).set("before-failover", "kept")
    wait_until(
        "the write to reach every replica", lambda: all(n.client().get("before-failover") for n in nodes[1:]), 10
    )

    assert nodes[0].server is not None
    killed_at = time.monotonic()
    nodes[0].server.kill()
    # down-after-milliseconds and failover-timeout are the rendered production values.
    new_primary = wait_until(
        "Sentinel to promote a replica",
        lambda: (address := sentinel.discover_master(master)) != primary and address,
        60,
    )
    client = sentinel.master_for(master)
    wait_until("the new primary to accept writes", lambda: client.set("after-failover", "written"), 30)
    report_measurement(f"sentinel_{sentinel_group.stack}_failover_seconds", round(time.monotonic() - killed_at, 1))
    assert new_primary[0] in [n.args.address for n in nodes[1:]]
    assert client.get("before-failover") == b"kept"
    assert client.info("replication")["role"] == "master"
