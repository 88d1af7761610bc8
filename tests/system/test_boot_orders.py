"""Staging's and prod's clusters form whatever order their VMs boot in.

Linode creates a cluster's VMs in parallel and nothing orders their boots, so each cluster is booted
with its node 0 first (its cloud-init done before its peers start), last (started once every peer
runs its setup script) and, in test_prod_stack.py / test_staging_stack.py, together with them.
PLATFORM_INFRA_SYSTEM_ORDERS narrows the orders (e.g. "together" alone for a quick local run).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.checks import Fleet
from tests.system.stack_boot import ORDERS, ROLES, STACKS, StackBoot, booted_stack, check_cluster_formed

BOOTS = [StackBoot(stack, order) for stack in STACKS for order in ORDERS if order != "together"]


@pytest.fixture(scope="module", params=BOOTS, ids=lambda boot: f"{boot.stack}-node0-{boot.order}")
def booted(request: pytest.FixtureRequest) -> Iterator[tuple[StackBoot, Fleet]]:
    with booted_stack(request.param) as group:
        yield request.param, group


@pytest.mark.parametrize("role", ROLES)
def test_cluster_forms_whatever_order_its_nodes_boot_in(booted: tuple[StackBoot, Fleet], role: str) -> None:
    boot, group = booted
    check_cluster_formed(boot, group, role)
