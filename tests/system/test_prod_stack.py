"""Prod's bastion and data tier (3-node Galera behind the database proxy, Redis primary + 2 replicas
with Sentinel, 3-node RabbitMQ, TLS on every path) booted together from their complete user data,
then used the way the application and the operators use them, backed up to the local S3 and
restored to a moment, and broken one node at a time.

The failover tests power a node off for good, so they come last, in the order written (the
backups and the point-in-time restore run before them, on Galera node 1).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.data.mariadb.config import GALERA_HEALTH_PORT
from tests.system import backup_scenarios, scenarios
from tests.system.app_side import AppSide
from tests.system.checks import EVIDENCE, Fleet
from tests.system.clusters import galera_status, mariadb, wait_until
from tests.system.stack_boot import ROLES, StackBoot, booted_with_app_side, check_cluster_formed

BOOT = StackBoot("prod", "together")


@pytest.fixture(scope="module")
def prod() -> Iterator[tuple[Fleet, AppSide]]:
    with booted_with_app_side(BOOT) as booted:
        yield booted


@pytest.mark.parametrize("role", ROLES)
def test_cluster_boots_and_forms(prod: tuple[Fleet, AppSide], role: str) -> None:
    check_cluster_formed(BOOT, prod[0], role)


def test_every_exporter_answers_from_the_app_side_with_real_metrics(prod: tuple[Fleet, AppSide]) -> None:
    assert scenarios.exporter_failures(prod[0]) == {}


def test_ssh_through_the_bastion_reaches_each_data_vm_and_passwords_are_refused(prod: tuple[Fleet, AppSide]) -> None:
    scenarios.check_operator_access(prod[0], BOOT.bastion, [BOOT.labels(role)[0] for role in ROLES])


def test_a_galera_node_tells_the_proxy_it_is_unfit_while_desynced(prod: tuple[Fleet, AppSide]) -> None:
    group = prod[0]
    node = BOOT.labels("mariadb")[2]
    healthy = scenarios.galera_health_from_the_app_side(group, node, GALERA_HEALTH_PORT)
    mariadb(group[node], "SET GLOBAL wsrep_desync=ON")
    try:
        desynced = scenarios.galera_health_from_the_app_side(group, node, GALERA_HEALTH_PORT)
    finally:
        mariadb(group[node], "SET GLOBAL wsrep_desync=OFF")
    wait_until(lambda: galera_status(group[node]).get("wsrep_local_state") == "4", 30, "node synced again", 1)
    again = scenarios.galera_health_from_the_app_side(group, node, GALERA_HEALTH_PORT)
    assert (healthy, desynced, again) == (200, 503, 200)


def test_every_backup_job_reaches_the_local_s3_and_the_restore_verification_passes(
    prod: tuple[Fleet, AppSide],
) -> None:
    group, app = prod
    with scenarios.database_proxy(app):
        report = backup_scenarios.backups_reach_the_bucket(app, group, BOOT.stack)
    backup_scenarios.check_backups(report)


def test_a_point_in_time_restore_to_a_chosen_moment_brings_back_what_a_delete_destroyed(
    prod: tuple[Fleet, AppSide],
) -> None:
    group, app = prod
    with scenarios.database_proxy(app):
        result = backup_scenarios.point_in_time_restore(app, group, BOOT.stack)
    backup_scenarios.check_point_in_time_restore(result)


def test_clients_keep_writing_through_the_database_proxy_while_galera_node_0_powers_off(
    prod: tuple[Fleet, AppSide],
) -> None:
    group, app = prod
    with scenarios.database_proxy(app) as proxy:
        assert proxy is not None, "prod's Galera clients should dial the database proxy"
        result = scenarios.galera_failover_through_proxy(app, group, BOOT.labels("mariadb"))
    EVIDENCE["prod galera failover through the proxy"] = result
    scenarios.record("prod galera: longest write gap after node 0 powered off", result["longest_gap"])
    assert result["lost"] == [], "acknowledged writes missing from the surviving nodes"
    assert result["nodes_before"] == [BOOT.labels("mariadb")[0]], "the proxy should send writes to node 0 first"
    assert result["acknowledged_after_stop"] > 50, result
    assert BOOT.labels("mariadb")[0] not in result["nodes_after_exit"]
    assert result["longest_gap"] < 15, result


def test_sentinel_promotes_a_replica_within_10_s_and_clients_follow(prod: tuple[Fleet, AppSide]) -> None:
    group, app = prod
    result = scenarios.sentinel_failover(app, group, BOOT.labels("redis"))
    EVIDENCE["prod redis sentinel failover"] = result
    assert result["promoted_after_s"] is not None, result
    scenarios.record("prod redis: primary powered off -> Sentinel announces a new primary", result["promoted_after_s"])
    scenarios.record("prod redis: container stopped -> new primary announced", result["promoted_after_exit_s"])
    assert result["promoted_after_exit_s"] < 10, result
    assert result["first_write_after_s"] is not None and result["first_write_after_s"] < 12, result


def test_a_quorum_queue_loses_no_message_with_a_node_stopped(prod: tuple[Fleet, AppSide]) -> None:
    group, app = prod
    result = scenarios.quorum_queue_with_node_stopped(app, group, BOOT.labels("rabbitmq"))
    EVIDENCE["prod rabbitmq quorum queue"] = result
    assert result["lost"] == [] and result["confirmed"] == 600, result
    assert result["left"] == 0
