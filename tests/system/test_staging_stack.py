"""Staging's bastion and data tier (MariaDB primary + replica, Redis primary + replica, two RabbitMQ
nodes, TLS on every path) booted together from their complete user data, then used the way the
application and the operators use them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system import backup_scenarios, scenarios
from tests.system.app_side import AppSide
from tests.system.checks import EVIDENCE, Fleet
from tests.system.stack_boot import ROLES, StackBoot, booted_with_app_side, check_cluster_formed

BOOT = StackBoot("staging", "together")


@pytest.fixture(scope="module")
def staging() -> Iterator[tuple[Fleet, AppSide]]:
    with booted_with_app_side(BOOT) as booted:
        yield booted


@pytest.mark.parametrize("role", ROLES)
def test_cluster_boots_and_forms(staging: tuple[Fleet, AppSide], role: str) -> None:
    check_cluster_formed(BOOT, staging[0], role)


def test_every_exporter_answers_from_the_app_side_with_real_metrics(staging: tuple[Fleet, AppSide]) -> None:
    assert scenarios.exporter_failures(staging[0]) == {}


def test_ssh_through_the_bastion_reaches_each_data_vm_and_passwords_are_refused(staging: tuple[Fleet, AppSide]) -> None:
    scenarios.check_operator_access(staging[0], BOOT.bastion, [BOOT.labels(role)[0] for role in ROLES])


def test_the_replica_follows_its_primary(staging: tuple[Fleet, AppSide]) -> None:
    group, app = staging
    result = scenarios.replica_lag(app, group, BOOT.labels("mariadb")[1])
    EVIDENCE["staging mariadb replica"] = result
    scenarios.record("staging mariadb: replica holds every row written through DATABASE_URL", result["caught_up_s"])
    assert result["rows"] > 10
    assert result["caught_up_s"] < 10


def test_every_backup_job_reaches_the_local_s3_and_the_restore_verification_passes(
    staging: tuple[Fleet, AppSide],
) -> None:
    group, app = staging
    report = backup_scenarios.backups_reach_the_bucket(app, group, BOOT.stack)
    backup_scenarios.check_backups(report)


def test_a_point_in_time_restore_to_a_chosen_moment_brings_back_what_a_delete_destroyed(
    staging: tuple[Fleet, AppSide],
) -> None:
    group, app = staging
    result = backup_scenarios.point_in_time_restore(app, group, BOOT.stack)
    backup_scenarios.check_point_in_time_restore(result)
