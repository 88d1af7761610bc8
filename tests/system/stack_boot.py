"""Booting a stack's data tier and asking whether its clusters formed (shared by the test modules).

All of a stack's data VMs and its bastion boot on one private network, as Linode creates them:
node 0 of every cluster first (its cloud-init done before the others start), last (started
once its peers run their setup scripts), or together with them. Per cluster: every VM's
cloud-init `done` without errors, every unit its user data starts active, no traffic between
the cluster's own peers dropped by their Cloud Firewall, and the cluster healthy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.system.app_side import AppSide
from tests.system.checks import (
    EVIDENCE,
    TIMINGS,
    Fleet,
    cloud_init_report,
    enabled_units,
    failed_units,
    fleet,
    inactive_units,
)
from tests.system.clusters import (
    galera_status,
    rabbitmq_running_nodes,
    redis_cli,
    redis_info,
    replica_status,
    wait_until,
)
from tests.system.object_storage import LocalS3
from tests.system.program import stack_vms

# The boot orders run (comma separated). "together" is test_clusters.py's boot, which also runs
# the failover, backup and access scenarios; the others only form the clusters (test_boot_orders.py).
ORDERS = [o for o in os.environ.get("PLATFORM_INFRA_SYSTEM_ORDERS", "first,last,together").split(",") if o]
CLOUD_INIT_DEADLINE = float(os.environ.get("PLATFORM_INFRA_SYSTEM_DEADLINE", "450"))
HEALTHY_TIMEOUT = 120.0
ROLES = ("mariadb", "redis", "rabbitmq")
STACKS = ("staging", "prod")


@dataclass(frozen=True)
class StackBoot:
    stack: str
    order: str

    def labels(self, role: str) -> list[str]:
        return sorted(label for label, vm in stack_vms(self.stack).items() if vm.role == role)

    @property
    def bastion(self) -> str:
        return self.labels("bastion")[0]


def _boot(group: Fleet, boot: StackBoot) -> None:
    clusters = [boot.labels(role) for role in ROLES]
    first = [boot.bastion] + [labels[0] for labels in clusters]
    rest = [label for labels in clusters for label in labels[1:]]
    started = time.monotonic()
    deadline = started + CLOUD_INIT_DEADLINE
    if boot.order == "together":
        group.start(first + rest)
    elif boot.order == "first":
        group.start(first)
        group.wait(first, deadline)
        group.start(rest)
    elif boot.order == "last":
        group.start(rest)
        for label in rest:
            wait_until(group[label].setup_started, CLOUD_INIT_DEADLINE, f"{label} setup started", 3)
        group.start(first)
    else:
        raise ValueError(boot.order)
    group.wait(first + rest, deadline)
    TIMINGS[f"{group.name}: first start -> every cloud-init finished or given up"] = time.monotonic() - started
    group.boot_started = started  # type: ignore[attr-defined]


@contextlib.contextmanager
def booted_stack(boot: StackBoot) -> Iterator[Fleet]:
    """The stack's bastion and data VMs, booted in `boot.order`, with the local S3 its backup
    nodes' env files name on the network; torn down on exit."""
    vms = stack_vms(boot.stack)
    labels = [boot.bastion] + [label for role in ROLES for label in boot.labels(role)]
    chosen = [vms[label] for label in labels]
    s3 = LocalS3.for_vms(chosen)
    with fleet(f"pi{boot.stack[:2]}{boot.order[0]}", chosen, [s3] if s3 else []) as group:
        _boot(group, boot)
        yield group


@contextlib.contextmanager
def booted_with_app_side(boot: StackBoot) -> Iterator[tuple[Fleet, AppSide]]:
    """The booted stack and the application's side of its network (test_<stack>_stack.py)."""
    with booted_stack(boot) as group:
        app = AppSide(group, boot.stack)
        try:
            yield group, app
        finally:
            app.close()


def _healthy(role: str, group: Fleet, labels: list[str]) -> bool:
    nodes = [group[label] for label in labels]
    if role == "mariadb" and len(nodes) >= 3:
        return all(
            (s := galera_status(n)).get("wsrep_cluster_size") == str(len(nodes))
            and s.get("wsrep_cluster_status") == "Primary"
            and s.get("wsrep_ready") == "ON"
            for n in nodes
        )
    if role == "mariadb":
        status = replica_status(nodes[1])
        return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"
    if role == "redis":
        primary = redis_info(nodes[0])
        if primary.get("role") != "master" or int(primary.get("connected_slaves", "0")) != len(nodes) - 1:
            return False
        if len(nodes) >= 3:
            return all("OK" in redis_cli(n, "SENTINEL", "CKQUORUM", "platform", sentinel=True) for n in nodes)
        return True
    if role == "rabbitmq":
        return all(len(rabbitmq_running_nodes(n)) == len(nodes) for n in nodes)
    raise ValueError(role)


def check_cluster_formed(boot: StackBoot, group: Fleet, role: str) -> None:
    """cloud-init done without errors, every unit active, no peer traffic dropped, cluster healthy."""
    labels = boot.labels(role)
    drops = set().union(*(group.peer_drops(label) for label in labels))
    case = f"{boot.stack} {role} node0-{boot.order}"
    EVIDENCE[f"{case}: peer traffic dropped (peer, vm, port)"] = sorted(drops)
    finished = [group.cloud_init_seconds.get(label) for label in labels]
    if all(seconds is not None for seconds in finished):
        last = max(group[label].started_at + (group.cloud_init_seconds[label]) for label in labels)
        TIMINGS[f"{case}: first start -> every node's cloud-init done"] = last - group.boot_started  # type: ignore[attr-defined]
    assert drops == set(), f"the Cloud Firewall dropped the cluster's own traffic (peer, vm, port): {sorted(drops)}"
    healthy: str | None = None
    try:
        wait_until(lambda: _healthy(role, group, labels), HEALTHY_TIMEOUT, f"{boot.stack} {role} healthy", 5)
        TIMINGS[f"{case}: first start -> cluster healthy (first check after the fleet's wait)"] = (
            time.monotonic() - group.boot_started  # type: ignore[attr-defined]
        )
    except TimeoutError as error:
        healthy = str(error)
    problems: dict[str, dict[str, object]] = {}
    for label in labels:
        if label not in group.cloud_init_seconds:
            problems[label] = {"cloud-init": f"not finished within {CLOUD_INIT_DEADLINE}s"}
            continue
        report = cloud_init_report(group[label])
        inactive = inactive_units(group[label], enabled_units(group[label].vm.user_data))
        failed = failed_units(group[label])
        if report.status != "done" or report.errors or inactive or failed:
            problems[label] = {"status": report.status, "errors": report.errors, "inactive": inactive, "failed": failed}
    for label in labels:
        if label in problems:  # what the operator would look at first
            problems[label]["journal"] = (
                group[label]
                .run(
                    "journalctl --no-pager -o cat -u mariadb -u redis-server -u redis-sentinel -u rabbitmq-server"
                    " | grep -E -i 'WSREP: (Connecting|No nodes|Failed)|error|refused' | tail -n 6",
                    check=False,
                )
                .stdout
            )
    EVIDENCE[f"{case}: problems"] = problems
    EVIDENCE[f"{case}: healthy"] = healthy or "yes"
    assert problems == {}, problems
    assert healthy is None, healthy
