"""Foundation settings: region, address plan, admin access, bastion, image, instance limit."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from components.linode.catalog import IMAGES, LINODE_PRIVATE_NETWORK, PLANS, VPC_REGIONS
from components.settings.common import KeyedError, StackRequired, StrictModel

Tier = Literal["admin", "data", "app"]
TIERS: tuple[Tier, ...] = ("admin", "data", "app")

# Linode's private network and LKE's pod/service ranges live here; a VPC subnet may not use it.
LINODE_RESERVED = ipaddress.ip_network(LINODE_PRIVATE_NETWORK)
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
# Smallest subnet per tier: the address plan's role blocks must fit (see address_plan.py).
MAX_PREFIX: dict[Tier, int] = {"admin": 28, "data": 26, "app": 24}
MAX_PREFIX_REASON: dict[Tier, str] = {
    "admin": "the bastion block",
    "data": "the MariaDB, Redis and RabbitMQ blocks",
    "app": "the Kubernetes nodes",
}
ANYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def _parse_network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise ValueError("allowed: a CIDR string such as 10.20.0.0/16")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError("allowed: a CIDR with no host bits set, such as 10.20.0.0/16") from None


def _parse_ipv4_network(value: object) -> ipaddress.IPv4Network:
    network = value if isinstance(value, ipaddress.IPv4Network) else _parse_network(value)
    if not isinstance(network, ipaddress.IPv4Network):
        raise ValueError("allowed: an IPv4 CIDR such as 10.20.0.0/16")
    return network


Ipv4Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_parse_ipv4_network)]
AnyCidr = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_parse_network)]


def validate_plan(value: str) -> str:
    """Plan ids are checked against Linode's catalogue, so a typo fails before `pulumi up`."""
    if value not in PLANS:
        raise ValueError(f"allowed: a Linode plan id, one of {', '.join(sorted(PLANS))}")
    return value


class NetworkSettings(StrictModel):
    """One VPC per stack and one subnet per tier, all inside it."""

    vpc_cidr: Ipv4Cidr = Field(description="allowed: an RFC 1918 IPv4 CIDR, e.g. 10.20.0.0/16")
    subnets: dict[Tier, Ipv4Cidr] = Field(
        description="allowed: a mapping of the tiers admin, data, app to IPv4 CIDRs inside vpc_cidr"
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_is_private_and_not_reserved(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not any(value.subnet_of(block) for block in RFC1918):  # type: ignore[arg-type]
            raise ValueError(
                "allowed: a private (RFC 1918) range: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            )
        if value.overlaps(LINODE_RESERVED):
            raise ValueError(
                "allowed: a range outside 192.168.128.0/17, which Linode reserves for its private "
                "network and LKE"
            )
        if value.prefixlen > 24:
            raise ValueError("allowed: a prefix of /24 or shorter, so every tier gets a subnet")
        return value

    @field_validator("subnets")
    @classmethod
    def _every_tier_has_a_subnet(
        cls, value: dict[Tier, ipaddress.IPv4Network]
    ) -> dict[Tier, ipaddress.IPv4Network]:
        missing = [tier for tier in TIERS if tier not in value]
        if missing:
            raise ValueError(
                f"allowed: one subnet for each tier {', '.join(TIERS)}; missing {', '.join(missing)}"
            )
        for tier, cidr in value.items():
            if cidr.prefixlen > MAX_PREFIX[tier]:
                raise ValueError(
                    f"allowed: the {tier} subnet at /{MAX_PREFIX[tier]} or larger (it holds "
                    f"{MAX_PREFIX_REASON[tier]}); got {cidr}"
                )
        tiers = list(value.items())
        for i, (tier_a, a) in enumerate(tiers):
            for tier_b, b in tiers[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(
                        f"allowed: subnets that do not overlap; {tier_a} {a} overlaps {tier_b} {b}"
                    )
        return value

    @model_validator(mode="after")
    def _subnets_inside_vpc(self) -> NetworkSettings:
        for tier, cidr in self.subnets.items():
            if not cidr.subnet_of(self.vpc_cidr):
                raise KeyedError(
                    f"subnets.{tier}",
                    str(cidr),
                    f"allowed: a subnet inside vpc_cidr {self.vpc_cidr}",
                )
        return self


class BastionSettings(StrictModel):
    """The one VM reachable over SSH from outside, and only from the admin CIDRs."""

    plan: Annotated[str, StackRequired()] = Field(default="g6-nanode-1", description="allowed: a Linode plan id")

    @field_validator("plan")
    @classmethod
    def _plan_exists(cls, value: str) -> str:
        return validate_plan(value)


class FoundationSettings(StrictModel):
    """The top-level keys every stack has."""

    region: str = Field(
        description=f"allowed: a Linode region with VPC support: {', '.join(sorted(VPC_REGIONS))}"
    )
    network: NetworkSettings = Field(description="allowed: {vpc_cidr, subnets: {admin, data, app}}")
    admin_cidrs: list[AnyCidr] = Field(
        min_length=1, description="allowed: a non-empty list of CIDRs operators connect from"
    )
    # Where the deploy pipeline reaches the Kubernetes API from: the egress of the self-hosted
    # runner the workflows select with the repository variable CLOUD_RUNNER (README, "CI and the
    # Kubernetes API"). Admitted by the LKE control-plane ACL only, never by a firewall.
    ci_cidrs: list[AnyCidr] = Field(
        default_factory=list,
        description="allowed: a list of CIDRs of the CI runner's egress (the LKE API ACL admits them)",
    )
    ssh_keys: list[str] = Field(min_length=1, description="allowed: a non-empty list of SSH public keys")
    image: str = Field(default="linode/debian13", description=f"allowed: one of {', '.join(sorted(IMAGES))}")
    max_instances: int = Field(
        ge=1, le=100, description="allowed: the most VMs and nodes this stack may run, 1 to 100"
    )
    bastion: Annotated[BastionSettings, StackRequired()] = Field(
        default_factory=BastionSettings, description="allowed: {plan: <Linode plan id>}"
    )

    @field_validator("region")
    @classmethod
    def _region_has_vpcs(cls, value: str) -> str:
        if value not in VPC_REGIONS:
            raise ValueError(f"allowed: a Linode region with VPC support: {', '.join(sorted(VPC_REGIONS))}")
        return value

    @field_validator("image")
    @classmethod
    def _image_known(cls, value: str) -> str:
        if value not in IMAGES:
            raise ValueError(f"allowed: one of {', '.join(sorted(IMAGES))}")
        return value

    @field_validator("ssh_keys")
    @classmethod
    def _keys_are_public_keys(cls, value: list[str]) -> list[str]:
        allowed = (
            "ssh-ed25519 ",
            "ecdsa-sha2-nistp256 ",
            "ecdsa-sha2-nistp384 ",
            "ssh-rsa ",
            "sk-ssh-ed25519@",
        )
        for key in value:
            if not key.startswith(allowed) or len(key.split()) < 2:
                raise ValueError(
                    "allowed: OpenSSH public keys (ssh-ed25519, ecdsa-sha2-*, ssh-rsa), one per entry"
                )
            if "PRIVATE KEY" in key:
                raise ValueError("allowed: public keys only; this looks like a private key")
        return value
