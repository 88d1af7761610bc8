"""Per-role cloud-config documents (plain dicts) for the data VMs, built from the pure renderers.

Order on first boot (Debian cloud-init): `write_files` (init stage) drops a `policy-rc.d` that
keeps package maintainer scripts from starting the services with Debian's defaults; packages are
installed; `write_files` with `defer: true` then writes the service configuration once the
service users exist; finally `runcmd` runs the role's setup script, which removes `policy-rc.d`
and starts the service in the right order for its topology. Other tiers adding packages to data
VMs (RoleAddon) must therefore start their services explicitly in their own `runcmd`.

Galera bootstrap (documented here and in the setup script): node 0 bootstraps a new cluster only
when its data directory has never been part of one (no grastate.dat) and no peer answers on the
Galera port; every other case joins. After a full outage (every node down), run on the node
whose /var/lib/mysql/grastate.dat says `safe_to_bootstrap: 1` (or, if none does, the node with
the highest seqno from `mariadbd --wsrep-recover`): `galera_new_cluster`, then
`systemctl start mariadb` on the others, one at a time.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from typing import Any

from components.data.connections import TlsFiles
from components.data.mariadb.config import (
    MariaDbNodeArgs,
    MariaDbTopology,
    render_client_cnf,
    render_replica_sql,
    render_server_cnf,
    render_users_sql,
)
from components.data.rabbitmq.config import (
    RabbitMqNodeArgs,
    render_definitions,
    render_enabled_plugins,
    render_hosts_entries,
    render_inter_node_tls_config,
    render_rabbitmq_conf,
    render_rabbitmq_env,
)
from components.data.redis.config import RedisNodeArgs, RedisTopology, render_redis_conf, render_sentinel_conf

MARIADB_TLS_FILES = TlsFiles("/etc/mysql/tls/ca.pem", "/etc/mysql/tls/server.crt", "/etc/mysql/tls/server.key")
REDIS_TLS_FILES = TlsFiles("/etc/redis/tls/ca.pem", "/etc/redis/tls/server.crt", "/etc/redis/tls/server.key")
RABBITMQ_TLS_FILES = TlsFiles(
    "/etc/rabbitmq/tls/ca.pem", "/etc/rabbitmq/tls/server.crt", "/etc/rabbitmq/tls/server.key"
)
SETUP_DIR = "/usr/local/lib/platform"
SECRETS_DIR = "/root/platform"


@dataclass(frozen=True)
class TlsMaterial:
    """PEM text for one node: the internal CA, the node's certificate and its private key."""

    ca_pem: str
    cert_pem: str
    key_pem: str


def _file(path: str, content: str, permissions: str, owner: str = "root:root", defer: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "content": content, "owner": owner, "permissions": permissions}
    if defer:
        entry["defer"] = True
    return entry


def _hold_service_starts() -> dict[str, Any]:
    # Debian's invoke-rc.d asks policy-rc.d before starting a freshly installed service: 101 = no.
    return _file("/usr/sbin/policy-rc.d", "#!/bin/sh\n# platform-infra: first boot in progress\nexit 101\n", "0755")


def _tls_files(files: TlsFiles, material: TlsMaterial, owner: str) -> list[dict[str, Any]]:
    return [
        _file(files.ca_file, material.ca_pem, "0644", owner, defer=True),
        _file(files.cert_file, material.cert_pem, "0644", owner, defer=True),
        _file(files.key_file, material.key_pem, "0600", owner, defer=True),
    ]


def _script(lines: list[str]) -> str:
    return (
        "#!/bin/bash\n# Rendered by platform-infra (components/data_cloud_init.py).\nset -euo pipefail\n"
        + "\n".join(lines)
        + "\n"
    )


def _wait_for_tcp(host_var: str, port: int) -> str:
    return f'timeout 2 bash -c "</dev/tcp/${{{host_var}}}/{port}" 2>/dev/null'


# The node's Linode private-network address (192.168.128.0/17), present only when the VM asked
# for one: how pods of a standard-tier LKE cluster (outside the VPC) reach the data VMs.
PRIVATE_IPV4_FUNCTION = (
    "private_ipv4() { ip -4 -o addr show scope global | awk '{split($4, a, \"/\"); print a[1]}'"
    " | grep -E '^192[.]168[.](12[89]|1[3-9][0-9]|2[0-5][0-9])[.]' | head -n 1; }"
)


def _private_network_lines() -> list[str]:
    return [
        PRIVATE_IPV4_FUNCTION,
        'PRIVATE="$(private_ipv4 || true)"',
        'if [ -z "$PRIVATE" ]; then',
        '  echo "no private-network IPv4 on this VM: clients outside the VPC cannot connect" >&2',
        "fi",
    ]


def render_mariadb_setup_script(
    args: MariaDbNodeArgs,
    private_network: bool = False,
    *,
    secrets_dir: str = SECRETS_DIR,
    policy_rc: str = "/usr/sbin/policy-rc.d",
) -> str:
    """First-boot setup: start MariaDB for the node's role; node 0 creates the users.

    `secrets_dir` and `policy_rc` are parameters so the bootstrap decision can be exercised
    against a scratch directory with stand-in commands.
    """
    users_sql = f"{secrets_dir}/mariadb-users.sql"
    replica_sql = f"{secrets_dir}/mariadb-replica.sql"
    peers = " ".join(shlex.quote(a) for i, a in enumerate(args.addresses) if i != args.index)
    lines = [
        f"rm -f {shlex.quote(policy_rc)}",
        f"DATADIR={shlex.quote(args.datadir)}",
        f"INDEX={args.index}",
        f"PEERS=({peers})",
        "wait_for_socket() {",
        "  for _ in $(seq 1 60); do mariadb -e 'SELECT 1' >/dev/null 2>&1 && return 0; sleep 2; done; return 1",
        "}",
        "systemctl stop mariadb || true",
    ]
    if private_network:
        # Also listen on the private-network address, known only on the VM.
        lines += [
            *_private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f"  printf '[mysqld]\\nbind-address = %s,%s\\n' {shlex.quote(args.address)} \"$PRIVATE\" \\",
            "    > /etc/mysql/mariadb.conf.d/61-platform-private-network.cnf",
            "fi",
        ]
    if args.topology is MariaDbTopology.GALERA:
        lines += [
            'peer_answers() { for peer in "${PEERS[@]}"; do '
            + _wait_for_tcp("peer", args.galera_port)
            + " && return 0; done; return 1; }",
            'if [ ! -e "$DATADIR/grastate.dat" ] && [ "$INDEX" -eq 0 ] && ! peer_answers; then',
            "  # Fresh data directory, node 0, nobody else running: this is a brand-new cluster.",
            "  galera_new_cluster",
            "  wait_for_socket",
            f"  mariadb < {users_sql}",
            "else",
            "  # Join (SST/IST from a running member); wait for node 0 to bootstrap on first build.",
            "  for attempt in $(seq 1 30); do systemctl start mariadb && break; sleep 10; done",
            "  systemctl is-active --quiet mariadb",
            "fi",
        ]
    else:
        lines += ["systemctl enable mariadb", "systemctl start mariadb", "wait_for_socket"]
        if args.index == 0:
            lines.append(f"mariadb < {users_sql}")
        else:
            lines.append(f"mariadb < {replica_sql}")
    # The SQL files carry passwords and are needed once.
    lines += ["systemctl enable mariadb", f"shred -u {users_sql} {replica_sql} 2>/dev/null || true"]
    return _script(lines)


def mariadb_cloud_config(
    args: MariaDbNodeArgs,
    *,
    database: str,
    app_user: str,
    tls: TlsMaterial | None = None,
    private_network: bool = False,
) -> dict[str, Any]:
    """cloud-config for one MariaDB node (carries credentials: the caller keeps it secret)."""
    if (args.tls is None) != (tls is None):
        raise ValueError("TLS file paths and TLS material go together")
    packages = ["mariadb-server", "mariadb-client", "mariadb-backup"]
    if args.topology is MariaDbTopology.GALERA:
        packages += ["galera-4", "socat"]
    files = [
        _hold_service_starts(),
        _file("/etc/mysql/mariadb.conf.d/60-platform.cnf", render_server_cnf(args), "0640", "root:mysql", True),
        _file("/root/.my.cnf", render_client_cnf(args.socket), "0600"),
        _file(f"{SETUP_DIR}/mariadb-setup.sh", render_mariadb_setup_script(args, private_network), "0700"),
    ]
    if args.index == 0:
        files.append(
            _file(
                f"{SECRETS_DIR}/mariadb-users.sql", render_users_sql(args, database=database, app_user=app_user), "0600"
            )
        )
    elif args.topology is MariaDbTopology.PRIMARY_REPLICA:
        files.append(_file(f"{SECRETS_DIR}/mariadb-replica.sql", render_replica_sql(args), "0600"))
    if tls is not None and args.tls is not None:
        files += _tls_files(args.tls, tls, "mysql:mysql")
    return {"packages": packages, "write_files": files, "runcmd": [[f"{SETUP_DIR}/mariadb-setup.sh"]]}


def render_redis_setup_script(args: RedisNodeArgs, private_network: bool = False) -> str:
    """First-boot start of Redis (and Sentinel with 3+ nodes)."""
    sentinel = args.topology is RedisTopology.SENTINEL
    lines = ["rm -f /usr/sbin/policy-rc.d", "sysctl --system >/dev/null"]
    if private_network:
        configs = "/etc/redis/redis.conf" + (" /etc/redis/sentinel.conf" if sentinel else "")
        lines += [
            *_private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f'  sed -i "s/^bind .*/bind {args.address} $PRIVATE/" {configs}',
            "fi",
        ]
    lines += ["systemctl enable redis-server", "systemctl restart redis-server"]
    if sentinel:
        lines += ["systemctl enable redis-sentinel", "systemctl restart redis-sentinel"]
    return _script(lines)


def redis_cloud_config(
    args: RedisNodeArgs, tls: TlsMaterial | None = None, private_network: bool = False
) -> dict[str, Any]:
    """cloud-config for one Redis node (and its Sentinel with 3+ nodes)."""
    if (args.tls is None) != (tls is None):
        raise ValueError("TLS file paths and TLS material go together")
    sentinel = args.topology is RedisTopology.SENTINEL
    packages = ["redis-server", *(["redis-sentinel"] if sentinel else [])]
    files = [
        _hold_service_starts(),
        # Redis forks for snapshots and replication; without overcommit a fork can fail under load.
        _file("/etc/sysctl.d/60-redis.conf", "vm.overcommit_memory = 1\n", "0644"),
        # Owned by redis: Sentinel failovers rewrite both files (CONFIG REWRITE).
        _file("/etc/redis/redis.conf", render_redis_conf(args), "0640", "redis:redis", True),
    ]
    if sentinel:
        files.append(_file("/etc/redis/sentinel.conf", render_sentinel_conf(args), "0640", "redis:redis", True))
    if tls is not None and args.tls is not None:
        files += _tls_files(args.tls, tls, "redis:redis")
    files.append(_file(f"{SETUP_DIR}/redis-setup.sh", render_redis_setup_script(args, private_network), "0700"))
    runcmd = [[f"{SETUP_DIR}/redis-setup.sh"]]
    return {"packages": packages, "write_files": files, "runcmd": runcmd}


JOIN_CONF = "/etc/rabbitmq/rabbitmq.conf.join"


def render_rabbitmq_setup_script(args: RabbitMqNodeArgs, private_network: bool = False) -> str:
    """First-boot start; the seed turns joiner when any peer already answers on AMQP."""
    peers = " ".join(shlex.quote(a) for i, a in enumerate(args.addresses) if i != args.index)
    lines = ["rm -f /usr/sbin/policy-rc.d"]
    if args.seeds and peers:
        lines += [
            f"PEERS=({peers})",
            'for peer in "${PEERS[@]}"; do',
            "  if " + _wait_for_tcp("peer", args.port) + "; then",
            f"    cp {JOIN_CONF} /etc/rabbitmq/rabbitmq.conf",
            "    break",
            "  fi",
            "done",
        ]
    if private_network:
        listener = "listeners.ssl.private" if args.tls else "listeners.tcp.private"
        lines += [
            *_private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f'  echo "{listener} = $PRIVATE:{args.port}" >> /etc/rabbitmq/rabbitmq.conf',
            "fi",
        ]
    if args.index > 0:
        # Nodes join one after the other: RabbitMQ 3.10 nodes booting at the same moment can wait
        # on each other's discovery lock for minutes. Wait (at most 15 minutes) for the previous
        # node's AMQP port, then start anyway: the full peer list still finds any running node.
        lines += [
            f"PREVIOUS={shlex.quote(args.addresses[args.index - 1])}",
            "for attempt in $(seq 1 90); do",
            "  " + _wait_for_tcp("PREVIOUS", args.port) + " && break",
            "  sleep 10",
            "done",
        ]
    lines += ["systemctl enable rabbitmq-server", "systemctl restart rabbitmq-server"]
    return _script(lines)


def rabbitmq_cloud_config(
    args: RabbitMqNodeArgs, tls: TlsMaterial | None = None, private_network: bool = False
) -> dict[str, Any]:
    """cloud-config for one RabbitMQ node."""
    if (args.tls is None) != (tls is None):
        raise ValueError("TLS file paths and TLS material go together")
    files = [
        _hold_service_starts(),
        {"path": "/etc/hosts", "content": render_hosts_entries(args), "append": True},
        _file("/etc/rabbitmq/rabbitmq.conf", render_rabbitmq_conf(args), "0640", "rabbitmq:rabbitmq", True),
        _file("/etc/rabbitmq/rabbitmq-env.conf", render_rabbitmq_env(args), "0644", "rabbitmq:rabbitmq", True),
        _file("/etc/rabbitmq/enabled_plugins", render_enabled_plugins(), "0644", "rabbitmq:rabbitmq", True),
        _file(args.definitions_file, render_definitions(args), "0640", "rabbitmq:rabbitmq", True),
        _file("/var/lib/rabbitmq/.erlang.cookie", args.credentials.erlang_cookie, "0400", "rabbitmq:rabbitmq", True),
    ]
    if tls is not None and args.tls is not None:
        files += _tls_files(args.tls, tls, "rabbitmq:rabbitmq")
        files.append(
            _file(args.inter_node_tls_file, render_inter_node_tls_config(args), "0640", "rabbitmq:rabbitmq", True)
        )
    if args.seeds:
        # Node 0 seeds a fresh cluster, but must join when it is rebuilt into a running one.
        joiner = replace(args, seed=False)
        files.append(_file(JOIN_CONF, render_rabbitmq_conf(joiner), "0640", "rabbitmq:rabbitmq", True))
    runcmd = [
        ["rm", "-f", "/usr/sbin/policy-rc.d"],
        [f"{SETUP_DIR}/rabbitmq-setup.sh"],
    ]
    files.append(_file(f"{SETUP_DIR}/rabbitmq-setup.sh", render_rabbitmq_setup_script(args, private_network), "0700"))
    # Node names resolve through the lines appended to /etc/hosts: cloud-init must not rewrite it.
    return {"manage_etc_hosts": False, "packages": ["rabbitmq-server"], "write_files": files, "runcmd": runcmd}
