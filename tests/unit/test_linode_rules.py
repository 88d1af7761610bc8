"""Linode's label rules, LKE version resolution and the settings that refuse what the API would."""

from __future__ import annotations

import pytest

from components.kubernetes.lke import LkeVersionError, resolve_lke_version
from components.linode.labels import LabelError, check_label, label_problems
from components.settings import SettingsError, load_settings
from tools.offline import stack_values


@pytest.mark.parametrize(
    ("kind", "label"),
    [
        ("instance", "a" * 64),
        ("instance", "platform-infra-prod-mariadb-0"),
        ("instance", "web_1.example"),
        ("firewall", "a" * 32),
        ("firewall_rule", "ssh-from-bastion"),
        ("placement_group", "platform-infra-qa-rabbitmq"),
        ("lke_cluster", "platform-infra-prod-lke"),
        ("vpc", "x"),
        ("vpc_subnet", "platform-infra-prod-app"),
        ("bucket", "platform-infra-prod-backups-0a1b2c3d"),
        ("object_storage_key", "platform-infra-prod-backups-writer"),
    ],
)
def test_labels_linode_accepts(kind: str, label: str) -> None:
    assert label_problems(kind, label) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "label", "why"),
    [
        ("instance", "a" * 65, "65 characters"),
        ("instance", "ab", "2 characters"),
        ("instance", "web--1", "never two"),
        ("instance", "-web", "beginning and ending"),
        ("firewall", "platform-infra-staging-nodebalancer", "35 characters; Linode allows 3-32"),
        ("firewall_rule", "a" * 33, "3-32"),
        ("placement_group", "platform-infra-staging-rabbitmq-pg", "34 characters"),
        ("lke_cluster", "platform_infra", "letters, digits and single '-'"),
        ("lke_cluster", "a" * 33, "3-32"),
        ("vpc", "a--b", "never '--'"),
        ("vpc_subnet", "a" * 65, "1-64"),
        ("bucket", "Platform-Backups", "lowercase"),
        ("bucket", "a" * 64, "3-63"),
        ("object_storage_key", "a" * 51, "3-50"),
    ],
)
def test_labels_linode_refuses_say_why(kind: str, label: str, why: str) -> None:
    problems = "; ".join(label_problems(kind, label))  # type: ignore[arg-type]
    assert why in problems
    with pytest.raises(LabelError):
        check_label(kind, label)  # type: ignore[arg-type]


def test_a_stack_name_that_makes_a_label_too_long_is_refused_at_settings_time() -> None:
    with pytest.raises(SettingsError, match=r"platform-infra:stack: got 'personal1'.*firewall label .* 33 characters"):
        load_settings("platform-infra", "personal1", stack_values("dev"))
    assert load_settings("platform-infra", "alice", stack_values("dev")).stack == "alice"


STANDARD = ["1.35", "1.36"]
ENTERPRISE = ["v1.35.7+lke2", "v1.35.8+lke1", "v1.36.3+lke1", "v1.36.10+lke1"]


def test_latest_is_the_newest_offered_version() -> None:
    assert resolve_lke_version("latest", "standard", STANDARD) == "1.36"
    assert resolve_lke_version("latest", "enterprise", ENTERPRISE) == "v1.36.10+lke1"


def test_a_minor_resolves_to_its_newest_build() -> None:
    assert resolve_lke_version("1.35", "standard", STANDARD) == "1.35"
    assert resolve_lke_version("1.35", "enterprise", ENTERPRISE) == "v1.35.8+lke1"


def test_a_minor_lke_no_longer_offers_is_an_error_naming_what_it_offers() -> None:
    with pytest.raises(LkeVersionError, match=r"'1.34': LKE standard offers 1.35, 1.36"):
        resolve_lke_version("1.34", "standard", STANDARD)


def test_settings_take_a_minor_or_latest_but_not_a_build_or_an_unknown_minor() -> None:
    values = stack_values("prod")
    for version, ok in (("1.36", True), ("latest", True), ("v1.31.9+lke7", False), ("1.34", False)):
        kubernetes = {**__import__("json").loads(values["kubernetes"]), "version": version}
        attempt = {**values, "kubernetes": kubernetes}
        if ok:
            assert load_settings("platform-infra", "prod", attempt).kubernetes.version == version
        else:
            with pytest.raises(SettingsError, match=r"platform-infra:kubernetes\.version"):
                load_settings("platform-infra", "prod", attempt)


def test_production_refuses_a_ci_range_open_to_everyone() -> None:
    values = {**stack_values("prod"), "ci_cidrs": ["0.0.0.0/0"]}
    with pytest.raises(SettingsError, match=r"platform-infra:ci_cidrs: got '0\.0\.0\.0/0'"):
        load_settings("platform-infra", "prod", values)
