"""What the operators and the application do with a booted stack, as checks the stack modules share."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from tests.system.app_side import AppSide
from tests.system.checks import EVIDENCE, TIMINGS, Fleet, scrape, tcp_open
from tests.system.clusters import galera_status, mariadb, wait_until
from tests.system.machine import sh
from tests.system.program import config_map_file, layer_ssh_key

# Every exporter a data VM runs, with a sample that only a working exporter produces.
EXPORTERS: dict[str, list[tuple[int, str]]] = {
    "mariadb": [(9100, "node_systemd_unit_state"), (9104, "mysql_up 1")],
    "redis": [(9100, "node_systemd_unit_state"), (9121, "redis_up 1")],
    "rabbitmq": [(9100, "node_systemd_unit_state"), (15692, "rabbitmq_identity_info")],
}


def exporter_failures(group: Fleet) -> dict[str, str]:
    """Scrape every exporter of every data VM from the app subnet's side, as Prometheus does."""
    failures: dict[str, str] = {}
    for label, container in group.containers.items():
        vm = container.vm
        for port, expected in EXPORTERS.get(vm.role, []):
            # dev and staging pods reach the data VMs over Linode's private network, prod's over the VPC.
            address = vm.private_address or vm.address
            try:
                text = scrape(group.lan.client, address, port, group.sources["app"])
            except RuntimeError as error:
                failures[f"{label}:{port}"] = str(error)[-300:]
                continue
            if expected not in text:
                failures[f"{label}:{port}"] = f"no {expected!r} in {text[-300:]!r}"
    return failures


def ssh(group: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """ssh from the admins' address, with the layer's test key, as an operator would."""
    key, _ = layer_ssh_key()
    config = key.parent / f"config-{group.name}"
    config.write_text(
        "Host *\n"
        f"  IdentityFile {key}\n  IdentitiesOnly yes\n  BindAddress {group.sources['admin']}\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        "  ConnectTimeout 10\n  BatchMode yes\n"
    )
    return subprocess.run(
        ["ip", "netns", "exec", group.lan.client, "ssh", "-F", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def ssh_through_bastion(group: Fleet, bastion: str, target: str) -> subprocess.CompletedProcess[str]:
    """`ssh -J ops@bastion ops@target hostname`, retried twice: the first login right after boot
    has been seen to race the target's sshd restart by cloud-init (kept as evidence)."""
    result = ssh(group, "-J", f"ops@{group[bastion].vm.address}", f"ops@{group[target].vm.address}", "hostname")
    for _ in range(2):
        if result.returncode == 0:
            break
        retries = EVIDENCE.setdefault(f"{group.name}: ssh -J retried", [])
        assert isinstance(retries, list)
        retries.append(result.stderr[-300:])
        time.sleep(5)
        result = ssh(group, "-J", f"ops@{group[bastion].vm.address}", f"ops@{group[target].vm.address}", "hostname")
    return result


def check_operator_access(group: Fleet, bastion: str, targets: list[str]) -> None:
    """`ssh -J` through the bastion reaches each target (its hostname answers); passwords are refused."""
    for target in targets:
        result = ssh_through_bastion(group, bastion, target)
        assert (result.returncode, result.stdout.strip()) == (0, target), result.stderr
    refused = password_login(group, bastion)
    assert refused.returncode == 255
    assert "Permission denied (publickey)" in refused.stderr, refused.stderr


def password_login(group: Fleet, bastion: str) -> subprocess.CompletedProcess[str]:
    return ssh(
        group,
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
        f"ops@{group[bastion].vm.address}",
        "true",
    )


# --- failover ------------------------------------------------------------------------------------


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch in [start, end] without a successful operation."""
    points = sorted([start, *[t for t in times if start <= t <= end], end])
    return max(b - a for a, b in itertools.pairwise(points))


def galera_failover_through_proxy(
    app: AppSide, group: Fleet, labels: list[str], stop_after: float = 8
) -> dict[str, Any]:
    """Keep writing through the database proxy (DATABASE_URL) while node 0's VM powers off."""
    writer = app.start("mariadb-writer", "40")
    time.sleep(stop_after)
    stopped_at = time.time()
    group[labels[0]].stop()
    exited_at = time.time()
    result: dict[str, Any] = app.collect(writer)
    acknowledged = [(int(i), float(t), str(node)) for i, t, node in result["acknowledged"]]
    survivor = group[labels[1]]
    wait_until(lambda: galera_status(survivor).get("wsrep_cluster_size") == str(len(labels) - 1), 60, "cluster shrank")
    stored = {int(x) for x in mariadb(survivor, f"SELECT id FROM {app_database(app)}.system_layer_writes").split()}
    after = [t for _, t, _ in acknowledged if t > stopped_at]
    return {
        "stopped_at": stopped_at,
        "acknowledged": len(acknowledged),
        "acknowledged_after_stop": len(after),
        "lost": sorted({i for i, _, _ in acknowledged} - stored),
        "nodes_before": sorted({n for _, t, n in acknowledged if t <= stopped_at}),
        "container_exit_s": exited_at - stopped_at,
        "nodes_after_exit": sorted({n for _, t, n in acknowledged if t > exited_at}),
        "longest_gap": longest_gap([t for _, t, _ in acknowledged], stopped_at - 1, stopped_at + 25),
        "errors": len(result["errors"]),
        "first_errors": result["errors"][:3],
    }


def galera_health_from_the_app_side(group: Fleet, label: str, port: int) -> int:
    """The HTTP status a node's Galera health check gives the proxy (from the app subnet)."""
    vm = group[label].vm
    out = sh(
        "ip",
        "netns",
        "exec",
        group.lan.client,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "--interface",
        group.sources["app"],
        f"http://{vm.private_address or vm.address}:{port}/",
        check=False,
    )
    return int(out or 0)


def app_database(app: AppSide, key: str = "DATABASE_URL") -> str:
    return urlsplit(app.settings[key]).path.lstrip("/")


def start_database_proxy(app: AppSide, config: str) -> subprocess.Popen[bytes]:
    """The proxy the pods use, run from the haproxy.cfg the program ships, where the pods dial it."""
    path = app.workdir / "haproxy.cfg"
    path.write_text(config)
    host = urlsplit(app.settings["DATABASE_URL"]).hostname
    assert host is not None
    app.add_name(host, "127.0.0.1")
    proxy = app.background(["haproxy", "-db", "-f", str(path)], "haproxy.log")
    port = urlsplit(app.settings["DATABASE_URL"]).port or 3306
    wait_until(lambda: tcp_open(app.fleet.lan.client, "127.0.0.1", port), 30, "database proxy listening", 1)
    return proxy


@contextlib.contextmanager
def database_proxy(app: AppSide) -> Iterator[subprocess.Popen[bytes] | None]:
    """The database proxy for the length of a scenario, when the program ships one (then
    DATABASE_URL dials it); gone (its port free) afterwards. None when DATABASE_URL dials a node."""
    try:
        config = config_map_file(app.stack, "haproxy.cfg")
    except LookupError:
        yield None
        return
    proxy = start_database_proxy(app, config)
    try:
        yield proxy
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        proxy.wait(timeout=30)


def sentinel_failover(app: AppSide, group: Fleet, labels: list[str]) -> dict[str, Any]:
    """Watch the primary through the Sentinels (REDIS_SENTINELS) while node 0, the primary, powers off."""
    watcher = app.start("redis-sentinel-watch", "30")
    time.sleep(6)
    stopped_at = time.time()
    group[labels[0]].stop()
    exited_at = time.time()
    result: dict[str, Any] = app.collect(watcher)
    before = [address for t, address in result["primaries"] if t <= stopped_at]
    after = [(t, address) for t, address in result["primaries"] if t > stopped_at and not address.startswith("error")]
    promoted = [(t, address) for t, address in after if before and address != before[-1]]
    writes_ok = [t for t, ok, _ in result["writes"] if ok and t > stopped_at]
    return {
        "primary_before": before[-1] if before else None,
        "primary_after": promoted[0][1] if promoted else None,
        "promoted_after_s": promoted[0][0] - stopped_at if promoted else None,
        "promoted_after_exit_s": promoted[0][0] - exited_at if promoted else None,
        "container_exit_s": exited_at - stopped_at,
        "first_write_after_s": writes_ok[0] - stopped_at if writes_ok else None,
        "failed_writes": [w for w in result["writes"] if not w[1]][:3],
    }


def quorum_queue_with_node_stopped(app: AppSide, group: Fleet, labels: list[str]) -> dict[str, Any]:
    """Publish with confirms via node 0 (the queue's leader), power node 0 off, publish more
    via the others, then drain the queue: every confirmed message must come back."""
    queue = "system-layer-quorum"
    first = app.run("quorum-publish", queue, "0", "300")
    group[labels[0]].stop()
    second = app.run("quorum-publish", queue, "300", "300", labels[0], timeout=180)
    drained = app.run("quorum-consume", queue, labels[0], timeout=180)
    confirmed = set(first["confirmed"]) | set(second["confirmed"])
    received = drained["received"]
    return {
        "first_via": first["via"],
        "second_via": second["via"],
        "confirmed": len(confirmed),
        "received": len(received),
        "lost": sorted(confirmed - set(received))[:20],
        "duplicates": len(received) - len(set(received)),
        "left": drained["left"],
    }


def replica_lag(app: AppSide, group: Fleet, replica: str) -> dict[str, Any]:
    """Write through DATABASE_URL (the primary) and wait until the replica holds every row."""
    result = app.run("mariadb-writer", "3")
    ids = {int(i) for i, _, _ in result["acknowledged"]}
    table = f"{app_database(app)}.system_layer_writes"

    def caught_up() -> bool:
        rows = mariadb(group[replica], f"SELECT id FROM {table}").split()
        return ids <= {int(x) for x in rows}

    seconds = wait_until(caught_up, 30, "replica caught up", 0.5)
    return {"rows": len(ids), "caught_up_s": seconds}


def record(name: str, value: float) -> None:
    TIMINGS[name] = value
