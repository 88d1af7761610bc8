"""Pure renderers for RabbitMQ: rabbitmq.conf, rabbitmq-env.conf, plugins, definitions, /etc/hosts.

N nodes form one cluster through classic-config peer discovery with node names from the address
plan (`rabbit@<label>`, resolved by /etc/hosts lines cloud-init writes). Quorum queues are the
application vhost's default queue type. AMQP, management and Prometheus listen on the node's VPC
address only; with TLS, AMQP listens on 5671 and the plaintext listener is off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from components.data.cloud_init import (
    SETUP_DIR,
    TlsMaterial,
    cloud_file,
    hold_service_starts,
    private_network_lines,
    require_tls_pair,
    setup_script,
    tls_files,
    wait_for_tcp,
)
from components.data.connections import TlsFiles
from components.data.plugin import BackupJob, alert
from components.settings.operations import AlertThresholds, BackupSettings

AMQP_PORT = 5672
AMQPS_PORT = 5671
MANAGEMENT_PORT = 15672
PROMETHEUS_PORT = 15692
DIST_PORT = 25672
EPMD_PORT = 4369
ADMIN_USER = "admin"


@dataclass(frozen=True)
class RabbitMqCredentials:
    admin_password: str
    app_password: str
    erlang_cookie: str


@dataclass(frozen=True)
class RabbitMqNodeArgs:
    index: int
    addresses: Sequence[str]  # VPC address per node
    node_names: Sequence[str]  # Erlang node name per node, `rabbit@<label>` in production
    credentials: RabbitMqCredentials
    vhost: str = "app"
    app_user: str = "app"
    tls: TlsFiles | None = None
    amqp_port: int | None = None  # None: 5672, or 5671 with TLS
    management_port: int = MANAGEMENT_PORT
    prometheus_port: int = PROMETHEUS_PORT
    dist_ports: Sequence[int] | None = None  # per node; None: 25672 everywhere
    # Interface of the Erlang distribution listener; None: the node's VPC address, which is what
    # its node name's host part resolves to through /etc/hosts.
    dist_interface: str | None = None
    # Interface of the Prometheus metrics listener; None: the node's VPC address. "0.0.0.0" when
    # a standard-tier cluster scrapes over the private network (the firewall limits the sources).
    metrics_interface: str | None = None
    definitions_file: str = "/etc/rabbitmq/definitions.json"
    # With TLS, Erlang distribution between the nodes (and the CLI tools) also runs over TLS,
    # with the node certificates; this is where its options file lives.
    inter_node_tls_file: str = "/etc/rabbitmq/inter_node_tls.config"
    disk_free_limit: str = "2GB"
    # A fresh joiner (node > 0) waits this long for node 0 before giving up on joining.
    join_retry_limit: int = 120
    # Seed: discover only itself and so start a new cluster at once (node 0 on a fresh build).
    # None: node 0 seeds. The VM's setup script renders node 0 as a joiner instead when a peer
    # already runs (node 0 rebuilt into an existing cluster).
    seed: bool | None = None
    join_retry_interval_ms: int = 2000
    memory_high_watermark: float = 0.6

    def __post_init__(self) -> None:
        if not self.addresses or len(self.addresses) != len(self.node_names):
            raise ValueError("one node name per node address is needed")
        if len(set(self.node_names)) != len(self.node_names) or not all("@" in n for n in self.node_names):
            raise ValueError("node names must be distinct and of the form <name>@<host>")
        if not 0 <= self.index < len(self.addresses):
            raise ValueError(f"node index {self.index} outside 0..{len(self.addresses) - 1}")
        if self.dist_ports is not None and len(self.dist_ports) != len(self.addresses):
            raise ValueError("one distribution port per node is needed")

    @property
    def nodes(self) -> int:
        return len(self.addresses)

    @property
    def address(self) -> str:
        return self.addresses[self.index]

    @property
    def port(self) -> int:
        if self.amqp_port is not None:
            return self.amqp_port
        return AMQPS_PORT if self.tls else AMQP_PORT

    @property
    def seeds(self) -> bool:
        return self.index == 0 if self.seed is None else self.seed

    @property
    def dist_port(self) -> int:
        return self.dist_ports[self.index] if self.dist_ports else DIST_PORT

    def node_name(self, index: int) -> str:
        return self.node_names[index]


def node_names_for(hostnames: Sequence[str]) -> list[str]:
    """Production node names: `rabbit@<hostname>`, the hostname being the VM's label."""
    return [f"rabbit@{host}" for host in hostnames]


def render_rabbitmq_conf(args: RabbitMqNodeArgs) -> str:
    """/etc/rabbitmq/rabbitmq.conf (cuttlefish `key = value` format)."""
    settings: list[tuple[str, str]] = []
    if args.tls:
        settings += [
            ("listeners.tcp", "none"),
            ("listeners.ssl.default", f"{args.address}:{args.port}"),
            ("ssl_options.cacertfile", args.tls.ca_file),
            ("ssl_options.certfile", args.tls.cert_file),
            ("ssl_options.keyfile", args.tls.key_file),
            # Clients authenticate with username/password; the server proves itself by certificate.
            ("ssl_options.verify", "verify_none"),
            ("ssl_options.fail_if_no_peer_cert", "false"),
            ("ssl_options.versions.1", "tlsv1.3"),
            ("ssl_options.versions.2", "tlsv1.2"),
        ]
    else:
        settings.append(("listeners.tcp.default", f"{args.address}:{args.port}"))
    settings += [
        ("management.tcp.ip", args.address),
        ("management.tcp.port", str(args.management_port)),
        ("prometheus.tcp.ip", args.metrics_interface or args.address),
        ("prometheus.tcp.port", str(args.prometheus_port)),
        ("distribution.listener.interface", args.dist_interface or args.address),
        ("distribution.listener.port_range.min", str(args.dist_port)),
        ("distribution.listener.port_range.max", str(args.dist_port)),
        ("cluster_formation.peer_discovery_backend", "classic_config"),
        *[
            (f"cluster_formation.classic_config.nodes.{n + 1}", name)
            for n, name in enumerate([args.node_name(args.index)] if args.seeds else args.node_names)
        ],
        *_formation_retries(args),
        # A minority side stops serving instead of diverging; quorum queues need a majority anyway.
        ("cluster_partition_handling", "pause_minority" if args.nodes >= 3 else "ignore"),
        ("load_definitions", args.definitions_file),
        ("loopback_users.guest", "true"),
        ("vm_memory_high_watermark.relative", str(args.memory_high_watermark)),
        ("disk_free_limit.absolute", args.disk_free_limit),
        ("log.console", "false"),
        ("log.file.level", "info"),
    ]
    header = "# Rendered by platform-infra (components/data/rabbitmq/config.py); do not edit by hand.\n"
    return header + "".join(f"{key} = {value}\n" for key, value in settings)


def _formation_retries(args: RabbitMqNodeArgs) -> list[tuple[str, str]]:
    """One seed starts a fresh cluster; the others keep retrying to join it.

    RabbitMQ 3.10's classic-config discovery with every node booting at once either lets each
    empty node start a cluster of its own (after ~5 s of retries) or, seen on loopback, leaves two
    nodes waiting on each other's lock for minutes. So the seed discovers only itself and starts at
    once, and every other node lists all nodes and retries for join_retry_limit x
    join_retry_interval_ms (4 minutes by default) until one of them runs.
    """
    if args.seeds:
        return []
    return [
        ("cluster_formation.discovery_retry_limit", str(args.join_retry_limit)),
        ("cluster_formation.discovery_retry_interval", str(args.join_retry_interval_ms)),
    ]


def render_rabbitmq_env(args: RabbitMqNodeArgs) -> str:
    """/etc/rabbitmq/rabbitmq-env.conf: the node's name (short names, resolved through /etc/hosts)."""
    lines = [f"NODENAME={args.node_name(args.index)}", "USE_LONGNAME=false"]
    if args.tls:
        dist = f"-proto_dist inet_tls -ssl_dist_optfile {args.inter_node_tls_file}"
        lines += [f'SERVER_ADDITIONAL_ERL_ARGS="{dist}"', f'CTL_ERL_ARGS="{dist}"']
    return "\n".join(lines) + "\n"


def _erlang_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_inter_node_tls_config(args: RabbitMqNodeArgs) -> str:
    """Erlang TLS distribution options: both sides present the node certificate and verify the
    peer against the internal CA (the client also checks the peer's name, the node name's host)."""
    if args.tls is None:
        raise ValueError("inter-node TLS needs the node's TLS files")
    files = (
        f"{{cacertfile, {_erlang_string(args.tls.ca_file)}}}, "
        f"{{certfile, {_erlang_string(args.tls.cert_file)}}}, "
        f"{{keyfile, {_erlang_string(args.tls.key_file)}}}"
    )
    common = f"{files}, {{secure_renegotiate, true}}, {{verify, verify_peer}}"
    return (
        "%% Rendered by platform-infra (components/data/rabbitmq/config.py).\n"
        "[\n"
        f"  {{server, [{common}, {{fail_if_no_peer_cert, true}}]}},\n"
        f"  {{client, [{common}]}}\n"
        "].\n"
    )


def render_enabled_plugins() -> str:
    return "[rabbitmq_management,rabbitmq_prometheus].\n"


def rabbit_password_hash(password: str, salt_source: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)).

    The salt is derived from the password and `salt_source` so re-rendering gives the same text
    (user data stays stable) while two users never share a hash.
    """
    salt = hmac.new(password.encode(), salt_source.encode(), hashlib.sha256).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def render_definitions(args: RabbitMqNodeArgs) -> str:
    """Users, the application vhost (quorum queues by default) and permissions, imported at boot.

    Importing definitions at boot also means the default `guest` user is never created.
    """
    creds = args.credentials
    definitions = {
        "users": [
            {
                "name": ADMIN_USER,
                "password_hash": rabbit_password_hash(creds.admin_password, ADMIN_USER),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            },
            {
                "name": args.app_user,
                "password_hash": rabbit_password_hash(creds.app_password, args.app_user),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            },
        ],
        "vhosts": [
            {"name": "/"},
            {
                "name": args.vhost,
                "metadata": {"description": "application vhost", "tags": [], "default_queue_type": "quorum"},
                "default_queue_type": "quorum",
            },
        ],
        "permissions": [
            {"user": ADMIN_USER, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
            for vhost in ("/", args.vhost)
        ]
        + [{"user": args.app_user, "vhost": args.vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "policies": [],
        "parameters": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    return json.dumps(definitions, indent=2, sort_keys=True) + "\n"


def render_hosts_entries(args: RabbitMqNodeArgs) -> str:
    """Lines for /etc/hosts so every node name's host part resolves to that node's VPC address."""
    hosts = [name.split("@", 1)[1] for name in args.node_names]
    return "".join(f"{address} {host}\n" for address, host in zip(args.addresses, hosts, strict=True))


# --- cloud-init document ------------------------------------------------------------------

RABBITMQ_TLS_FILES = TlsFiles(
    "/etc/rabbitmq/tls/ca.pem", "/etc/rabbitmq/tls/server.crt", "/etc/rabbitmq/tls/server.key"
)


JOIN_CONF = "/etc/rabbitmq/rabbitmq.conf.join"


def render_rabbitmq_setup_script(args: RabbitMqNodeArgs, private_network: bool = False) -> str:
    """First-boot start; the seed turns joiner when any peer's Erlang distribution port answers.

    Peers are probed on their distribution port (25672), which the RabbitMQ Cloud Firewall admits
    between peers (cluster-from-peers); the AMQP port is open to the app side only (amqp-from-app).
    """
    # address/port, so that "/dev/tcp/${peer}" names both
    peers = " ".join(
        shlex.quote(f"{a}/{args.dist_ports[i] if args.dist_ports else DIST_PORT}")
        for i, a in enumerate(args.addresses)
        if i != args.index
    )
    lines = ["rm -f /usr/sbin/policy-rc.d"]
    if args.seeds and peers:
        lines += [
            f"PEERS=({peers})",
            'for peer in "${PEERS[@]}"; do',
            '  if timeout 2 bash -c "</dev/tcp/${peer}" 2>/dev/null; then',
            f"    cp {JOIN_CONF} /etc/rabbitmq/rabbitmq.conf",
            "    break",
            "  fi",
            "done",
        ]
    if private_network:
        listener = "listeners.ssl.private" if args.tls else "listeners.tcp.private"
        lines += [
            *private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f'  echo "{listener} = $PRIVATE:{args.port}" >> /etc/rabbitmq/rabbitmq.conf',
            "fi",
        ]
    if args.index > 0:
        # Nodes join one after the other: RabbitMQ 3.10 nodes booting at the same moment can wait
        # on each other's discovery lock for minutes. Wait (at most 15 minutes) for the previous
        # node's distribution port (the port its peers' firewall admits), then start anyway: the
        # full peer list still finds any running node.
        previous_dist_port = args.dist_ports[args.index - 1] if args.dist_ports else DIST_PORT
        lines += [
            f"PREVIOUS={shlex.quote(args.addresses[args.index - 1])}",
            "for attempt in $(seq 1 90); do",
            "  " + wait_for_tcp("PREVIOUS", previous_dist_port) + " && break",
            "  sleep 10",
            "done",
        ]
    lines += ["systemctl enable rabbitmq-server", "systemctl restart rabbitmq-server"]
    return setup_script(lines)


def rabbitmq_cloud_config(
    args: RabbitMqNodeArgs, tls: TlsMaterial | None = None, private_network: bool = False
) -> dict[str, Any]:
    """cloud-config for one RabbitMQ node."""
    require_tls_pair(args.tls, tls)
    files = [
        hold_service_starts(),
        {"path": "/etc/hosts", "content": render_hosts_entries(args), "append": True},
        cloud_file("/etc/rabbitmq/rabbitmq.conf", render_rabbitmq_conf(args), "0640", "rabbitmq:rabbitmq", True),
        cloud_file("/etc/rabbitmq/rabbitmq-env.conf", render_rabbitmq_env(args), "0644", "rabbitmq:rabbitmq", True),
        cloud_file("/etc/rabbitmq/enabled_plugins", render_enabled_plugins(), "0644", "rabbitmq:rabbitmq", True),
        cloud_file(args.definitions_file, render_definitions(args), "0640", "rabbitmq:rabbitmq", True),
        cloud_file(
            "/var/lib/rabbitmq/.erlang.cookie", args.credentials.erlang_cookie, "0400", "rabbitmq:rabbitmq", True
        ),
    ]
    if tls is not None and args.tls is not None:
        files += tls_files(args.tls, tls, "rabbitmq:rabbitmq")
        files.append(
            cloud_file(args.inter_node_tls_file, render_inter_node_tls_config(args), "0640", "rabbitmq:rabbitmq", True)
        )
    if args.seeds:
        # Node 0 seeds a fresh cluster, but must join when it is rebuilt into a running one.
        joiner = replace(args, seed=False)
        files.append(cloud_file(JOIN_CONF, render_rabbitmq_conf(joiner), "0640", "rabbitmq:rabbitmq", True))
    runcmd = [
        ["rm", "-f", "/usr/sbin/policy-rc.d"],
        [f"{SETUP_DIR}/rabbitmq-setup.sh"],
    ]
    files.append(
        cloud_file(f"{SETUP_DIR}/rabbitmq-setup.sh", render_rabbitmq_setup_script(args, private_network), "0700")
    )
    # Node names resolve through the lines appended to /etc/hosts: cloud-init must not rewrite it.
    return {"manage_etc_hosts": False, "packages": ["rabbitmq-server"], "write_files": files, "runcmd": runcmd}


# --- exporter, alerts and backups (registry entry in components/data/services.py) -----------

SCRAPE_JOB = "rabbitmq"

def exporter_cloud_config(address: str) -> dict[str, Any]:
    # The built-in rabbitmq_prometheus plugin; it listens where rabbitmq.conf says (PROMETHEUS_PORT).
    enable_loop = (
        "for attempt in $(seq 60); do rabbitmq-plugins enable rabbitmq_prometheus && exit 0; "
        "sleep 5; done; exit 1"
    )
    return {"runcmd": [["sh", "-c", enable_loop]]}



def alert_rules(t: AlertThresholds, nodes: int) -> list[dict[str, Any]]:
    job = SCRAPE_JOB
    return [
        alert(
            "RabbitMqNodeDown",
            f'(count(up{{job="{job}"}} == 1) or vector(0)) < {nodes}',
            t.service_down_for,
            "critical",
            f"Fewer than {nodes} RabbitMQ nodes are up",
            "{{ $value }} RabbitMQ nodes answer their metrics endpoint.",
        ),
        alert(
            "RabbitMqQueueBacklog",
            f"sum by (instance) (rabbitmq_queue_messages_ready) > {t.queue_backlog_messages}",
            t.queue_backlog_for,
            "warning",
            "RabbitMQ backlog on {{ $labels.instance }}",
            "{{ $value }} messages wait for consumers: workers are down or too slow.",
        ),
    ]



def backup_jobs(settings: BackupSettings) -> list[BackupJob]:
    return [BackupJob("rabbitmq-definitions", "rabbitmq", on_calendar=settings.rabbitmq_schedule, timeout="30min")]
