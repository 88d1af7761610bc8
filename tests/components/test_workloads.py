"""Workloads and AppImage under mocks: declared objects, secret Secret, dependency order, digests."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pulumi

from components.kubernetes.images import AppImage, AppImageArgs
from components.kubernetes.manifests import CONNECTION_SECRET
from components.kubernetes.objects import StackContext
from components.kubernetes.workloads import Workloads, WorkloadsArgs
from components.settings.kubernetes import BuildSettings, RegistrySettings
from tests.helpers import prod_like_settings, sample_connections
from tools.offline import ResourceRecord, run_component, unwrap_secret

CTX = StackContext("platform-infra", "prod", cluster_issuer="letsencrypt-production")


def build(images: dict[str, pulumi.Input[str]] | None = None) -> list[ResourceRecord]:
    settings = prod_like_settings()

    def program() -> Workloads:
        crd_owner = pulumi.CustomResource("test:index:CrdOwner", "traefik-release")
        issuer = pulumi.CustomResource("test:index:Issuer", "issuer")
        return Workloads(
            "app",
            WorkloadsArgs(
                settings=settings,
                context=CTX,
                connections=sample_connections(True),
                images=images or {w.name: w.image for w in settings.workloads if w.image},
                digest_pinned={"api": False, "worker": True},
                crd_dependencies=(crd_owner,),
                issuer_dependencies=(issuer,),
            ),
        )

    _, records = run_component(program, "prod")
    return records


def unwrap(value: Any) -> Any:
    return unwrap_secret(value)[0]


def named(records: list[ResourceRecord], suffix: str) -> ResourceRecord:
    (record,) = [r for r in records if r.name.endswith(suffix)]
    return record


def test_every_manifest_becomes_one_resource_of_its_kind() -> None:
    records = build()
    kinds = sorted(r.type.rsplit(":", 1)[1] for r in records if r.type.startswith("kubernetes:"))
    assert kinds.count("NetworkPolicy") == 5
    assert kinds.count("Middleware") == 4
    assert {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress", "Secret"} <= set(kinds)


def test_connection_secret_is_secret_and_holds_the_real_urls() -> None:
    secret = named(build(), f"secret-{CONNECTION_SECRET}")
    assert "stringData" in secret.secret_inputs
    assert unwrap(secret.inputs["stringData"])[
        "DATABASE_URL"
    ] == "mysql://app:unused-in-pure-code@10.30.1.10:3306/app" + (
        "?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/platform-ca/ca.crt"
    )


def test_namespaced_objects_wait_for_the_namespace_and_middlewares_for_traefik_crds() -> None:
    records = build()
    namespace = named(records, "namespace-app")
    deployment = named(records, "deployment-api")
    middleware = named(records, "middleware-rate-limit")
    crd_owner = named(records, "traefik-release")
    assert namespace.urn in deployment.depends_on
    assert crd_owner.urn in middleware.depends_on


def test_ingress_waits_for_its_middlewares_and_the_cluster_issuer() -> None:
    records = build()
    ingress = named(records, "ingress-api")
    assert named(records, "middleware-security-headers").urn in ingress.depends_on
    assert named(records, "issuer").urn in ingress.depends_on


def test_built_image_is_pushed_with_secret_credentials_and_deployed_by_digest() -> None:
    registry = RegistrySettings(server="registry.example.com/platform", username="ci")
    build_settings = BuildSettings(context="./app", repository="loopi-api", tag="1.4.2")

    def program() -> AppImage:
        return AppImage(
            "image-api",
            AppImageArgs(build=build_settings, registry=registry, registry_password=pulumi.Output.secret("pw")),
        )

    _, records = run_component(program, "prod")
    (image,) = [r for r in records if r.type == "docker:index/image:Image"]
    assert image.inputs["imageName"] == "registry.example.com/platform/loopi-api:1.4.2"
    assert unwrap(image.inputs["registry"])["server"] == "registry.example.com"
    assert "registry" in image.secret_inputs
    assert "@sha256:" in image.outputs["repo_digest"]


def build_with_proxy(dial: dict[str, str], outputs: bool = False) -> list[ResourceRecord]:
    """Workloads for a Galera data tier behind the proxy; `dial`: node name -> address pods dial
    (`outputs`: known only at deploy time, as on the private-network path)."""
    settings = prod_like_settings()

    def program() -> Workloads:
        base = sample_connections(True, galera_proxy=True)
        hosts = base.services["mariadb"].hosts
        names = {host: f"db-{i}" for i, host in enumerate(hosts)}
        dialled: dict[str, pulumi.Input[str]] = {
            name: pulumi.Output.from_input(dial[name]) if outputs else dial[name] for name in names.values()
        }
        connections = dataclasses.replace(base, node_names=names, dial_addresses=dialled)
        return Workloads(
            "app",
            WorkloadsArgs(
                settings=settings,
                context=CTX,
                connections=connections,
                images={w.name: w.image for w in settings.workloads if w.image},
                digest_pinned={"api": False, "worker": True},
            ),
        )

    _, records = run_component(program, "prod")
    return records


def test_the_proxy_config_map_holds_the_rendered_config_at_the_dialled_addresses_known_only_at_deploy() -> None:
    # On the private-network path Linode assigns the addresses pods dial at creation: Outputs.
    records = build_with_proxy({f"db-{i}": f"192.168.140.{10 + i}" for i in range(3)}, outputs=True)
    config = named(records, "configmap-database-proxy").inputs["data"]["haproxy.cfg"]
    servers = [line.split()[1:3] for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == [[f"db-{i}", f"192.168.140.{10 + i}:3306"] for i in range(3)]
    deployment = named(records, "deployment-database-proxy")
    annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] == hashlib.sha256(config.encode()).hexdigest()
    assert named(records, "namespace-app").urn in deployment.depends_on


def test_a_changed_node_address_changes_the_config_and_so_rolls_the_proxy() -> None:
    first = build_with_proxy({f"db-{i}": f"10.30.1.{10 + i}" for i in range(3)})
    second = build_with_proxy({f"db-{i}": f"10.30.1.{20 + i}" for i in range(3)})

    def checksum(records: list[ResourceRecord]) -> str:
        spec = named(records, "deployment-database-proxy").inputs["spec"]
        return str(spec["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum(first) != checksum(second)
    secret = unwrap(named(first, f"secret-{CONNECTION_SECRET}").inputs["stringData"])
    assert "@database-proxy.app.svc.cluster.local:3306/app?" in secret["DATABASE_URL"]
