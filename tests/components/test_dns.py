"""The ingress's public address and the DNS records of the public hosts, under mocks."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.kubernetes.dns import (
    IngressDns,
    IngressDnsArgs,
    IngressLoadBalancer,
    IngressLoadBalancerArgs,
    first_ipv4,
)
from components.settings import SettingsError, load_settings
from components.settings.dns import DnsSettings, record_name
from tools.offline import ResourceRecord, resolve, run_component, run_program, stack_values

SERVICE = "kubernetes:core/v1:Service"
RECORD = "linode:index/domainRecord:DomainRecord"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _release() -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release("ingress-traefik", name="traefik", chart="traefik", version="40.3.0",
                               namespace="ingress")


def test_the_load_balancer_address_is_read_from_the_traefik_service_after_its_release() -> None:
    def build() -> tuple[IngressLoadBalancer, Any]:
        release = _release()
        component = IngressLoadBalancer(
            "ingress-address", IngressLoadBalancerArgs(release=release, namespace="ingress", service_name="traefik")
        )
        return component, resolve(component.ipv4)

    (component, ipv4), records = run_component(build)
    # A read, not a resource the stack owns: nothing is registered for the Service itself.
    assert [r.type for r in records if r.type == SERVICE] == []
    assert ipv4.startswith("172.105.201.")  # the IPv4 of the ingress list, never the IPv6 entry
    assert component.service is not None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"loadBalancer": {"ingress": [{"ip": "2a01:7e01::1"}, {"ip": "172.105.9.9"}]}}, "172.105.9.9"),
        ({"load_balancer": {"ingress": [{"hostname": "nb-1.linode.com"}]}}, None),
        ({"loadBalancer": {}}, None),
        (None, None),
    ],
)
def test_first_ipv4_takes_the_first_ipv4_ingress_entry(status: Any, expected: str | None) -> None:
    assert first_ipv4(status) == expected


def test_records_are_a_records_relative_to_the_existing_zone() -> None:
    def build() -> IngressDns:
        return IngressDns(
            "dns",
            IngressDnsArgs(
                zone="example.com",
                hosts=("api.staging.example.com", "logs.staging.example.com", "example.com"),
                target_ipv4=pulumi.Output.from_input("172.105.9.9"),
                ttl_sec=300,
            ),
        )

    dns, records = run_component(build)
    by_name = {r.inputs["name"]: r for r in records if r.type == RECORD}
    assert set(by_name) == {"api.staging", "logs.staging", ""}
    for record in by_name.values():
        assert record.inputs["recordType"] == "A"
        assert record.inputs["target"] == "172.105.9.9"
        assert record.inputs["ttlSec"] == 300
        assert isinstance(record.inputs["domainId"], int | float) and record.inputs["domainId"] > 1000000
    # No Domain is created: the zone is shared by the stacks and looked up by name.
    assert [r for r in records if r.type == "linode:index/domain:Domain"] == []
    assert list(dns.records) == ["api.staging.example.com", "logs.staging.example.com", "example.com"]


def _records(records: list[ResourceRecord]) -> list[ResourceRecord]:
    return [r for r in records if r.type == RECORD]


def test_a_stack_naming_a_zone_points_every_public_host_at_its_load_balancer() -> None:
    run = run_program("staging", overrides={"dns": {"zone": "example.com"}})
    names = sorted(r.inputs["name"] for r in _records(run.resources))
    assert names == ["api.staging", "logs.staging"]
    assert {r.inputs["target"] for r in _records(run.resources)} == {run.outputs["ingress_ipv4"]}
    assert run.outputs["dns_records"] == ["api.staging.example.com", "logs.staging.example.com"]


@pytest.mark.parametrize(("stack", "exported"), [("dev", False), ("staging", True), ("prod", True)])
def test_the_load_balancer_address_is_exported_with_or_without_a_zone(
    program_runs: Any, stack: str, exported: bool
) -> None:
    run = program_runs[stack]
    assert ("ingress_ipv4" in run.outputs) == exported
    assert "dns_records" not in run.outputs and _records(run.resources) == []
    if exported:
        assert run.outputs["ingress_ipv4"].count(".") == 3


def _settings(stack: str, **overrides: Any) -> Any:
    return load_settings("platform-infra", stack, {**stack_values(stack), **overrides})


def test_a_zone_without_a_load_balancer_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"dns\.zone: got 'example\.com'.*load_balancer basic or ha"):
        _settings("dev", dns={"zone": "example.com"})


def test_a_zone_must_hold_every_public_host() -> None:
    with pytest.raises(SettingsError, match=r"dns\.zone: got 'example\.org'.*api\.staging\.example\.com"):
        _settings("staging", dns={"zone": "example.org"})


@pytest.mark.parametrize("dns", [{"zone": "Example.COM"}, {"zone": "example.com."}, {"ttl_sec": 301},
                                 {"zone": "example.com", "ttl": 300}])
def test_bad_dns_settings_are_refused_naming_the_key(dns: dict[str, Any]) -> None:
    with pytest.raises(SettingsError, match=r"platform-infra:dns\."):
        _settings("staging", dns=dns)


def test_record_names_are_relative_to_the_zone() -> None:
    assert record_name("api.example.com", "example.com") == "api"
    assert record_name("example.com", "example.com") == ""
    assert record_name("api.badexample.com", "example.com") is None
    assert DnsSettings().zone is None
