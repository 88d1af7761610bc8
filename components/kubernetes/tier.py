"""The Kubernetes tier of a stack, in dependency order: cluster, ingress, cert-manager, workloads.

`__main__` calls `build_lke_cluster` before the data tier (the data firewalls admit the
cluster's nodes, `app_source_cidrs`), then `build_kubernetes_tier` with the data tier's
connections. How pods reach the data VMs follows the tier: over the stack's VPC on LKE
Enterprise, over Linode's private network from each node's own address on the standard tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.data.connections import DataConnections
from components.foundation.address_plan import AddressPlan
from components.foundation.network import Network
from components.kubernetes.cert_manager import CertManager, CertManagerArgs
from components.kubernetes.dns import IngressDns, IngressDnsArgs, IngressLoadBalancer, IngressLoadBalancerArgs
from components.kubernetes.images import AppImage, AppImageArgs
from components.kubernetes.ingress import RELEASE_NAME, IngressController, IngressControllerArgs
from components.kubernetes.lke import LkeCluster, LkeClusterArgs
from components.kubernetes.manifests import cluster_issuer_name
from components.kubernetes.objects import StackContext
from components.kubernetes.workloads import Workloads, WorkloadsArgs
from components.settings import SettingsError, StackSettings
from components.settings.stack_config import LINODE_TOKEN, REGISTRY_PASSWORD, StackSecrets


@dataclass(frozen=True)
class KubernetesTier:
    cluster: LkeCluster
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]  # secret
    ingress: IngressController
    cert_manager: CertManager
    workloads: Workloads
    images: dict[str, AppImage]
    load_balancer: IngressLoadBalancer | None = None  # none when the stack has no NodeBalancer
    dns: IngressDns | None = None  # only when config names a Linode Domains zone (dns.zone)

    @property
    def namespace(self) -> str:
        return self.workloads.namespace

    @property
    def ingress_class(self) -> str:
        return self.ingress.ingress_class


def build_lke_cluster(
    settings: StackSettings, plan: AddressPlan, network: Network, tags: Sequence[str], secrets: StackSecrets | None
) -> LkeCluster:
    """The stack's LKE cluster: in the VPC's app subnet on Enterprise, outside it on standard."""
    k = settings.kubernetes
    vpc = k.data_path == "vpc"
    return LkeCluster(
        "lke",
        LkeClusterArgs(
            label=settings.label("lke"),
            region=settings.region,
            version=k.version,
            pool=k.pool,
            high_availability=k.high_availability,
            # Operators and the CI runner (ci_cidrs): the deploy's Kubernetes calls need the API.
            admin_ipv4_cidrs=settings.kubernetes_api_ipv4_cidrs,
            admin_ipv6_cidrs=settings.kubernetes_api_ipv6_cidrs,
            tier=k.tier,
            vpc_id=network.vpc_id if vpc else None,
            subnet_id=network.subnet_ids["app"] if vpc else None,
            app_subnet_cidr=plan.subnets["app"].cidr_str if vpc else None,
            tags=tuple(tags),
            api_token=secrets.get(LINODE_TOKEN) if secrets else None,
        ),
    )


def build_kubernetes_tier(
    settings: StackSettings,
    plan: AddressPlan,
    cluster: LkeCluster,
    connections: DataConnections,
    tags: Sequence[str],
    secrets: StackSecrets | None = None,
) -> KubernetesTier:
    k = settings.kubernetes
    context = StackContext(settings.project, settings.stack, cluster_issuer=cluster_issuer_name(k))
    vpc = k.data_path == "vpc"
    in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    # Destroy order: the ingress release (its LoadBalancer Service owns the NodeBalancer the
    # cloud controller made) depends on the cluster itself, so it is deleted while the cluster
    # and its controller still run (docs/RUNBOOK.md, "Destroying a stack").
    ingress = IngressController(
        "ingress",
        IngressControllerArgs(
            settings=k.ingress,
            context=context,
            kubernetes_minor=k.kubernetes_minor,
            firewall_label=settings.label("ingress"),
            tags=tuple(tags),
            cluster=cluster.cluster,
            backend_ipv4_range=plan.subnets["app"].nodebalancer_backend_range() if vpc else None,
        ),
        opts=in_cluster,
    )
    # The controller's chart names its Service after the release.
    load_balancer = (
        IngressLoadBalancer(
            "ingress-address",
            IngressLoadBalancerArgs(release=ingress.release, namespace=ingress.namespace, service_name=RELEASE_NAME),
            opts=in_cluster,
        )
        if k.ingress.load_balancer != "none"
        else None
    )
    dns = (
        IngressDns(
            "dns",
            IngressDnsArgs(
                zone=settings.dns.zone,
                hosts=settings.public_hosts,
                target_ipv4=load_balancer.ipv4,
                ttl_sec=settings.dns.ttl_sec,
            ),
        )
        if settings.dns.zone is not None and load_balancer is not None
        else None
    )
    cert_manager = CertManager(
        "cert-manager",
        CertManagerArgs(
            tls=k.tls, ingress_class=ingress.ingress_class, context=context, kubernetes_minor=k.kubernetes_minor
        ),
        opts=in_cluster,
    )

    images: dict[str, AppImage] = {}
    references: dict[str, pulumi.Input[str]] = {}
    digest_pinned: dict[str, bool] = {}
    for workload in k.workloads:
        if workload.build is None:
            assert workload.image is not None
            references[workload.name] = workload.image
            digest_pinned[workload.name] = "@sha256:" in workload.image
            continue
        assert k.registry is not None  # enforced by KubernetesSettings
        password = secrets.get(REGISTRY_PASSWORD) if secrets else None
        if password is None:
            raise SettingsError(
                f"{settings.project}:{REGISTRY_PASSWORD}: missing; workload {workload.name} is built "
                f"and pushed, set it with `pulumi config set --secret {REGISTRY_PASSWORD} <password>`"
            )
        images[workload.name] = AppImage(
            f"image-{workload.name}",
            AppImageArgs(build=workload.build, registry=k.registry, registry_password=password),
        )
        references[workload.name] = images[workload.name].reference
        digest_pinned[workload.name] = True

    secret_env: dict[str, dict[str, pulumi.Input[str]]] = {}
    for workload in k.workloads:
        for name, key in workload.secret_env.items():
            value = secrets.get(key) if secrets else None
            if value is None:  # load_stack_config refuses this before any resource; never reached
                raise SettingsError(f"{settings.project}:{key}: missing; workload {workload.name} reads it as {name}")
            secret_env.setdefault(workload.name, {})[name] = value
    workloads = Workloads(
        "app",
        WorkloadsArgs(
            settings=k,
            context=context,
            connections=connections,
            images=references,
            digest_pinned=digest_pinned,
            crd_dependencies=(ingress.release,),
            issuer_dependencies=(cert_manager.issuer,) if cert_manager.issuer else (),
            secret_env=secret_env,
        ),
        opts=in_cluster,
    )
    return KubernetesTier(
        cluster=cluster,
        provider=cluster.provider,
        kubeconfig=cluster.kubeconfig,
        ingress=ingress,
        cert_manager=cert_manager,
        workloads=workloads,
        images=images,
        load_balancer=load_balancer,
        dns=dns,
    )
