"""Health of the data clusters, asked the way an operator would, inside the booted VMs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence

from tests.system.checks import Fleet
from tests.system.machine import Container

ORDERS = ("first", "last", "together")  # node 0 boots first / last / all VMs at the same moment


def boot_in_order(group: Fleet, labels: Sequence[str], order: str) -> None:
    """Boot a cluster's VMs with node 0 first, last, or together; wait for every cloud-init."""
    first, rest = labels[0], list(labels[1:])
    if order == "together":
        group.boot(labels)
    elif order == "first":
        group.boot([first])
        group.boot(rest)
    elif order == "last":
        group.boot(rest, wait=False)
        # Node 0 comes up while its peers already run their setup scripts (Linode gives no order).
        for label in rest:
            wait_until(lambda c=group[label]: _setup_running_or_done(c), 900, f"{label} setup started")
        group.boot([first])
        for label in rest:
            group[label].wait_for_cloud_init()
    else:
        raise ValueError(order)


def _setup_running_or_done(container: Container) -> bool:
    probe = container.run(
        "pgrep -f '/usr/local/lib/platform/.*-setup.sh' >/dev/null || test -e /run/cloud-init/result.json",
        check=False,
    )
    return probe.returncode == 0


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
