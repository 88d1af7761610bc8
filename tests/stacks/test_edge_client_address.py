"""The per-client rate limit sees clients: Traefik trusts the PROXY header from exactly the
address its NodeBalancer connects from, and nothing rewrites that address on the way."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from components.data.services import stack_address_plan
from tests.helpers import STACKS, ProgramRuns
from tools.offline import load_stack_settings, unwrap_secret

LB = "service.beta.kubernetes.io/linode-loadbalancer-"
CLASSIC_NODEBALANCER_SOURCES = ["192.168.255.0/24"]  # Akamai, NodeBalancer reference


def traefik_values(stack: str, program_runs: ProgramRuns) -> dict[str, Any]:
    (release,) = [
        r for r in program_runs[stack].of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "traefik"
    ]
    values, _ = unwrap_secret(release.inputs["values"])
    return dict(values)


@pytest.mark.parametrize("stack", STACKS)
def test_traefik_trusts_the_proxy_header_only_from_where_its_nodebalancer_connects(
    stack: str, program_runs: ProgramRuns
) -> None:
    settings = load_stack_settings(stack)
    values = traefik_values(stack, program_runs)
    if settings.kubernetes.ingress.load_balancer == "none":
        assert "proxyProtocol" not in str(values.get("ports", {}))
        return
    service = values["service"]
    # With `Cluster`, kube-proxy SNATs the NodeBalancer's connection to a node address.
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["annotations"][f"{LB}default-proxy-protocol"] == "v2"
    backend_range = service["annotations"].get(f"{LB}backend-ipv4-range")
    if settings.kubernetes.data_path == "vpc":
        # VPC backends: the NodeBalancer connects from its pinned range inside the cluster's subnet,
        # clear of every address the plan hands out.
        app = stack_address_plan(settings.network).subnets["app"]
        assert backend_range == app.nodebalancer_backend_range()
        assert ipaddress.IPv4Network(backend_range).subnet_of(app.cidr)
        expected = [backend_range]
    else:
        assert backend_range is None
        expected = CLASSIC_NODEBALANCER_SOURCES
    for entry in ("web", "websecure"):
        assert values["ports"][entry]["proxyProtocol"]["trustedIPs"] == expected


@pytest.mark.parametrize("stack", STACKS)
def test_the_rate_limit_is_keyed_on_the_client_address(stack: str, program_runs: ProgramRuns) -> None:
    settings = load_stack_settings(stack)
    (middleware,) = [
        r
        for r in program_runs[stack].resources
        if r.type == "kubernetes:traefik.io/v1alpha1:Middleware" and r.name.endswith("rate-limit")
    ]
    spec, _ = unwrap_secret(middleware.inputs["spec"])
    limit = spec["rateLimit"]
    # No sourceCriterion: Traefik keys on the remote address, which the trusted PROXY header sets.
    assert "sourceCriterion" not in limit
    rate = settings.kubernetes.ingress.rate_limit
    assert (limit["average"], limit["burst"]) == (rate.requests_per_second, rate.burst)
