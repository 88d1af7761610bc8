"""Cloud Firewalls: inbound DROP by default, every opening named and sourced.

One vocabulary for every firewall of the platform (VM roles, LKE nodes, the NodeBalancer):
the rules are plain data (`InboundRule`) built by the tier that knows its ports, and
`inbound_firewall` is the one place that turns them into a `linode.Firewall`, so the rules can
be tested without Pulumi and the policy pack reads every firewall back the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import pulumi
import pulumi_linode as linode

from components.linode.labels import LabelError, label_problems

# IPENCAP is IP-in-IP (protocol 4), which Calico on the LKE nodes uses between pods.
Protocol = Literal["TCP", "UDP", "ICMP", "IPENCAP"]

ANYWHERE = frozenset({"0.0.0.0/0", "::/0"})


class FirewallRuleError(ValueError):
    """A rule we refuse to build (open to the world, bad label, no source)."""


@dataclass(frozen=True)
class InboundRule:
    """One ACCEPT rule: who (sources) may reach which ports over which protocol."""

    label: str
    protocol: Protocol
    ports: str  # "22", "3306", "4567-4568", "" for ICMP and IPENCAP
    sources: tuple[str, ...]
    public: bool = False  # only the ingress entry point may accept the world, and must say so

    def __post_init__(self) -> None:
        problems = label_problems("firewall_rule", self.label)
        if problems:
            raise FirewallRuleError("; ".join(problems))
        if not self.sources:
            raise FirewallRuleError(f"rule {self.label} has no sources")
        for source in self.sources:
            ipaddress.ip_network(source, strict=True)
        if not self.public and ANYWHERE & set(self.sources):
            raise FirewallRuleError(
                f"rule {self.label} opens {self.ports or self.protocol} to the whole internet"
            )

    @property
    def ipv4_sources(self) -> list[str]:
        return [s for s in self.sources if isinstance(ipaddress.ip_network(s), ipaddress.IPv4Network)]

    @property
    def ipv6_sources(self) -> list[str]:
        return [s for s in self.sources if isinstance(ipaddress.ip_network(s), ipaddress.IPv6Network)]

    def to_args(self) -> linode.FirewallInboundArgs:
        return linode.FirewallInboundArgs(
            label=self.label,
            action="ACCEPT",
            protocol=self.protocol,
            ports=self.ports or None,
            ipv4s=self.ipv4_sources or None,
            ipv6s=self.ipv6_sources or None,
        )


# A rule whose sources are known only at deploy time (the LKE nodes' private addresses) is an
# Output; the firewall resolves it with the others.
RuleInput: TypeAlias = "InboundRule | pulumi.Output[InboundRule]"


def inbound_rule(
    label: str, protocol: Protocol, ports: str, sources: pulumi.Input[Sequence[str]]
) -> RuleInput:
    """An InboundRule now when the sources are plain, an Output of one when they are not."""
    if isinstance(sources, Sequence):
        return InboundRule(label, protocol, ports, tuple(sources))
    return pulumi.Output.all(sources).apply(lambda resolved: InboundRule(label, protocol, ports, tuple(resolved[0])))


def _inbound_args(firewall_label: str, rules: Sequence[InboundRule]) -> list[linode.FirewallInboundArgs]:
    labels = [rule.label for rule in rules]
    if len(labels) != len(set(labels)):
        raise FirewallRuleError(f"firewall {firewall_label} has duplicate rule labels: {labels}")
    return [rule.to_args() for rule in rules]


def ssh_from_bastion(bastion_address: str) -> InboundRule:
    """Every VM but the bastion takes SSH only from the bastion's VPC address."""
    return InboundRule("ssh-from-bastion", "TCP", "22", (f"{bastion_address}/32",))


def ssh_from_admins(admin_cidrs: Sequence[str]) -> InboundRule:
    return InboundRule("ssh-from-admins", "TCP", "22", tuple(admin_cidrs))


def icmp_from(label: str, sources: Sequence[str]) -> InboundRule:
    return InboundRule(label, "ICMP", "", tuple(sources))


def inbound_firewall(
    resource_name: str,
    label: str,
    rules: Sequence[RuleInput],
    tags: Sequence[str],
    opts: pulumi.ResourceOptions,
    linodes: pulumi.Input[Sequence[pulumi.Input[int]]] | None = None,
) -> linode.Firewall:
    """The one way a firewall is built: the rules accepted, everything else inbound dropped.

    `linodes` attaches instances by id, for nodes created by someone else (LKE standard pools);
    VMs of our own attach themselves at creation through `firewall_id` instead.
    """
    problems = label_problems("firewall", label)
    if problems:
        raise LabelError("; ".join(problems))
    plain = [rule for rule in rules if isinstance(rule, InboundRule)]
    inbounds: pulumi.Input[Sequence[pulumi.Input[linode.FirewallInboundArgs]]]
    if len(plain) == len(rules):
        inbounds = _inbound_args(label, plain)
    else:
        _inbound_args(label, plain)  # refuse what is already known now, not at deploy time
        inbounds = pulumi.Output.all(*rules).apply(lambda resolved: _inbound_args(label, resolved))
    return linode.Firewall(
        resource_name,
        label=label,
        inbound_policy="DROP",
        outbound_policy="ACCEPT",
        inbounds=inbounds,
        linodes=linodes,
        tags=list(tags),
        opts=opts,
    )


@dataclass(frozen=True)
class RoleFirewallArgs:
    label: str
    role: str
    rules: tuple[RuleInput, ...]
    tags: tuple[str, ...] = field(default_factory=tuple)


class RoleFirewall(pulumi.ComponentResource):
    """One firewall per role; VMs attach to it at creation (`firewall_id`), never unprotected."""

    firewall_id: pulumi.Output[int]

    def __init__(self, name: str, args: RoleFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:network:RoleFirewall", name, None, opts)
        self.rules = args.rules
        self.firewall = inbound_firewall(
            f"{name}-firewall", args.label, args.rules, args.tags, pulumi.ResourceOptions(parent=self)
        )
        self.firewall_id = self.firewall.id.apply(int)
        self.register_outputs({"firewall_id": self.firewall_id})
