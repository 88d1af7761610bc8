"""Staging's and prod's data clusters, booted from their complete user data in every boot order.

prod: 3-node Galera, Redis primary + 2 replicas with Sentinel, 3-node RabbitMQ (TLS on).
staging: MariaDB primary + replica, Redis primary + replica, 2-node RabbitMQ (TLS on).
Node 0 boots first, last, or together with its peers (Linode creates them in parallel, so no
order is promised). Each cluster's VMs must finish cloud-init without errors with every unit
the user data starts active, and the cluster must be healthy within CLUSTER_TIMEOUT.

Known defects of the rendered configuration are xfail(strict=True): the day they are fixed the
test turns XPASS and fails, so the mark has to go with the fix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.system.checks import (
    TIMINGS,
    cloud_init_report,
    enabled_units,
    failed_units,
    fleet,
    inactive_units,
)
from tests.system.clusters import (
    ORDERS,
    boot_in_order,
    galera_status,
    rabbitmq_running_nodes,
    redis_cli,
    redis_info,
    replica_status,
    wait_until,
)
from tests.system.program import stack_vms

CLUSTER_TIMEOUT = 300.0


@dataclass(frozen=True)
class Cluster:
    stack: str
    role: str
    nodes: int

    @property
    def labels(self) -> list[str]:
        return [f"platform-infra-{self.stack}-{self.role}-{i}" for i in range(self.nodes)]


CLUSTERS = [
    Cluster("prod", "mariadb", 3),
    Cluster("prod", "redis", 3),
    Cluster("prod", "rabbitmq", 3),
    Cluster("staging", "mariadb", 2),
    Cluster("staging", "redis", 2),
    Cluster("staging", "rabbitmq", 2),
]

# Defects found by this layer (see tests/system/README.md, "Known defects"). Keyed by
# (stack, role, order); "*" matches every order.
KNOWN_DEFECTS: dict[tuple[str, str, str], str] = {}


def _known(cluster: Cluster, order: str) -> str | None:
    return KNOWN_DEFECTS.get((cluster.stack, cluster.role, order)) or KNOWN_DEFECTS.get(
        (cluster.stack, cluster.role, "*")
    )


def _cases() -> list[object]:
    cases = []
    for cluster in CLUSTERS:
        for order in ORDERS:
            reason = _known(cluster, order)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(cluster, order, id=f"{cluster.stack}-{cluster.role}-node0-{order}", marks=marks))
    return cases


def _healthy(cluster: Cluster, group: object) -> bool:
    nodes = [group[label] for label in cluster.labels]  # type: ignore[index]
    if cluster.role == "mariadb" and cluster.stack == "prod":
        return all(
            (s := galera_status(n)).get("wsrep_cluster_size") == str(cluster.nodes)
            and s.get("wsrep_cluster_status") == "Primary"
            and s.get("wsrep_ready") == "ON"
            for n in nodes
        )
    if cluster.role == "mariadb":
        status = replica_status(nodes[1])
        return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"
    if cluster.role == "redis":
        primary = redis_info(nodes[0])
        if primary.get("role") != "master" or int(primary.get("connected_slaves", "0")) != cluster.nodes - 1:
            return False
        if cluster.nodes >= 3:
            return all("OK" in redis_cli(n, "SENTINEL", "CKQUORUM", "platform", sentinel=True) for n in nodes)
        return True
    if cluster.role == "rabbitmq":
        return all(len(rabbitmq_running_nodes(n)) == cluster.nodes for n in nodes)
    raise ValueError(cluster.role)


@pytest.mark.parametrize(("cluster", "order"), _cases())
def test_cluster_forms_in_any_boot_order(cluster: Cluster, order: str) -> None:
    vms = stack_vms(cluster.stack)
    name = f"pi{cluster.stack[0]}{cluster.role[:2]}{order[0]}"
    with fleet(name, [vms[label] for label in cluster.labels]) as group:
        started = time.monotonic()
        boot_in_order(group, cluster.labels, order)
        problems = {}
        for label in cluster.labels:
            report = cloud_init_report(group[label])
            units = enabled_units(group[label].vm.user_data)
            inactive = inactive_units(group[label], units)
            failed = failed_units(group[label])
            if report.status != "done" or report.errors or inactive or failed:
                problems[label] = {
                    "status": report.status,
                    "errors": report.errors,
                    "inactive": inactive,
                    "failed": failed,
                }
        healthy_after = wait_until(lambda: _healthy(cluster, group), CLUSTER_TIMEOUT, f"{name} healthy", 5)
        total = time.monotonic() - started
        TIMINGS[f"{cluster.stack} {cluster.role} node0-{order}: first start -> cluster healthy"] = total
        del healthy_after
        assert problems == {}, problems
