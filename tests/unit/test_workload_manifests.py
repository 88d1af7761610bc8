"""The pure Kubernetes object builders: hardening, policies, edge rules and the connection Secret."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from components.data.connections import DataConnections
from components.data.mariadb.cluster import MariaDbConnection, database_proxy
from components.data.redis.cluster import RedisConnection
from components.kubernetes.data_proxy import ProxyManifest, config_checksum
from components.kubernetes.manifests import (
    CA_KEY,
    CONNECTION_SECRET,
    app_url,
    application_objects,
    cluster_issuer_name,
    connection_settings,
)
from components.kubernetes.objects import StackContext
from components.settings.kubernetes import KubernetesSettings, offered_minors
from tests.helpers import prod_like_settings, sample_connections


def primary(connections: DataConnections, role: str) -> str:
    """The node that takes writes for a service that has one (MariaDB, Redis)."""
    connection = connections.services[role]
    assert isinstance(connection, MariaDbConnection | RedisConnection)
    return connection.primary_host


def render(settings: KubernetesSettings, tls: bool = True) -> list[dict[str, Any]]:
    connections = sample_connections(tls)
    ctx = StackContext("platform-infra", "prod", cluster_issuer=cluster_issuer_name(settings))
    data = connection_settings(
        connections, {"mariadb": "db-pw", "redis": "redis-pw", "rabbitmq": "mq-pw"}, "PEM" if tls else None
    )
    images = {w.name: w.image for w in settings.workloads}
    return application_objects(settings, ctx, connections.destinations(), images, data)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def kinds(objects: list[dict[str, Any]], name: str) -> set[str]:
    return {o["kind"] for o in objects if o["metadata"]["name"] == name}


def test_every_container_meets_the_restricted_pod_security_profile() -> None:
    for deployment in [o for o in render(prod_like_settings()) if o["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert "readinessProbe" in container and "livenessProbe" in container
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_namespace_enforces_restricted_with_quota_and_limit_range() -> None:
    objects = render(prod_like_settings())
    namespace = find(objects, "Namespace", "app")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    minor = offered_minors("enterprise")[-1]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == f"v{minor}"
    quota = find(objects, "ResourceQuota", "app-quota")
    assert quota["spec"]["hard"]["limits.memory"] == "16Gi"
    limits = find(objects, "LimitRange", "container-defaults")["spec"]["limits"][0]
    assert limits["default"] == {"cpu": "500m", "memory": "512Mi"}


def test_autoscaled_workload_gets_hpa_pdb_and_no_fixed_replica_count() -> None:
    objects = render(prod_like_settings())
    assert kinds(objects, "api") >= {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    hpa = find(objects, "HorizontalPodAutoscaler", "api")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert "replicas" not in find(objects, "Deployment", "api")["spec"]


def test_single_replica_worker_has_no_pdb_hpa_service_or_ingress() -> None:
    objects = render(prod_like_settings())
    assert kinds(objects, "worker") == {"Deployment", "ServiceAccount"}
    assert find(objects, "Deployment", "worker")["spec"]["replicas"] == 1


def test_network_policies_deny_by_default_and_allow_exactly_the_data_destinations() -> None:
    objects = render(prod_like_settings())
    deny = find(objects, "NetworkPolicy", "default-deny-all")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    egress = find(objects, "NetworkPolicy", "allow-data-tier-egress")["spec"]["egress"]
    allowed = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in egress}
    expected = {(f"{host}/32", port) for host, port in sample_connections(True).destinations()}
    assert allowed == expected
    assert ("10.30.1.20/32", 26379) in allowed  # Sentinel port where Sentinel runs


def test_standard_tier_egress_mirrors_the_private_network_firewall_rule_on_the_data_ports() -> None:
    objects = render(prod_like_settings(tier="standard"))
    (rule,) = find(objects, "NetworkPolicy", "allow-data-tier-egress")["spec"]["egress"]
    assert rule["to"] == [{"ipBlock": {"cidr": "192.168.128.0/17"}}]
    assert [p["port"] for p in rule["ports"]] == [3306, 5671, 6379, 26379]


def test_only_the_ingress_controller_reaches_the_api_port() -> None:
    policy = find(render(prod_like_settings()), "NetworkPolicy", "allow-ingress-controller-to-api")["spec"]
    rule = policy["ingress"][0]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    peer = rule["from"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "traefik"}


def test_tls_stack_ingress_has_certificate_redirect_hsts_rate_limit_and_compression() -> None:
    objects = render(prod_like_settings())
    ingress = find(objects, "Ingress", "api")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-production"
    assert ingress["spec"]["tls"] == [{"hosts": ["api.example.com"], "secretName": "api-tls"}]
    chain = annotations["traefik.ingress.kubernetes.io/router.middlewares"].split(",")
    assert chain[0] == "app-redirect-https@kubernetescrd"
    assert {"app-security-headers@kubernetescrd", "app-rate-limit@kubernetescrd", "app-compress@kubernetescrd"} <= set(
        chain
    )
    headers = find(objects, "Middleware", "security-headers")["spec"]["headers"]
    assert headers["frameDeny"] and headers["contentTypeNosniff"] and headers["stsSeconds"] == 31_536_000
    assert find(objects, "Middleware", "rate-limit")["spec"]["rateLimit"] == {
        "average": 10,
        "period": "1s",
        "burst": 20,
    }
    assert find(objects, "Middleware", "redirect-https")["spec"]["redirectScheme"]["scheme"] == "https"


def test_stack_without_tls_has_no_hsts_no_redirect_and_no_certificate() -> None:
    objects = render(prod_like_settings("none"), tls=False)
    ingress = find(objects, "Ingress", "api")
    assert "tls" not in ingress["spec"]
    assert "cert-manager.io/cluster-issuer" not in ingress["metadata"]["annotations"]
    assert "stsSeconds" not in find(objects, "Middleware", "security-headers")["spec"]["headers"]
    assert not [
        o for o in objects if o["metadata"]["name"] in ("redirect-https", "allow-ingress-controller-to-acme-solver")
    ]


def test_connection_secret_carries_urls_and_ca_and_workloads_read_it_by_reference() -> None:
    objects = render(prod_like_settings())
    secret = find(objects, "Secret", CONNECTION_SECRET)["stringData"]
    database = urlsplit(secret["DATABASE_URL"])
    assert (database.scheme, database.hostname, database.port, database.path) == ("mysql", "10.30.1.10", 3306, "/app")
    assert secret["REDIS_URL"].startswith("rediss://:redis-pw@10.30.1.20:6379")
    assert secret["REDIS_SENTINELS"] == "10.30.1.20:26379,10.30.1.21:26379,10.30.1.22:26379"
    assert secret["AMQP_URL"] == "amqps://app:mq-pw@10.30.1.30:5671/app"
    assert secret[CA_KEY] == "PEM"
    container = find(objects, "Deployment", "api")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["DATABASE_URL"] == {"name": CONNECTION_SECRET, "key": "DATABASE_URL"}
    assert {"name": "data-ca", "mountPath": "/etc/platform-ca", "readOnly": True} in container["volumeMounts"]


def test_passwords_with_url_metacharacters_are_percent_encoded() -> None:
    data = connection_settings(
        sample_connections(False, nodes=1), {"mariadb": "p@ss:w/rd", "redis": "r#1", "rabbitmq": "m?q"}, None
    )
    assert urlsplit(data["DATABASE_URL"]).hostname == "10.30.1.10"
    assert "p%40ss%3Aw%2Frd" in data["DATABASE_URL"]
    assert data["REDIS_URL"] == "redis://:r%231@10.30.1.20:6379/0"
    assert "REDIS_SENTINELS" not in data and CA_KEY not in data


@pytest.mark.parametrize(
    "image, skipped", [("registry.example.com/a:1.0.0", True), ("r.example.com/a@sha256:" + "c" * 64, False)]
)
def test_digest_suppression_is_only_declared_for_tag_pinned_images(image: str, skipped: bool) -> None:
    settings = KubernetesSettings.model_validate(
        {"workloads": [{"name": "a", "image": image, "replicas": 1, "health_command": ["/hc"]}]}
    )
    objects = render(settings, tls=False)
    annotations = find(objects, "Deployment", "a")["metadata"]["annotations"]
    assert any(v.startswith("CKV_K8S_43=") for v in annotations.values()) is skipped


def test_urls_use_node_names_and_pods_pin_them_to_the_dialled_addresses() -> None:
    import dataclasses

    base = sample_connections(True)
    hosts = [*base.services["mariadb"].hosts, *base.services["redis"].hosts, *base.services["rabbitmq"].hosts]
    names = {host: f"node-{i}.data" for i, host in enumerate(hosts)}
    dial = {name: f"192.168.140.{i + 10}" for i, name in enumerate(names.values())}
    connections = dataclasses.replace(base, node_names=names, dial_addresses=dial)
    data = connection_settings(connections, {"mariadb": "db-pw", "redis": "redis-pw", "rabbitmq": "mq-pw"}, "PEM")
    assert f"@{names[primary(base, 'mariadb')]}:3306/" in data["DATABASE_URL"]
    assert f"@{names[primary(base, 'redis')]}:6379/" in data["REDIS_URL"]
    assert all(host not in data["AMQP_URLS"] for host in base.services["rabbitmq"].hosts)
    settings = prod_like_settings(tier="standard")
    ctx = StackContext("platform-infra", "staging", cluster_issuer=cluster_issuer_name(settings))
    images = {w.name: w.image for w in settings.workloads}
    objects = application_objects(
        settings, ctx, connections.destinations(), images, data, host_aliases=connections.host_aliases()
    )
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        aliases = deployment["spec"]["template"]["spec"]["hostAliases"]
        assert {a["hostnames"][0]: a["ip"] for a in aliases} == dial


def test_without_names_urls_use_the_addresses_and_pods_need_no_aliases() -> None:
    connections = sample_connections(False)
    data = connection_settings(connections, {"mariadb": "db-pw", "redis": "redis-pw", "rabbitmq": "mq-pw"}, None)
    assert f"@{primary(connections, 'mariadb')}:3306/" in data["DATABASE_URL"]
    assert connections.host_aliases() == []
    for deployment in (o for o in render(prod_like_settings(), tls=False) if o["kind"] == "Deployment"):
        assert "hostAliases" not in deployment["spec"]["template"]["spec"]


def test_app_url_is_the_first_public_workload_with_the_stacks_scheme() -> None:
    assert app_url(prod_like_settings()) == "https://api.example.com/"
    assert app_url(prod_like_settings(tls_mode="none")) == "http://api.example.com/"


# --- the database proxy in front of Galera ---------------------------------------------------------


def proxy_manifest(namespace: str = "app") -> ProxyManifest:
    proxy = database_proxy(namespace, ("10.30.1.10", "10.30.1.11", "10.30.1.12"))
    config = proxy.render([("db-0", "10.30.1.10"), ("db-1", "10.30.1.11"), ("db-2", "10.30.1.12")])
    return ProxyManifest(proxy=proxy, config=config, checksum=config_checksum(config))


def render_with_proxy(settings: KubernetesSettings) -> list[dict[str, Any]]:
    connections = sample_connections(True, galera_proxy=True)
    ctx = StackContext("platform-infra", "prod", cluster_issuer=cluster_issuer_name(settings))
    data = connection_settings(connections, {"mariadb": "db-pw", "redis": "redis-pw", "rabbitmq": "mq-pw"}, "PEM")
    images = {w.name: w.image for w in settings.workloads}
    return application_objects(settings, ctx, connections.destinations(), images, data, proxies=[proxy_manifest()])


def test_the_proxy_meets_the_restricted_profile_and_reads_only_its_config() -> None:
    objects = render_with_proxy(prod_like_settings())
    deployment = find(objects, "Deployment", "database-proxy")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert container["volumeMounts"] == [{"name": "config", "mountPath": "/usr/local/etc/haproxy", "readOnly": True}]
    assert container["command"][-1] == "/usr/local/etc/haproxy/haproxy.cfg"
    items = [{"key": "haproxy.cfg", "path": "haproxy.cfg"}]
    assert pod["volumes"] == [{"name": "config", "configMap": {"name": "database-proxy", "items": items}}]
    config = find(objects, "ConfigMap", "database-proxy")["data"]["haproxy.cfg"]
    assert pod_annotations(deployment) == {"checksum/config": config_checksum(config)}
    skips = deployment["metadata"]["annotations"]
    assert [v.split("=", 1)[0] for v in skips.values()] == ["CKV_K8S_43"]  # tag-pinned, nothing else waived


def pod_annotations(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["annotations"])


def test_the_app_reaches_the_proxy_and_the_proxy_only_the_nodes() -> None:
    objects = render_with_proxy(prod_like_settings())
    app_egress = find(objects, "NetworkPolicy", "allow-data-tier-egress")["spec"]
    assert 3306 not in {p["port"] for rule in app_egress["egress"] for p in rule["ports"]}
    out = find(objects, "NetworkPolicy", "allow-database-proxy-to-data-tier")["spec"]
    allowed = {(rule["to"][0]["ipBlock"]["cidr"], rule["ports"][0]["port"]) for rule in out["egress"]}
    assert allowed == {(f"10.30.1.{10 + i}/32", port) for i in range(3) for port in (3306, 9200)}
    dns = find(objects, "NetworkPolicy", "allow-dns-egress")["spec"]["podSelector"]
    not_proxy = {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["database-proxy"]}
    assert dns == {"matchExpressions": [not_proxy]}


def test_standard_tier_proxy_egress_is_the_private_network_on_the_client_and_health_ports() -> None:
    objects = render_with_proxy(prod_like_settings(tier="standard"))
    (rule,) = find(objects, "NetworkPolicy", "allow-database-proxy-to-data-tier")["spec"]["egress"]
    assert rule == {
        "to": [{"ipBlock": {"cidr": "192.168.128.0/17"}}],
        "ports": [{"protocol": "TCP", "port": 3306}, {"protocol": "TCP", "port": 9200}],
    }


def test_a_proxy_named_for_another_namespace_or_a_workload_of_its_name_is_refused() -> None:
    settings = prod_like_settings()
    ctx = StackContext("platform-infra", "prod", cluster_issuer=cluster_issuer_name(settings))
    images = {w.name: w.image for w in settings.workloads}
    with pytest.raises(ValueError, match="namespace app"):
        application_objects(settings, ctx, [], images, {}, proxies=[proxy_manifest("other")])
    workload = {"name": "database-proxy", "image": "r.example.com/a:1", "replicas": 1, "health_command": ["x"]}
    clashing = KubernetesSettings.model_validate({"workloads": [workload]})
    with pytest.raises(ValueError, match="taken by the data tier's proxy"):
        application_objects(clashing, ctx, [], {"database-proxy": "r.example.com/a:1"}, {}, proxies=[proxy_manifest()])
