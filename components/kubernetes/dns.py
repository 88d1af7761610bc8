"""The ingress's public address, and DNS records for the stack's public hosts in Linode Domains.

`IngressLoadBalancer` reads the ingress controller's Service its Helm release created and takes the IPv4
address Linode's cloud controller wrote into its `status.loadBalancer.ingress` (the NodeBalancer).
The Service's id waits on the release, so `pulumi preview` of a new stack reads nothing (the
id is unknown) and `pulumi up` reads it once the release is installed: the release is atomic, and
Helm's wait holds until a LoadBalancer Service has its ingress address.

`IngressDns` keeps one A record per public host in an existing Linode Domains zone, looked up
by name. The zone is not created here: the stacks share it (api.example.com for prod,
api.staging.example.com for staging), its delegation at the registrar is a one-time act, and a
stack owning it would delete the other stacks' records on `pulumi destroy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_linode as linode

from components.settings.dns import record_name


def first_ipv4(status: Any) -> str | None:
    """The first IPv4 address in a Service's `status.loadBalancer.ingress`, typed or plain."""

    def field(value: Any, *names: str) -> Any:
        for name in names:
            found = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
            if found is not None:
                return found
        return None

    balancer = field(status, "load_balancer", "loadBalancer") if status is not None else None
    for entry in (field(balancer, "ingress") if balancer is not None else None) or []:
        ip = field(entry, "ip")
        if ip and ":" not in str(ip):
            return str(ip)
    return None


@dataclass(frozen=True)
class IngressLoadBalancerArgs:
    release: k8s.helm.v3.Release  # the ingress controller's release; the Service is read after it
    namespace: str
    service_name: str


class IngressLoadBalancer(pulumi.ComponentResource):
    """The public IPv4 address of the ingress controller's LoadBalancer Service."""

    ipv4: pulumi.Output[str]

    def __init__(self, name: str, args: IngressLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:IngressLoadBalancer", name, None, opts)
        service_id = args.release.status.apply(lambda _: f"{args.namespace}/{args.service_name}")
        self.service = k8s.core.v1.Service.get(
            f"{name}-service", service_id, opts=pulumi.ResourceOptions(parent=self, depends_on=[args.release])
        )
        where = f"Service {args.namespace}/{args.service_name}"

        def ipv4_of(status: Any) -> str:
            address = first_ipv4(status)
            if address is None:
                raise pulumi.RunError(
                    f"{where} has no IPv4 load-balancer address; check the Linode cloud controller "
                    f"(`kubectl -n {args.namespace} describe service {args.service_name}`)"
                )
            return address

        self.ipv4 = self.service.status.apply(ipv4_of)
        self.register_outputs({"ipv4": self.ipv4})


@dataclass(frozen=True)
class IngressDnsArgs:
    zone: str
    hosts: Sequence[str]  # fully qualified, each inside `zone` (checked by the settings)
    target_ipv4: pulumi.Input[str]
    ttl_sec: int = 300


class IngressDns(pulumi.ComponentResource):
    """An A record per public host in the existing Linode Domains zone `zone`."""

    domain_id: pulumi.Output[int]
    records: dict[str, linode.DomainRecord]

    def __init__(self, name: str, args: IngressDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:kubernetes:IngressDns", name, None, opts)
        domain = linode.get_domain_output(domain=args.zone, opts=pulumi.InvokeOutputOptions(parent=self))

        def existing_id(found: Any) -> int:
            if found is None:
                raise pulumi.RunError(
                    f"dns.zone: Linode Domains has no zone {args.zone!r}; create it once "
                    f"(`linode-cli domains create --type master --domain {args.zone} --soa_email <you>`) "
                    "and delegate it at the registrar"
                )
            return int(found)

        self.domain_id = domain.id.apply(existing_id)
        self.records = {}
        for host in args.hosts:
            relative = record_name(host, args.zone)
            if relative is None:
                raise ValueError(f"{host} is not inside the zone {args.zone}")
            self.records[host] = linode.DomainRecord(
                f"{name}-{host.replace('.', '-')}",
                domain_id=self.domain_id,
                record_type="A",
                name=relative,
                target=args.target_ipv4,
                ttl_sec=args.ttl_sec,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"domain_id": self.domain_id, "hosts": list(self.records)})
