"""Foundation settings: every bad value stops with one message naming key, value and what is allowed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.linode.catalog import IMAGES, PLANS, VPC_REGIONS
from components.settings import SettingsError, StackSettings, load_settings
from components.settings.environment import STACK_NAME_ALLOWED
from tests.helpers import STACKS
from tools.offline import PROJECT, stack_values


def load(stack: str, **changes: Any) -> StackSettings:
    values = stack_values(stack)
    for key, value in changes.items():
        values[key] = value if isinstance(value, str) else json.dumps(value)
    return load_settings(PROJECT, stack, values)


def error_of(stack: str, **changes: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        load(stack, **changes)
    return str(caught.value)


def network(stack: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads(stack_values(stack)["network"]))


REGIONS = ", ".join(sorted(VPC_REGIONS))


@pytest.mark.parametrize("stack", STACKS)
def test_each_real_stack_file_loads(stack: str) -> None:
    settings = load(stack)
    assert settings.stack == stack
    assert settings.project == PROJECT
    assert settings.instance_count() <= settings.max_instances


def test_unknown_region_names_key_value_and_allowed_regions() -> None:
    assert error_of("dev", region="mars-1") == (
        f"platform-infra:region: got 'mars-1'; allowed: a Linode region with VPC support: {REGIONS}"
    )


def test_missing_region_is_reported_as_missing() -> None:
    values = stack_values("dev")
    del values["region"]
    with pytest.raises(SettingsError) as caught:
        load_settings(PROJECT, "dev", values)
    assert str(caught.value) == (
        f"platform-infra:region: missing; allowed: a Linode region with VPC support: {REGIONS}"
    )


def test_unknown_plan_lists_real_plan_ids() -> None:
    assert error_of("staging", bastion={"plan": "g6-huge-99"}) == (
        "platform-infra:bastion.plan: got 'g6-huge-99'; allowed: a Linode plan id, one of "
        + ", ".join(sorted(PLANS))
    )


def test_cidr_with_bad_prefix_is_refused() -> None:
    net = network("dev")
    net["vpc_cidr"] = "10.10.0.0/33"
    assert error_of("dev", network=net) == (
        "platform-infra:network.vpc_cidr: got '10.10.0.0/33'; "
        "allowed: a CIDR with no host bits set, such as 10.20.0.0/16"
    )


def test_public_vpc_range_is_refused() -> None:
    net = network("dev")
    net["vpc_cidr"] = "8.8.0.0/16"
    assert error_of("dev", network=net) == (
        "platform-infra:network.vpc_cidr: got '8.8.0.0/16'; allowed: a private (RFC 1918) range: "
        "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
    )


def test_vpc_inside_linode_reserved_range_is_refused() -> None:
    net = {
        "vpc_cidr": "192.168.128.0/18",
        "subnets": {"admin": "192.168.128.0/24", "data": "192.168.129.0/24", "app": "192.168.130.0/24"},
    }
    assert error_of("dev", network=net) == (
        "platform-infra:network.vpc_cidr: got '192.168.128.0/18'; allowed: a range outside "
        "192.168.128.0/17, which Linode reserves for its private network and LKE"
    )


def test_overlapping_subnets_are_refused() -> None:
    net = network("dev")
    net["subnets"]["app"] = "10.10.1.0/24"
    message = error_of("dev", network=net)
    assert message == (
        "platform-infra:network.subnets: got "
        + json.dumps(net["subnets"])
        + "; allowed: subnets that do not overlap; data 10.10.1.0/24 overlaps app 10.10.1.0/24"
    )


def test_subnet_outside_the_vpc_is_refused() -> None:
    net = network("dev")
    net["subnets"]["app"] = "10.99.2.0/24"
    assert error_of("dev", network=net) == (
        "platform-infra:network.subnets.app: got '10.99.2.0/24'; allowed: a subnet inside vpc_cidr 10.10.0.0/16"
    )


def test_missing_tier_subnet_is_refused() -> None:
    net = network("dev")
    del net["subnets"]["admin"]
    assert error_of("dev", network=net) == (
        "platform-infra:network.subnets: got "
        + json.dumps(net["subnets"])
        + "; allowed: one subnet for each tier admin, data, app; missing admin"
    )


def test_data_subnet_too_small_for_the_address_plan_is_refused() -> None:
    net = network("dev")
    net["subnets"]["data"] = "10.10.1.0/27"
    assert error_of("dev", network=net) == (
        "platform-infra:network.subnets: got "
        + json.dumps(net["subnets"])
        + "; allowed: the data subnet at /26 or larger (it holds the MariaDB, Redis and RabbitMQ blocks); "
        "got 10.10.1.0/27"
    )


def test_world_open_admin_access_is_refused_in_prod() -> None:
    assert error_of("prod", admin_cidrs=["0.0.0.0/0"]) == (
        "platform-infra:admin_cidrs: got '0.0.0.0/0'; allowed: specific operator CIDRs; "
        "0.0.0.0/0 and ::/0 are refused in a production environment"
    )
    assert "::/0" in error_of("prod", admin_cidrs=["::/0"])


def test_world_open_admin_access_is_possible_in_dev() -> None:
    assert [str(c) for c in load("dev", admin_cidrs=["0.0.0.0/0"]).admin_cidrs] == ["0.0.0.0/0"]


def test_admin_cidr_that_does_not_parse_is_refused() -> None:
    assert error_of("staging", admin_cidrs=["not-a-cidr"]) == (
        "platform-infra:admin_cidrs.0: got 'not-a-cidr'; allowed: a CIDR with no host bits set, such as 10.20.0.0/16"
    )


def test_private_key_pasted_as_ssh_key_is_refused() -> None:
    message = error_of("dev", ssh_keys=["-----BEGIN OPENSSH PRIVATE KEY----- abc"])
    assert message == (
        'platform-infra:ssh_keys: got ["-----BEGIN OPENSSH PRIVATE KEY----- abc"]; allowed: OpenSSH public '
        "keys (ssh-ed25519, ecdsa-sha2-*, ssh-rsa), one per entry"
    )


def test_unknown_image_is_refused() -> None:
    assert error_of("dev", image="linode/windows") == (
        f"platform-infra:image: got 'linode/windows'; allowed: one of {', '.join(sorted(IMAGES))}"
    )


def test_non_numeric_instance_limit_says_what_is_allowed() -> None:
    assert error_of("dev", max_instances="many") == (
        "platform-infra:max_instances: got 'many'; allowed: the most VMs and nodes this stack may run, 1 to 100"
    )


def test_instance_limit_below_what_the_stack_asks_is_refused() -> None:
    settings = load("prod")
    assert error_of("prod", max_instances=2) == (
        f"platform-infra:max_instances: got 2; allowed: at least the {settings.instance_count()} VMs and "
        f"nodes this stack asks for ({settings.instance_breakdown()}); lower the counts or raise the limit"
    )


def test_misspelled_key_is_named_not_ignored() -> None:
    net = network("dev")
    net["vpc_cdir"] = net.pop("vpc_cidr")
    assert error_of("dev", network=net).splitlines() == [
        "platform-infra:network.vpc_cidr: missing; allowed: an RFC 1918 IPv4 CIDR, e.g. 10.20.0.0/16",
        "platform-infra:network.vpc_cdir: got '10.10.0.0/16'; allowed: no such key here (check the spelling)",
    ]


def test_any_sane_stack_name_is_a_stack_and_its_config_says_what_kind() -> None:
    settings = load_settings(PROJECT, "qa-eu2", {**stack_values("staging"), "environment": "staging"})
    assert settings.stack == "qa-eu2" and settings.environment == "staging"
    assert settings.label("mariadb", 0) == "platform-infra-qa-eu2-mariadb-0"


@pytest.mark.parametrize("stack", ["QA", "my_stack", "-qa", "qa-", "a--b", "9lives", "x" * 21, ""])
def test_a_stack_name_linode_labels_cannot_carry_is_refused(stack: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(PROJECT, stack, stack_values("staging"))
    assert str(caught.value) == f"stack: got {stack!r}; {STACK_NAME_ALLOWED}"


def test_missing_environment_names_the_key_and_the_kinds() -> None:
    values = stack_values("staging")
    del values["environment"]
    with pytest.raises(SettingsError) as caught:
        load_settings(PROJECT, "staging", values)
    assert str(caught.value) == (
        "platform-infra:environment: missing; allowed: one of development, staging, production"
    )


def test_unknown_environment_names_key_value_and_the_kinds() -> None:
    assert error_of("staging", environment="prod") == (
        "platform-infra:environment: got 'prod'; allowed: one of development, staging, production"
    )


@pytest.mark.parametrize(
    ("environment", "protected"), [("development", False), ("staging", False), ("production", True)]
)
def test_the_environment_kind_not_the_name_decides_protection(environment: str, protected: bool) -> None:
    values = {**stack_values("staging"), "environment": environment}
    assert load_settings(PROJECT, "scratch", values).production is protected


def test_labels_and_tags_follow_the_naming_scheme() -> None:
    settings = load("staging")
    assert settings.label("mariadb", 1) == "platform-infra-staging-mariadb-1"
    assert settings.tags("redis") == ["platform-infra", "env:staging", "role:redis"]


def test_enterprise_cluster_needs_a_13_or_14_app_subnet() -> None:
    net = network("prod")
    net["subnets"]["app"] = "10.33.0.0/24"
    assert error_of("prod", network=net) == (
        "platform-infra:network.subnets.app: got '10.33.0.0/24'; allowed: a /13 or /14 inside 10.0.0.0/8 when "
        "kubernetes.tier is enterprise (the cluster joins this subnet)"
    )


def test_backup_window_without_the_backup_service_is_refused() -> None:
    data = json.loads(stack_values("prod")["data"])
    data["backups_enabled"] = False
    assert error_of("prod", data=data) == (
        "platform-infra:operations.backups.linode_backup_window: got 'W2'; allowed: only with "
        "data.backups_enabled: true (the window belongs to Linode's Backup Service on the data VMs)"
    )


def test_unencrypted_data_tier_over_the_shared_private_network_is_refused_in_every_kind_of_stack() -> None:
    data = json.loads(stack_values("dev")["data"])
    message = error_of("dev", data={**data, "tls": False})
    assert "platform-infra:data.tls" in message and "shared with other customers" in message
