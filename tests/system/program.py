"""The whole program under mocks, with real TLS material, seen as the VMs the system layer boots.

The ONLY place the system layer touches the offline engine (tools/offline.py): `run_program`
(with `extra_outputs=real_tls_outputs`), `stack_config` and `unwrap_secret`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tools.offline import PROJECT, ResourceRecord, run_program, stack_config, unwrap_secret

STACKS = ("dev", "staging", "prod")
INSTANCE = "linode:index/instance:Instance"
FIREWALL = "linode:index/firewall:Firewall"


# --- real TLS material for the pulumi-tls resources -------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(subject: dict[str, Any] | None) -> x509.Name:
    subject = subject or {}
    attrs = []
    if subject.get("organization"):
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attrs)


def _key_usage(uses: list[str]) -> tuple[x509.KeyUsage, list[x509.ObjectIdentifier]]:
    usage = x509.KeyUsage(
        digital_signature="digital_signature" in uses,
        content_commitment=False,
        key_encipherment="key_encipherment" in uses,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign="cert_signing" in uses,
        crl_sign="crl_signing" in uses,
        encipher_only=False,
        decipher_only=False,
    )
    ekus = []
    if "server_auth" in uses:
        ekus.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if "client_auth" in uses:
        ekus.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return usage, ekus


def _sign(builder: x509.CertificateBuilder, inputs: dict[str, Any], signer: ec.EllipticCurvePrivateKey) -> str:
    now = dt.datetime.now(dt.UTC)
    hours = int(inputs.get("validityPeriodHours") or 24 * 365)
    usage, ekus = _key_usage(list(inputs.get("allowedUses") or []))
    builder = (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=hours))
        .add_extension(usage, critical=True)
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _plain(value: Any) -> Any:
    return unwrap_secret(value)[0]


def _key(pem: Any) -> Any:
    """A PEM private key from a record input (maybe secret-wrapped); ECDSA here."""
    return serialization.load_pem_private_key(_plain(pem).encode(), None)


def real_tls_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """extra_outputs hook: keys, CSRs and certificates that OpenSSL, Erlang and MariaDB accept."""
    if type_ == "tls:index/privateKey:PrivateKey":
        key = ec.generate_private_key(ec.SECP256R1())
        pem = _pem_key(key)
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        return {"private_key_pem": pem, "public_key_pem": public, "private_key_pem_pkcs8": pem}
    if type_ == "tls:index/certRequest:CertRequest":
        key = _key(inputs["privateKeyPem"])
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(a)) for a in inputs.get("ipAddresses") or []
        ]
        sans += [x509.DNSName(d) for d in inputs.get("dnsNames") or []]
        request = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if sans:
            request = request.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        csr = request.sign(key, hashes.SHA256())
        return {"cert_request_pem": csr.public_bytes(serialization.Encoding.PEM).decode()}
    if type_ == "tls:index/selfSignedCert:SelfSignedCert":
        key = _key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject"))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .add_extension(x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        return {"cert_pem": _sign(builder, inputs, key)}
    if type_ == "tls:index/locallySignedCert:LocallySignedCert":
        csr = x509.load_pem_x509_csr(_plain(inputs["certRequestPem"]).encode())
        ca_key = _key(inputs["caPrivateKeyPem"])
        ca_cert = x509.load_pem_x509_certificate(_plain(inputs["caCertPem"]).encode())
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca_cert.subject)
            .public_key(csr.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                False,
            )
        )
        for ext in csr.extensions:
            builder = builder.add_extension(ext.value, ext.critical)
        return {"cert_pem": _sign(builder, inputs, ca_key)}
    return {}


# --- the program run -----------------------------------------------------------------------------


@cache
def layer_ssh_key() -> tuple[Path, str]:
    """A throw-away ed25519 key pair for this test process: (private key file, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    directory = Path(tempfile.mkdtemp(prefix="platform-infra-ssh-"))
    private = directory / "id_ed25519"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode() + " system-layer-test"


def run_program_with_real_tls(stack: str) -> list[ResourceRecord]:
    """The whole program for `stack` under mocks, with real TLS material from `real_tls_outputs`.

    The one config change: a test SSH key is appended to the stack's `ssh_keys`, so the layer
    can log in through the bastion as the operators do.
    """
    config, _ = stack_config(stack)
    keys = [*json.loads(config[f"{PROJECT}:ssh_keys"]), layer_ssh_key()[1]]
    return run_program(stack, overrides={"ssh_keys": keys}, extra_outputs=real_tls_outputs).resources


@dataclass(frozen=True)
class InboundRule:
    label: str
    action: str
    protocol: str
    ports: str | None  # "22", "80,443", "1000-2000" or None (all)
    ipv4: tuple[str, ...]


@dataclass
class Vm:
    stack: str
    name: str  # Pulumi resource name, e.g. "prod-mariadb-0"
    label: str
    image: str
    address: str  # the planned VPC address (interfaces[vpc].ipv4.vpc)
    prefix: int  # the VPC subnet's prefix length
    user_data: str
    private_address: str | None = None  # Linode private network (192.168.128.0/17), if asked for
    inbound_policy: str = "DROP"
    inbound: list[InboundRule] = field(default_factory=list)
    firewalls: list[str] = field(default_factory=list)

    @property
    def release(self) -> str:
        return debian_release(self.image)

    @property
    def role(self) -> str:
        for role in ("bastion", "mariadb", "redis", "rabbitmq"):
            if role in self.label:
                return role
        return "other"


def debian_release(image: str) -> str:
    releases = {"linode/debian11": "bullseye", "linode/debian12": "bookworm", "linode/debian13": "trixie"}
    if image not in releases:
        raise ValueError(f"the system layer boots Debian images only, not {image}")
    return releases[image]


def _id(value: Any) -> str:
    """Ids cross the mock engine as numbers (10000037.0); records carry them as strings."""
    return str(int(float(value)))


def _vpc_interface(record: ResourceRecord, subnets: dict[str, Any]) -> tuple[str, int]:
    for interface in record.inputs.get("interfaces") or []:
        if interface.get("purpose") == "vpc":
            address = (interface.get("ipv4") or {}).get("vpc")
            subnet = subnets.get(_id(interface.get("subnetId")))
            prefix = ipaddress.ip_network(subnet).prefixlen if subnet else 24
            return str(address), prefix
    raise ValueError(f"{record.name} has no VPC interface")


@cache
def stack_records(stack: str) -> tuple[ResourceRecord, ...]:
    """Every resource of the stack's whole-program run (one run per stack and test process)."""
    return tuple(run_program_with_real_tls(stack))


def app_settings(stack: str) -> dict[str, str]:
    """The application's connection settings: the Secret the app pods read (DATABASE_URL, ...)."""
    for record in stack_records(stack):
        if record.type == "kubernetes:core/v1:Secret":
            data = _plain(record.inputs.get("stringData")) or {}
            if "DATABASE_URL" in data:
                return {key: _plain(value) for key, value in data.items()}
    raise LookupError(f"{stack}: no Secret with the application's DATABASE_URL")


def app_host_aliases(stack: str) -> dict[str, str]:
    """name -> address, from the app pods' hostAliases (how pods resolve the data nodes)."""
    for record in stack_records(stack):
        if record.type == "kubernetes:apps/v1:Deployment":
            spec = _plain(record.inputs.get("spec")) or {}
            aliases = spec.get("template", {}).get("spec", {}).get("hostAliases") or []
            if aliases:
                return {name: _plain(alias["ip"]) for alias in aliases for name in alias["hostnames"]}
    return {}


def config_map_file(stack: str, key: str) -> str:
    """A file the program ships to pods in a ConfigMap (e.g. the database proxy's haproxy.cfg)."""
    for record in stack_records(stack):
        if record.type == "kubernetes:core/v1:ConfigMap":
            data = _plain(record.inputs.get("data")) or {}
            if key in data:
                return str(_plain(data[key]))
    raise LookupError(f"{stack}: no ConfigMap carries {key}")


@cache
def stack_vms(stack: str) -> dict[str, Vm]:
    """Every Linode instance of the stack, with its user data and its Cloud Firewall rules."""
    records = stack_records(stack)
    subnets = {r.id: r.inputs.get("ipv4") for r in records if r.type == "linode:index/vpcSubnet:VpcSubnet"}
    vms: dict[str, Vm] = {}
    by_id: dict[str, Vm] = {}
    for record in records:
        if record.type != INSTANCE:
            continue
        metadatas = _plain(record.inputs.get("metadatas")) or [{}]
        encoded = _plain(_plain(metadatas[0]).get("userData"))
        address, prefix = _vpc_interface(record, subnets)
        vm = Vm(
            stack=stack,
            name=record.name,
            label=record.inputs["label"],
            image=record.inputs["image"],
            address=address,
            prefix=prefix,
            user_data=base64.b64decode(encoded).decode(),
            private_address=record.outputs.get("privateIpAddress") if record.inputs.get("privateIp") else None,
        )
        vms[vm.label] = vm
        by_id[record.id] = vm
        firewall_id = record.inputs.get("firewallId")
        if firewall_id is not None:
            by_id[f"fw-member:{_id(firewall_id)}:{record.id}"] = vm
    for record in records:
        if record.type != FIREWALL:
            continue
        members = [by_id[_id(i)] for i in record.inputs.get("linodes") or [] if _id(i) in by_id]
        members += [v for k, v in by_id.items() if k.startswith(f"fw-member:{record.id}:") and v not in members]
        rules = [
            InboundRule(
                label=rule.get("label", ""),
                action=rule.get("action", "ACCEPT"),
                protocol=rule.get("protocol", "TCP"),
                ports=rule.get("ports"),
                ipv4=tuple(rule.get("ipv4s") or ()),
            )
            for rule in record.inputs.get("inbounds") or []
        ]
        for vm in members:
            vm.firewalls.append(record.inputs.get("label", record.name))
            vm.inbound_policy = record.inputs.get("inboundPolicy", "DROP")
            vm.inbound.extend(rules)
    return vms
