"""IngressController and CertManager under mocks: pinned charts, entry mode per stack, issuer order."""

from __future__ import annotations

from typing import Any

import pytest

from components.kubernetes.cert_manager import ACME_DIRECTORIES, CertManager, CertManagerArgs
from components.kubernetes.ingress import IngressController, IngressControllerArgs, nodebalancer_firewall_rules
from components.kubernetes.objects import StackContext
from components.settings.kubernetes import IngressSettings, TlsSettings
from tools.offline import ResourceRecord, run_component

CTX = StackContext("platform-infra", "prod")
LB = "service.beta.kubernetes.io/linode-loadbalancer-"


def build_ingress(**settings: Any) -> tuple[IngressController, list[ResourceRecord]]:
    args = IngressControllerArgs(
        settings=IngressSettings.model_validate(settings),
        context=CTX,
        kubernetes_minor="1.31",
        firewall_label="platform-infra-prod-nodebalancer",
        tags=("platform-infra",),
    )
    return run_component(lambda: IngressController("ingress", args), "prod")


def of_type(records: list[ResourceRecord], type_: str) -> list[ResourceRecord]:
    return [r for r in records if r.type == type_]


def release_values(records: list[ResourceRecord]) -> dict[str, Any]:
    (release,) = of_type(records, "kubernetes:helm.sh/v3:Release")
    return release.inputs["values"]


def test_traefik_installs_the_vendored_archive_of_its_pinned_version() -> None:
    _, records = build_ingress()
    (release,) = of_type(records, "kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "vendor/charts/traefik-40.3.0.tgz"
    assert release.inputs["version"] == "40.3.0"
    assert "repositoryOpts" not in release.inputs


def test_dev_entry_has_no_load_balancer_and_no_nodebalancer_firewall() -> None:
    _, records = build_ingress(load_balancer="none")
    # The chart reads `service.spec` (templates/_service.tpl); a `service.type` would be ignored.
    assert release_values(records)["service"]["spec"] == {"type": "ClusterIP"}
    assert of_type(records, "linode:index/firewall:Firewall") == []


def test_staging_entry_is_one_nodebalancer_behind_its_firewall_with_proxy_protocol() -> None:
    _, records = build_ingress(load_balancer="basic")
    values = release_values(records)
    (firewall,) = of_type(records, "linode:index/firewall:Firewall")
    annotations = values["service"]["annotations"]
    assert annotations[f"{LB}firewall-id"] == firewall.id
    assert annotations[f"{LB}default-proxy-protocol"] == "v2"
    assert values["ports"]["websecure"]["proxyProtocol"]["trustedIPs"] == ["192.168.255.0/24"]
    # Cluster would SNAT the NodeBalancer's connection to a node address Traefik does not trust.
    assert values["service"]["spec"] == {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    assert f"{LB}backend-ipv4-range" not in annotations
    assert firewall.inputs["inboundPolicy"] == "DROP"
    assert firewall.inputs["inbounds"][0]["ports"] == "80,443"


def test_nodebalancer_rule_is_the_only_public_rule_and_the_open_internet_includes_ipv6() -> None:
    (rule,) = nodebalancer_firewall_rules(("0.0.0.0/0",))
    assert rule.public and (rule.protocol, rule.ports) == ("TCP", "80,443")
    assert (rule.ipv4_sources, rule.ipv6_sources) == (["0.0.0.0/0"], ["::/0"])
    (office,) = nodebalancer_firewall_rules(("198.51.100.0/24",))
    assert office.ipv6_sources == []


def test_prod_entry_is_highly_available() -> None:
    _, records = build_ingress(load_balancer="ha", replicas=3)
    values = release_values(records)
    assert values["deployment"]["replicas"] == 3
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    assert values["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    annotations = values["service"]["annotations"]
    assert annotations[f"{LB}check-type"] == "connection"
    assert annotations[f"{LB}check-passive"] == "true"


def test_ingress_namespace_enforces_restricted_pod_security() -> None:
    _, records = build_ingress()
    (namespace,) = of_type(records, "kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("mode", ["letsencrypt-staging", "letsencrypt-production"])
def test_cluster_issuer_per_stack_waits_for_cert_manager_crds(mode: str) -> None:
    tls = TlsSettings(mode=mode, acme_email="ops@example.com")  # type: ignore[arg-type]
    args = CertManagerArgs(tls=tls, ingress_class="traefik", context=CTX, kubernetes_minor="1.31")
    _, records = run_component(lambda: CertManager("cert-manager", args), "prod")
    (release,) = of_type(records, "kubernetes:helm.sh/v3:Release")
    (issuer,) = of_type(records, "kubernetes:cert-manager.io/v1:ClusterIssuer")
    assert release.inputs["version"] == "v1.19.1"
    assert release.inputs["values"]["crds"]["enabled"] is True
    assert release.urn in issuer.depends_on
    assert issuer.inputs["spec"]["acme"]["server"] == ACME_DIRECTORIES[mode]
    assert issuer.inputs["spec"]["acme"]["solvers"][0]["http01"]["ingress"]["ingressClassName"] == "traefik"


def test_no_cluster_issuer_without_tls() -> None:
    args = CertManagerArgs(tls=TlsSettings(), ingress_class="traefik", context=CTX, kubernetes_minor="1.31")
    component, records = run_component(lambda: CertManager("cert-manager", args), "dev")
    assert component.issuer is None
    assert not [r for r in records if "ClusterIssuer" in r.type]


def test_vpc_backed_nodebalancer_pins_its_backend_range_and_traefik_trusts_exactly_it() -> None:
    args = IngressControllerArgs(
        settings=IngressSettings(load_balancer="ha", replicas=3),
        context=CTX,
        kubernetes_minor="1.31",
        firewall_label="platform-infra-prod-nodebalancer",
        backend_ipv4_range="10.39.255.240/29",
    )
    _, records = run_component(lambda: IngressController("ingress", args), "prod")
    values = release_values(records)
    assert values["service"]["annotations"][f"{LB}backend-ipv4-range"] == "10.39.255.240/29"
    assert values["service"]["spec"] == {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    for entry in ("web", "websecure"):
        assert values["ports"][entry]["proxyProtocol"]["trustedIPs"] == ["10.39.255.240/29"]
