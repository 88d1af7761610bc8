"""Declares the application namespace and its workloads from the pure manifests.

Every object comes from `manifests.application_objects`, so what the validators check is
exactly what is declared. Typed pulumi_kubernetes resources are used for built-in kinds (so
the provider validates and awaits them); the ingress controller's edge rules are
CustomResources. The caller passes the explicit Kubernetes provider through `opts.providers`;
children inherit it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.data.connections import ClientProxy, DataConnections
from components.kubernetes.data_proxy import ProxyManifest, config_checksum
from components.kubernetes.manifests import (
    CONNECTION_SECRET,
    application_objects,
    connection_settings,
    workload_secret_name,
)
from components.kubernetes.objects import StackContext
from components.settings.kubernetes import KubernetesSettings

TYPED_KINDS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ResourceQuota"): k8s.core.v1.ResourceQuota,
    ("v1", "LimitRange"): k8s.core.v1.LimitRange,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): k8s.autoscaling.v2.HorizontalPodAutoscaler,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("networking.k8s.io/v1", "Ingress"): k8s.networking.v1.Ingress,
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def secret_keys(connections: DataConnections) -> list[str]:
    """The Secret's keys, known at plan time (values are not): env refs are built from these."""
    ca = "" if connections.ca_certificate is not None else None
    return sorted(connection_settings(connections, dict.fromkeys(connections.services, ""), ca))


def secret_values(connections: DataConnections) -> pulumi.Output[dict[str, str]]:
    roles = list(connections.services)
    passwords = [connections.services[role].password for role in roles]
    ca: pulumi.Input[str | None] = connections.ca_certificate
    return pulumi.Output.secret(
        pulumi.Output.all(ca, *passwords).apply(
            lambda v: connection_settings(connections, dict(zip(roles, v[1:], strict=True)), v[0])
        )
    )


def proxy_manifest(proxy: ClientProxy, connections: DataConnections) -> ProxyManifest:
    """The proxy's configuration, rendered from the addresses pods dial (Outputs on the private
    network path, where Linode assigns them at creation)."""
    names = [connections.name_of(host) for host in proxy.hosts]
    addresses = [connections.dial_addresses.get(name, host) for name, host in zip(names, proxy.hosts, strict=True)]
    config = pulumi.Output.all(*addresses).apply(
        lambda dialled: proxy.render(list(zip(names, (str(a) for a in dialled), strict=True)))
    )
    return ProxyManifest(proxy=proxy, config=config, checksum=config.apply(config_checksum))


@dataclass(frozen=True)
class WorkloadsArgs:
    settings: KubernetesSettings
    context: StackContext
    connections: DataConnections
    images: Mapping[str, pulumi.Input[str]]  # workload name -> pinned reference or pushed digest
    digest_pinned: Mapping[str, bool]
    # What installs the CRDs of the custom resources here (the ingress controller's release).
    crd_dependencies: Sequence[pulumi.Resource] = field(default_factory=tuple)
    issuer_dependencies: Sequence[pulumi.Resource] = field(default_factory=tuple)  # ClusterIssuer
    # workload name -> env var name -> the secret config value (a secret Output) it carries
    secret_env: Mapping[str, Mapping[str, pulumi.Input[str]]] = field(default_factory=dict)


class Workloads(pulumi.ComponentResource):
    namespace: str
    resources: list[pulumi.CustomResource]
    proxies: list[ProxyManifest]  # in-cluster proxies in front of data services (Galera)

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:Workloads", name, None, opts)
        settings = args.settings
        self.namespace = settings.namespace.name
        placeholder = dict.fromkeys(secret_keys(args.connections), "")
        self.proxies = [proxy_manifest(proxy, args.connections) for proxy in args.connections.proxies()]
        objects = application_objects(
            settings,
            args.context,
            args.connections.destinations(),
            args.images,
            placeholder,
            args.digest_pinned,
            args.connections.host_aliases(),
            self.proxies,
        )
        own_secrets = {
            workload_secret_name(workload): args.secret_env.get(workload.name, {}) for workload in settings.workloads
        }
        self.resources = []
        namespace_resource: pulumi.Resource | None = None
        # Custom resources (the ingress controller's edge rules) wait for their CRDs; an Ingress
        # waits for the edge rules it references and for the certificate issuer.
        custom_resources: list[pulumi.Resource] = []
        for obj in objects:
            kind = obj["kind"]
            custom = (obj["apiVersion"], kind) not in TYPED_KINDS
            depends: list[pulumi.Resource] = [namespace_resource] if namespace_resource else []
            if custom:
                depends += list(args.crd_dependencies)
            if kind == "Ingress":
                depends += custom_resources + list(args.issuer_dependencies)
            opts_child = pulumi.ResourceOptions(parent=self, depends_on=depends)
            logical = f"{name}-{kind.lower()}-{obj['metadata']['name']}"
            resource = self._declare(logical, obj, args.connections, opts_child, own_secrets)
            if kind == "Namespace":
                namespace_resource = resource
            if custom:
                custom_resources.append(resource)
            self.resources.append(resource)
        self.register_outputs({"namespace": self.namespace, "objects": len(self.resources)})

    @staticmethod
    def _declare(
        logical: str,
        obj: dict[str, Any],
        connections: DataConnections,
        opts: pulumi.ResourceOptions,
        own_secrets: Mapping[str, Mapping[str, pulumi.Input[str]]],
    ) -> pulumi.CustomResource:
        key = (obj["apiVersion"], obj["kind"])
        if key not in TYPED_KINDS:
            return k8s.apiextensions.CustomResource(
                logical,
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                metadata=obj["metadata"],
                spec=obj["spec"],
                opts=opts,
            )
        fields = {_snake(k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        if obj["kind"] == "Secret" and obj["metadata"]["name"] == CONNECTION_SECRET:
            fields["string_data"] = secret_values(connections)
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            )
        elif obj["kind"] == "Secret" and obj["metadata"]["name"] in own_secrets:
            values = own_secrets[obj["metadata"]["name"]]
            missing = sorted(set(obj["stringData"]) - set(values))
            if missing:
                raise ValueError(f"{logical}: no secret value for {', '.join(missing)}")
            fields["string_data"] = pulumi.Output.secret(pulumi.Output.all(**{k: values[k] for k in obj["stringData"]}))
            opts = pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
            )
        resource: pulumi.CustomResource = TYPED_KINDS[key](logical, opts=opts, **fields)
        return resource
