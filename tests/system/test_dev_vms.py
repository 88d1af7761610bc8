"""Every VM of the dev stack, booted from its complete user data: cloud-init done, no errors,
every unit it enables active, and only what its Cloud Firewall admits reaches it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system import scenarios
from tests.system.checks import (
    Fleet,
    cloud_init_report,
    enabled_units,
    failed_units,
    fleet,
    inactive_units,
    tcp_open,
)
from tests.system.program import stack_vms

STACK = "dev"
LABELS = [
    "platform-infra-dev-bastion-0",
    "platform-infra-dev-mariadb-0",
    "platform-infra-dev-redis-0",
    "platform-infra-dev-rabbitmq-0",
]


@pytest.fixture(scope="module")
def dev() -> Iterator[Fleet]:
    vms = stack_vms(STACK)
    with fleet("pidev", [vms[label] for label in LABELS]) as group:
        group.boot(LABELS)
        yield group


@pytest.mark.parametrize("label", LABELS)
def test_cloud_init_finishes_without_errors(dev: Fleet, label: str) -> None:
    report = cloud_init_report(dev[label])
    assert report.status == "done", report.long
    assert report.errors == [], report.errors


@pytest.mark.parametrize("label", LABELS)
def test_cloud_init_logs_no_warnings(dev: Fleet, label: str) -> None:
    report = cloud_init_report(dev[label])
    assert report.warnings == [], "\n".join(report.warnings)


@pytest.mark.parametrize("label", LABELS)
def test_every_unit_the_user_data_starts_is_active(dev: Fleet, label: str) -> None:
    container = dev[label]
    units = enabled_units(container.vm.user_data)
    assert units, "the user data starts no unit?"
    assert inactive_units(container, units) == {}
    assert failed_units(container) == {}


def test_bastion_takes_ssh_from_the_admins_only(dev: Fleet) -> None:
    bastion = dev["platform-infra-dev-bastion-0"]
    assert tcp_open(dev.lan.client, bastion.vm.address, 22, source=dev.sources["admin"])
    assert not tcp_open(dev.lan.client, bastion.vm.address, 22, timeout=2, source=dev.sources["app"])


def test_data_vm_ssh_is_closed_to_everyone_but_the_bastion(dev: Fleet) -> None:
    mariadb = dev["platform-infra-dev-mariadb-0"]
    assert not tcp_open(dev.lan.client, mariadb.vm.address, 22, timeout=2, source=dev.sources["admin"])
    assert not tcp_open(dev.lan.client, mariadb.vm.address, 22, timeout=2, source=dev.sources["app"])
    bastion = dev["platform-infra-dev-bastion-0"]
    probe = bastion.run(f"timeout 3 bash -c '</dev/tcp/{mariadb.vm.address}/22'", check=False)
    assert probe.returncode == 0, "the bastion cannot reach the data VM's ssh"


def test_every_exporter_answers_from_the_app_side_with_real_metrics(dev: Fleet) -> None:
    assert scenarios.exporter_failures(dev) == {}


def test_ssh_through_the_bastion_reaches_a_data_vm(dev: Fleet) -> None:
    target = "platform-infra-dev-mariadb-0"
    result = scenarios.ssh_through_bastion(dev, "platform-infra-dev-bastion-0", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == target


def test_password_login_is_refused(dev: Fleet) -> None:
    result = scenarios.password_login(dev, "platform-infra-dev-bastion-0")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr
