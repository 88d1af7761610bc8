"""Health of the data clusters, asked the way an operator would, inside the booted VMs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from tests.system.machine import Container


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 2) -> float:
    started = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception as error:  # the VM may still be starting the service
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout}s ({last_error})")


# --- MariaDB -----------------------------------------------------------------------------------


def mariadb(container: Container, sql: str) -> str:
    return container.run(f"mariadb -N -B -e {json.dumps(sql)}").stdout


def galera_status(container: Container) -> dict[str, str]:
    out = mariadb(container, "SHOW GLOBAL STATUS LIKE 'wsrep_%'")
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def replica_status(container: Container) -> dict[str, str]:
    out = container.run("mariadb -e 'SHOW REPLICA STATUS\\G'").stdout
    return dict((m.group(1), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+): ?(.*)$", out, re.M))


# --- Redis ---------------------------------------------------------------------------------------


def _redis_conf(container: Container, path: str) -> dict[str, str]:
    text = container.run(f"cat {path}").stdout
    conf: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and " " in line:
            key, value = line.split(" ", 1)
            conf.setdefault(key, value.strip().strip('"'))
    return conf


def redis_cli(container: Container, *args: str, sentinel: bool = False) -> str:
    conf = _redis_conf(container, "/etc/redis/sentinel.conf" if sentinel else "/etc/redis/redis.conf")
    tls = conf.get("port") == "0"
    port = conf["tls-port"] if tls else conf["port"]
    cmd = ["redis-cli", "-h", container.vm.address, "-p", port, "--no-auth-warning"]
    if tls:
        cmd += ["--tls", "--cacert", conf["tls-ca-cert-file"]]
    if "requirepass" in conf:
        cmd += ["-a", conf["requirepass"]]
    return container.run(" ".join(json.dumps(c) for c in [*cmd, *args])).stdout


def redis_info(container: Container, section: str = "replication") -> dict[str, str]:
    out = redis_cli(container, "INFO", section)
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


# --- RabbitMQ ------------------------------------------------------------------------------------


def rabbitmq_running_nodes(container: Container) -> list[str]:
    out = container.run("rabbitmqctl cluster_status --formatter json", timeout=60).stdout
    return list(json.loads(out).get("running_nodes") or [])
