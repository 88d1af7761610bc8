"""The stack's internal CA (pulumi-tls) and the per-node server certificates it issues.

Clients of the data tier trust only this CA; each server certificate carries the node's VPC
address as an IP SAN (clients connect by address, so hostname verification checks the IP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

CA_VALIDITY_HOURS = 10 * 365 * 24
SERVER_VALIDITY_HOURS = 2 * 365 * 24
# pulumi up within the last 30 days of a server certificate's life re-issues it (cloud-init does
# not pick it up on an existing VM: see the README's data VM rollout runbook).
SERVER_EARLY_RENEWAL_HOURS = 30 * 24


@dataclass(frozen=True)
class InternalCaArgs:
    common_name: str  # e.g. "platform-infra prod internal CA"
    organization: str = "platform-infra"


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]  # secret


class InternalCa(pulumi.ComponentResource):
    ca_certificate_pem: pulumi.Output[str]

    def __init__(self, name: str, args: InternalCaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("platform:security:InternalCa", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name = name
        self._organization = args.organization
        self.key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        self.certificate = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=self.key.private_key_pem,
            is_ca_certificate=True,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            validity_period_hours=CA_VALIDITY_HOURS,
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.common_name, organization=args.organization),
            opts=child,
        )
        self.ca_certificate_pem = self.certificate.cert_pem
        self.register_outputs({"ca_certificate_pem": self.ca_certificate_pem})

    def issue_server_certificate(
        self,
        name: str,
        common_name: str,
        ip_addresses: Sequence[str],
        dns_names: Sequence[str] = (),
        parent: pulumi.Resource | None = None,
    ) -> IssuedCertificate:
        """A server (and client, for cluster peers) certificate for one node, signed by this CA."""
        child = pulumi.ResourceOptions(parent=parent or self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            ip_addresses=list(ip_addresses),
            dns_names=list(dns_names) or None,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization=self._organization),
            opts=child,
        )
        certificate = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=self.key.private_key_pem,
            ca_cert_pem=self.certificate.cert_pem,
            # Galera, replication and Erlang distribution peers also present it as clients.
            allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
            validity_period_hours=SERVER_VALIDITY_HOURS,
            early_renewal_hours=SERVER_EARLY_RENEWAL_HOURS,
            opts=child,
        )
        return IssuedCertificate(
            cert_pem=certificate.cert_pem, private_key_pem=pulumi.Output.secret(key.private_key_pem)
        )
