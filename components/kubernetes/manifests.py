"""Kubernetes objects of the application namespace, as plain dicts (pure, no Pulumi).

Everything here is a function of the settings and plain data, so the same objects feed the
Pulumi resources, the unit tests and the real validators (kubernetes-validate, checkov).
Values that are only known at deploy time (an image digest) may be passed in as any object;
the functions only place them.

Edge behaviour (headers, rate limit, compression, redirect) belongs to the ingress controller:
ingress.py renders its objects and the annotations that apply them to each Ingress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from components.data.connections import DataConnections
from components.kubernetes.data_proxy import ProxyManifest, proxy_destinations, proxy_network_policies, proxy_objects
from components.kubernetes.ingress import INGRESS_CONTROLLER, edge_objects, ingress_annotations
from components.kubernetes.objects import PART_OF, StackContext, common_labels, namespace_object, object_meta
from components.linode.catalog import LINODE_PRIVATE_NETWORK
from components.settings.kubernetes import KubernetesSettings, WorkloadSettings

CONNECTION_SECRET = "data-connections"
CA_KEY = "ca.crt"
CA_MOUNT_DIR = "/etc/platform-ca"
KUBE_DNS = {"k8s-app": "kube-dns"}
ACME_SOLVER_LABEL = {"acme.cert-manager.io/http01-solver": "true"}
ACME_SOLVER_PORT = 8089  # cert-manager's HTTP-01 solver pod listens here

# checkov suppressions, each with the reason that makes it acceptable here. They go into the
# objects themselves (`checkov.io/skipN` annotations) so the scanner and the reader see them.
SUPPRESS_SECRET_ENV = (
    "CKV_K8S_35",
    "connection URLs come from one Secret through secretKeyRef, as the platform contract "
    "requires (12-factor apps read DATABASE_URL/REDIS_URL/AMQP_URL), and the workload's own "
    "secrets from its own Secret the same way; the CA is mounted as a file",
)
SUPPRESS_DIGEST = (
    "CKV_K8S_43",
    "image pinned to an immutable release tag by stack config ('latest' and untagged refused); "
    "images built by this program are deployed by digest",
)


def cluster_issuer_name(settings: KubernetesSettings) -> str | None:
    return None if settings.tls.mode == "none" else settings.tls.mode


def app_url(settings: KubernetesSettings) -> str | None:
    """Where the first workload with an ingress answers: the deployment's smoke-check target."""
    routes = [w.ingress for w in settings.workloads if w.ingress is not None]
    if not routes:
        return None
    scheme = "http" if settings.tls.mode == "none" else "https"
    return f"{scheme}://{routes[0].host}{routes[0].path}"


def workload_selector(workload: WorkloadSettings) -> dict[str, str]:
    return {"app.kubernetes.io/name": workload.name, "app.kubernetes.io/instance": workload.name}


def _skip_annotations(skips: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(skips, start=1)}


# --- namespace ---------------------------------------------------------------------------------


def namespace_guardrails(settings: KubernetesSettings, ctx: StackContext) -> list[dict[str, Any]]:
    """ResourceQuota and LimitRange of the application namespace, from config."""
    ns = settings.namespace
    quota = ns.quota
    limits = ns.limit_range
    return [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": object_meta("app-quota", ns.name, ctx),
            "spec": {
                "hard": {
                    "requests.cpu": quota.requests_cpu,
                    "requests.memory": quota.requests_memory,
                    "limits.cpu": quota.limits_cpu,
                    "limits.memory": quota.limits_memory,
                    "pods": str(quota.pods),
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": object_meta("container-defaults", ns.name, ctx),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": {
                            "cpu": limits.default_request_cpu,
                            "memory": limits.default_request_memory,
                        },
                        "default": {"cpu": limits.default_limit_cpu, "memory": limits.default_limit_memory},
                        "max": {"cpu": limits.max_cpu, "memory": limits.max_memory},
                    }
                ]
            },
        },
    ]


# --- network policies ----------------------------------------------------------------------------


def not_proxies(proxies: Sequence[ProxyManifest]) -> list[dict[str, Any]]:
    """A label-selector expression matching every pod but the proxies' (also pods without the label)."""
    names = [manifest.proxy.name for manifest in proxies]
    return [{"key": "app.kubernetes.io/name", "operator": "NotIn", "values": names}] if names else []


def app_pod_selector(proxies: Sequence[ProxyManifest] = ()) -> dict[str, Any]:
    """The application's own pods: ours (part-of), the proxies excepted."""
    selector: dict[str, Any] = {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}
    if proxies:
        selector["matchExpressions"] = not_proxies(proxies)
    return selector


def network_policies(
    settings: KubernetesSettings,
    ctx: StackContext,
    destinations: Iterable[tuple[str, int]],
    proxies: Sequence[ProxyManifest] = (),
) -> list[dict[str, Any]]:
    """Default deny both ways, then exactly: DNS, ingress controller -> ports, pods -> data tier,
    and for each proxy: app pods -> proxy -> its nodes (a proxy gets neither DNS nor the app's
    data egress: it dials IP addresses on its own ports only)."""
    ns = settings.namespace.name
    app_pods = app_pod_selector(proxies)
    everyone_but_proxies: dict[str, Any] = {"matchExpressions": not_proxies(proxies)} if proxies else {}
    policies: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta("default-deny-all", ns, ctx),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": object_meta("allow-dns-egress", ns, ctx),
            "spec": {
                "podSelector": everyone_but_proxies,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": dict(KUBE_DNS)},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        },
    ]
    from_controller = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.ingress.namespace}},
            "podSelector": INGRESS_CONTROLLER.pod_selector(),
        }
    ]
    for workload in settings.workloads:
        if workload.port is None:
            continue
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": object_meta(f"allow-ingress-controller-to-{workload.name}", ns, ctx),
                "spec": {
                    "podSelector": {"matchLabels": workload_selector(workload)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": from_controller, "ports": [{"protocol": "TCP", "port": workload.port}]}],
                },
            }
        )
    if ctx.tls:
        # cert-manager's HTTP-01 solver pods run in this namespace; the controller must reach them.
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": object_meta("allow-ingress-controller-to-acme-solver", ns, ctx),
                "spec": {
                    "podSelector": {"matchLabels": dict(ACME_SOLVER_LABEL)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": from_controller, "ports": [{"protocol": "TCP", "port": ACME_SOLVER_PORT}]}],
                },
            }
        )
    data_rules = data_egress_rules(settings, destinations)
    if data_rules:
        policies.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": object_meta("allow-data-tier-egress", ns, ctx),
                "spec": {
                    "podSelector": app_pods,
                    "policyTypes": ["Egress"],
                    "egress": data_rules,
                },
            }
        )
    for manifest in proxies:
        node_egress = data_egress_rules(settings, proxy_destinations(manifest.proxy))
        policies += proxy_network_policies(manifest.proxy, ns, ctx, app_pods, node_egress)
    return policies


def data_egress_rules(settings: KubernetesSettings, destinations: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """Egress to the data tier, the mirror image of the data firewalls' app-tier rules.

    vpc (enterprise): each data VM's VPC address on its own port, one rule per pair.
    private-network (standard): the nodes' SNATed traffic crosses Linode's private network to
    the data VMs' private addresses (assigned at creation), so the destination is that network
    on the data ports only; the data firewalls on the other side admit just this cluster's nodes.
    """
    pairs = list(dict.fromkeys(destinations))
    if settings.data_path == "vpc":
        return [
            {"to": [{"ipBlock": {"cidr": f"{address}/32"}}], "ports": [{"protocol": "TCP", "port": port}]}
            for address, port in pairs
        ]
    ports = sorted({port for _, port in pairs})
    if not ports:
        return []
    return [
        {
            "to": [{"ipBlock": {"cidr": LINODE_PRIVATE_NETWORK}}],
            "ports": [{"protocol": "TCP", "port": port} for port in ports],
        }
    ]


# --- connection secret ---------------------------------------------------------------------------


def connection_settings(
    connections: DataConnections, passwords: Mapping[str, str], ca_certificate: str | None
) -> dict[str, str]:
    """The Secret's keys: each data service's settings (URLs, Sentinel and node lists), the CA
    where TLS is on. `passwords` are the plain passwords by data role."""
    data = connections.environment(passwords, ca_file=f"{CA_MOUNT_DIR}/{CA_KEY}")
    if ca_certificate is not None:
        data[CA_KEY] = ca_certificate
    return data


def connection_secret(namespace: str, ctx: StackContext, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(CONNECTION_SECRET, namespace, ctx),
        "stringData": dict(data),
    }


def workload_secret_name(workload: WorkloadSettings) -> str:
    """The Secret holding one workload's own secrets (its `secret_env`)."""
    return f"{workload.name}-secrets"


def workload_secret(
    workload: WorkloadSettings, namespace: str, ctx: StackContext, data: Mapping[str, Any]
) -> dict[str, Any]:
    """One workload's Secret: env var name -> value. `data` holds placeholders in pure code;
    the component fills in the secret Outputs."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(workload_secret_name(workload), namespace, ctx, labels=workload_selector(workload)),
        "stringData": {name: data[name] for name in sorted(workload.secret_env)},
    }


# --- workloads ---------------------------------------------------------------------------------


def _env(workload: WorkloadSettings, secret_keys: Sequence[str]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in sorted(workload.env.items())]
    for name in sorted(workload.secret_env):
        env.append(
            {"name": name, "valueFrom": {"secretKeyRef": {"name": workload_secret_name(workload), "key": name}}}
        )
    for key in secret_keys:
        if key == CA_KEY:
            env.append({"name": "DATA_CA_FILE", "value": f"{CA_MOUNT_DIR}/{CA_KEY}"})
        else:
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": CONNECTION_SECRET, "key": key}}})
    return env


def _probes(workload: WorkloadSettings) -> dict[str, Any]:
    if workload.port is not None:
        return {
            "readinessProbe": {
                "httpGet": {"path": workload.readiness_path, "port": "http"},
                "initialDelaySeconds": 5,
                "periodSeconds": 5,
                "failureThreshold": 3,
            },
            "livenessProbe": {
                "httpGet": {"path": workload.liveness_path, "port": "http"},
                "initialDelaySeconds": 30,
                "periodSeconds": 10,
                "failureThreshold": 3,
            },
        }
    command = list(workload.health_command or ())
    return {
        "readinessProbe": {"exec": {"command": command}, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {
            "exec": {"command": command},
            "initialDelaySeconds": 30,
            "periodSeconds": 20,
            "failureThreshold": 3,
        },
    }


def image_has_digest(image: object) -> bool:
    return isinstance(image, str) and "@sha256:" in image


def deployment(
    workload: WorkloadSettings,
    namespace: str,
    ctx: StackContext,
    image: Any,
    secret_keys: Sequence[str],
    digest_pinned: bool,
    host_aliases: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A Deployment whose pods meet the Pod Security Standards `restricted` profile."""
    selector = workload_selector(workload)
    uid = workload.run_as_user
    container: dict[str, Any] = {
        "name": workload.name,
        "image": image,
        "imagePullPolicy": "Always",
        "env": _env(workload, secret_keys),
        "resources": {
            "requests": {"cpu": workload.cpu_request, "memory": workload.memory_request},
            "limits": {"cpu": workload.cpu_limit, "memory": workload.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **_probes(workload),
    }
    if workload.port is not None:
        container["ports"] = [{"name": "http", "containerPort": workload.port, "protocol": "TCP"}]
    if workload.command:
        container["command"] = list(workload.command)
    if workload.args:
        container["args"] = list(workload.args)
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if CA_KEY in secret_keys:
        container["volumeMounts"].append({"name": "data-ca", "mountPath": CA_MOUNT_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "data-ca",
                "secret": {"secretName": CONNECTION_SECRET, "items": [{"key": CA_KEY, "path": CA_KEY}]},
            }
        )
    skips = [SUPPRESS_SECRET_ENV]
    if not digest_pinned:
        skips.append(SUPPRESS_DIGEST)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {"labels": {**common_labels(ctx), **selector}},
            "spec": {
                "serviceAccountName": workload.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": uid,
                    "runAsGroup": uid,
                    "fsGroup": uid,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector},
                    }
                ],
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if host_aliases:
        # The data nodes' names (URLs, certificate SANs) pinned to the addresses pods dial.
        spec["template"]["spec"]["hostAliases"] = [dict(alias) for alias in host_aliases]
    if not workload.autoscaled:
        # With an HPA the replica count belongs to the HPA; declaring it here would fight it.
        spec["replicas"] = workload.initial_replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(workload.name, namespace, ctx, labels=selector, annotations=_skip_annotations(skips)),
        "spec": spec,
    }


def service_account(workload: WorkloadSettings, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(workload.name, namespace, ctx, labels=workload_selector(workload)),
        "automountServiceAccountToken": False,
    }


def service(workload: WorkloadSettings, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(workload.name, namespace, ctx, labels=workload_selector(workload)),
        "spec": {
            "type": "ClusterIP",
            "selector": workload_selector(workload),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(workload: WorkloadSettings, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(workload.name, namespace, ctx, labels=workload_selector(workload)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.name},
            "minReplicas": workload.min_replicas,
            "maxReplicas": workload.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": workload.target_cpu_utilization,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(workload: WorkloadSettings, namespace: str, ctx: StackContext) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(workload.name, namespace, ctx, labels=workload_selector(workload)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": workload_selector(workload)}},
    }


# --- edge: Ingress -------------------------------------------------------------------------------


def ingress(workload: WorkloadSettings, namespace: str, ctx: StackContext) -> dict[str, Any]:
    assert workload.ingress is not None
    annotations = ingress_annotations(namespace, ctx)
    spec: dict[str, Any] = {
        "ingressClassName": INGRESS_CONTROLLER.ingress_class,
        "rules": [
            {
                "host": workload.ingress.host,
                "http": {
                    "paths": [
                        {
                            "path": workload.ingress.path,
                            "pathType": "Prefix",
                            "backend": {"service": {"name": workload.name, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if ctx.tls:
        assert ctx.cluster_issuer is not None
        annotations["cert-manager.io/cluster-issuer"] = ctx.cluster_issuer
        spec["tls"] = [{"hosts": [workload.ingress.host], "secretName": f"{workload.name}-tls"}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(
            workload.name, namespace, ctx, labels=workload_selector(workload), annotations=annotations
        ),
        "spec": spec,
    }


def workload_objects(
    workload: WorkloadSettings,
    namespace: str,
    ctx: StackContext,
    image: Any,
    secret_keys: Sequence[str],
    digest_pinned: bool | None = None,
    host_aliases: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Everything one workload needs, in apply order."""
    pinned = image_has_digest(image) if digest_pinned is None else digest_pinned
    objects: list[dict[str, Any]] = []
    if workload.secret_env:
        objects.append(workload_secret(workload, namespace, ctx, dict.fromkeys(workload.secret_env, "")))
    objects += [
        service_account(workload, namespace, ctx),
        deployment(workload, namespace, ctx, image, secret_keys, pinned, host_aliases),
    ]
    if workload.port is not None:
        objects.append(service(workload, namespace, ctx))
    if workload.autoscaled:
        objects.append(autoscaler(workload, namespace, ctx))
    if workload.initial_replicas > 1:
        objects.append(disruption_budget(workload, namespace, ctx))
    if workload.ingress is not None:
        objects.append(ingress(workload, namespace, ctx))
    return objects


def application_objects(
    settings: KubernetesSettings,
    ctx: StackContext,
    destinations: Iterable[tuple[str, int]],
    images: Mapping[str, Any],
    secret_data: Mapping[str, Any],
    digest_pinned: Mapping[str, bool] | None = None,
    host_aliases: Sequence[Mapping[str, Any]] = (),
    proxies: Sequence[ProxyManifest] = (),
) -> list[dict[str, Any]]:
    """Namespace, guardrails, policies, edge rules, the connection Secret, every workload and
    the proxies in front of data services (`DataConnections.proxies()`)."""
    ns = settings.namespace.name
    clash = {w.name for w in settings.workloads} & {m.proxy.name for m in proxies}
    if clash:
        raise ValueError(f"workload name(s) {sorted(clash)} are taken by the data tier's proxy")
    secret_keys = sorted(secret_data)
    objects = [namespace_object(ns, settings.kubernetes_minor, ctx)]
    objects += namespace_guardrails(settings, ctx)
    objects += network_policies(settings, ctx, destinations, proxies)
    if any(w.ingress for w in settings.workloads):
        objects += edge_objects(settings, ctx)
    objects.append(connection_secret(ns, ctx, secret_data))
    for workload in settings.workloads:
        pinned = None if digest_pinned is None else digest_pinned.get(workload.name)
        objects += workload_objects(workload, ns, ctx, images[workload.name], secret_keys, pinned, host_aliases)
    for manifest in proxies:
        objects += proxy_objects(manifest, ns, ctx)
    return objects
