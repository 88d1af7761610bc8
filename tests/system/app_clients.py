"""Clients that act as the application pods do, run inside the layer's client namespace.

`python -m tests.system.app_clients <command> ...` under `ip netns exec <client>`: the settings come
from the program's app Secret exactly (PLATFORM_APP_SETTINGS, JSON), names resolve through the
namespace's hosts file (the pods' hostAliases), and the only substitution is where the internal
CA lives (PLATFORM_CA_FILE instead of the pod's mount path). Results go to stdout as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def settings() -> dict[str, str]:
    return dict(json.loads(os.environ["PLATFORM_APP_SETTINGS"]))


def ca_file() -> str:
    return os.environ["PLATFORM_CA_FILE"]


# --- MariaDB -------------------------------------------------------------------------------------


def _mariadb_connect(url: str) -> Any:
    import pymysql

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    tls: dict[str, Any] | None = None
    if query.get("ssl-mode", [""])[0].upper() == "VERIFY_IDENTITY":
        tls = {"ca": ca_file(), "check_hostname": True}
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=unquote(parts.path.lstrip("/")),
        ssl=tls,
        connect_timeout=3,
        read_timeout=5,
        write_timeout=5,
        autocommit=True,
    )


def mariadb_writer(seconds: float, key: str = "DATABASE_URL") -> dict[str, Any]:
    """Insert one row every 50 ms for `seconds`, reconnecting on any error, as a pool would.

    Ids continue after the highest one in the table, so the writer can run more than once.
    Returns the ids the server acknowledged (committed) and every error with its time.
    """
    url = settings()[key]
    started = time.time()
    acknowledged: list[tuple[int, float, str]] = []  # (id, time, server that took it)
    errors: list[tuple[float, str]] = []
    connection = None
    sequence: int | None = None
    while time.time() - started < seconds:
        try:
            if connection is None:
                connection = _mariadb_connect(url)
                with connection.cursor() as cursor:
                    cursor.execute(
                        "CREATE TABLE IF NOT EXISTS system_layer_writes"
                        " (id INT PRIMARY KEY, written_at DOUBLE NOT NULL, node VARCHAR(64) NOT NULL)"
                    )
                    if sequence is None:
                        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM system_layer_writes")
                        sequence = int(cursor.fetchone()[0])
            assert sequence is not None
            sequence += 1
            now = time.time()
            with connection.cursor() as cursor:
                cursor.execute("SELECT @@hostname")
                node = str(cursor.fetchone()[0])
                cursor.execute("INSERT INTO system_layer_writes VALUES (%s, %s, %s)", (sequence, now, node))
            acknowledged.append((sequence, now, node))
        except Exception as error:
            errors.append((time.time(), f"{type(error).__name__}: {error}"[:200]))
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.close()
            connection = None
            time.sleep(0.2)
        time.sleep(0.05)
    return {"started": started, "acknowledged": acknowledged, "errors": errors}


def mariadb_query(sql: str, key: str = "DATABASE_URL") -> list[list[Any]]:
    connection = _mariadb_connect(settings()[key])
    with connection.cursor() as cursor:
        cursor.execute(sql)
        rows = [list(row) for row in cursor.fetchall()]
    connection.close()
    return rows


# --- Redis ---------------------------------------------------------------------------------------


def _redis_options() -> tuple[str, dict[str, Any]]:
    url = urlsplit(settings()["REDIS_URL"])
    password = unquote(url.password or "")
    options: dict[str, Any] = {"password": password, "socket_timeout": 1, "socket_connect_timeout": 1}
    if url.scheme == "rediss":
        options.update(ssl=True, ssl_ca_certs=ca_file(), ssl_cert_reqs="required")
    return password, options


def redis_sentinel_watch(seconds: float) -> dict[str, Any]:
    """Ask the Sentinels (REDIS_SENTINELS) for the primary every 200 ms, and write through it.

    Returns every change of the primary the Sentinels announced with its time, and each write's
    outcome: what a Sentinel-aware client pool sees during a failover.
    """
    from redis.sentinel import Sentinel

    env = settings()
    _, options = _redis_options()
    nodes = [(host, int(port)) for host, port in (item.rsplit(":", 1) for item in env["REDIS_SENTINELS"].split(","))]
    sentinel = Sentinel(nodes, sentinel_kwargs=dict(options), **options)
    master_name = env["REDIS_SENTINEL_MASTER"]
    started = time.time()
    primaries: list[tuple[float, str]] = []
    writes: list[tuple[float, bool, str]] = []
    sequence = 0
    while time.time() - started < seconds:
        try:
            host, port = sentinel.discover_master(master_name)
            address = f"{host}:{port}"
            if not primaries or primaries[-1][1] != address:
                primaries.append((time.time(), address))
        except Exception as error:
            primaries.append((time.time(), f"error: {type(error).__name__}"))
        try:
            sequence += 1
            client = sentinel.master_for(master_name, **options)
            client.set(f"system-layer:{sequence}", str(time.time()))
            writes.append((time.time(), True, ""))
        except Exception as error:
            writes.append((time.time(), False, f"{type(error).__name__}: {error}"[:160]))
        time.sleep(0.2)
    return {"started": started, "primaries": primaries, "writes": writes}


# --- RabbitMQ ------------------------------------------------------------------------------------


def _amqp_parameters(url: str) -> Any:
    import pika

    parts = urlsplit(url)
    credentials = pika.PlainCredentials(unquote(parts.username or ""), unquote(parts.password or ""))
    options = None
    if parts.scheme == "amqps":
        context = ssl.create_default_context(cafile=ca_file())
        options = pika.SSLOptions(context, server_hostname=parts.hostname)
    return pika.ConnectionParameters(
        host=parts.hostname,
        port=parts.port or (5671 if parts.scheme == "amqps" else 5672),
        virtual_host=unquote(parts.path.lstrip("/")) or "/",
        credentials=credentials,
        ssl_options=options,
        connection_attempts=1,
        socket_timeout=5,
        blocked_connection_timeout=10,
    )


def _amqp_urls(skip: Sequence[str]) -> list[str]:
    urls = settings()["AMQP_URLS"].split(",")
    return [url for url in urls if not any(name in url for name in skip)]


def quorum_publish(queue: str, first: int, count: int, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Declare a quorum queue and publish `count` persistent messages with publisher confirms."""
    import pika

    url = _amqp_urls(skip)[0]
    connection = pika.BlockingConnection(_amqp_parameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    confirmed = []
    for number in range(first, first + count):
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=str(number).encode(),
            properties=pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )
        confirmed.append(number)  # basic_publish raises unless the broker confirmed it
    connection.close()
    return {"via": urlsplit(url).hostname, "confirmed": confirmed}


def quorum_consume(queue: str, skip: Sequence[str] = ()) -> dict[str, Any]:
    """Take every message off the queue (acknowledging each) until it is empty."""
    import pika

    url = _amqp_urls(skip)[0]
    connection = pika.BlockingConnection(_amqp_parameters(url))
    channel = connection.channel()
    received: list[int] = []
    while True:
        method, _, body = channel.basic_get(queue=queue, auto_ack=False)
        if method is None:
            break
        received.append(int(body))
        channel.basic_ack(method.delivery_tag)
    leader = channel.queue_declare(queue=queue, durable=True, passive=True)
    connection.close()
    return {"via": urlsplit(url).hostname, "received": received, "left": leader.method.message_count}


def main(argv: Sequence[str]) -> int:
    command, *args = argv
    result: Any
    if command == "mariadb-writer":
        result = mariadb_writer(float(args[0]), *(args[1:2]))
    elif command == "mariadb-query":
        result = mariadb_query(args[0], *(args[1:2]))
    elif command == "redis-sentinel-watch":
        result = redis_sentinel_watch(float(args[0]))
    elif command == "quorum-publish":
        result = quorum_publish(args[0], int(args[1]), int(args[2]), args[3:])
    elif command == "quorum-consume":
        result = quorum_consume(args[0], args[1:])
    else:
        raise SystemExit(f"unknown command {command}")
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
