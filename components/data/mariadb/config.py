"""Pure renderers for MariaDB: server option file and the SQL that sets up users and replication.

Topology follows the node count: 1 = standalone, 2 = primary + read-only replica with GTID
replication, odd >= 3 = Galera. Addresses, ports and paths are parameters (production defaults)
so the integration tests start the very same configuration on loopback.
"""

from __future__ import annotations

import configparser
import io
import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from components.data.cloud_init import (
    SECRETS_DIR,
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
from components.data.plugin import BACKUP_METRIC_PREFIX, BackupJob, alert, exporter_defaults_file
from components.settings.operations import AlertThresholds, BackupSettings

MARIADB_PORT = 3306
GALERA_PORT = 4567
IST_PORT = 4568
SST_PORT = 4444
# Every Galera node answers the database proxy's health check here (HTTP, clustercheck style).
GALERA_HEALTH_PORT = 9200
# The in-cluster proxy that Galera clients dial instead of one node (a Service in the app namespace).
DATABASE_PROXY_NAME = "database-proxy"
DATABASE_PROXY_CONFIG_KEY = "haproxy.cfg"  # the proxy ConfigMap's key, also the file's name
PROXY_MONITOR_PORT = 8404  # the proxy's own health (its pods' probes) and stats page
PROXY_MONITOR_PATH = "/healthz"


class MariaDbTopology(StrEnum):
    STANDALONE = "standalone"
    PRIMARY_REPLICA = "primary-replica"
    GALERA = "galera"


def topology_for(nodes: int) -> MariaDbTopology:
    """The topology a node count means; other counts are refused."""
    if nodes == 1:
        return MariaDbTopology.STANDALONE
    if nodes == 2:
        return MariaDbTopology.PRIMARY_REPLICA
    if nodes >= 3 and nodes % 2 == 1:
        return MariaDbTopology.GALERA
    raise ValueError(
        f"MariaDB node count {nodes} is not allowed: use 1 (standalone), 2 (primary + replica) "
        "or an odd number >= 3 (Galera)"
    )


@dataclass(frozen=True)
class MariaDbCredentials:
    root_password: str
    app_password: str
    replication_password: str  # GTID replica (2 nodes) or Galera SST (mariabackup)
    replication_user: str = "replicator"
    sst_user: str = "sst"


@dataclass(frozen=True)
class MariaDbNodeArgs:
    nodes: int
    index: int
    addresses: Sequence[str]  # every node's address, node order
    credentials: MariaDbCredentials
    tls: TlsFiles | None = None
    cluster_name: str = "platform"
    port: int = MARIADB_PORT
    galera_port: int = GALERA_PORT
    ist_port: int = IST_PORT
    sst_port: int = SST_PORT
    datadir: str = "/var/lib/mysql"
    socket: str = "/run/mysqld/mysqld.sock"
    pid_file: str = "/run/mysqld/mysqld.pid"
    tmpdir: str | None = None
    log_error: str | None = None  # None: Debian's default (journald)
    run_as_user: str = "mysql"
    buffer_pool_size: str = "512M"
    galera_provider: str = "/usr/lib/galera/libgalera_smm.so"
    extra_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        topology_for(self.nodes)
        if len(self.addresses) != self.nodes:
            raise ValueError(f"{self.nodes} nodes need {self.nodes} addresses, got {len(self.addresses)}")
        if not 0 <= self.index < self.nodes:
            raise ValueError(f"node index {self.index} outside 0..{self.nodes - 1}")

    @property
    def topology(self) -> MariaDbTopology:
        return topology_for(self.nodes)

    @property
    def address(self) -> str:
        return self.addresses[self.index]


def _ini(sections: dict[str, dict[str, str | None]]) -> str:
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep option case
    for name, options in sections.items():
        parser[name] = {}
        for key, value in options.items():
            parser.set(name, key, value)
    out = io.StringIO()
    out.write("# Rendered by platform-infra (components/data/mariadb/config.py); do not edit by hand.\n")
    parser.write(out)
    return out.getvalue()


def galera_cluster_address(args: MariaDbNodeArgs) -> str:
    return "gcomm://" + ",".join(f"{address}:{args.galera_port}" for address in args.addresses)


def render_server_cnf(args: MariaDbNodeArgs) -> str:
    """The option file for node `args.index` (Debian: /etc/mysql/mariadb.conf.d/60-platform.cnf)."""
    mysqld: dict[str, str | None] = {
        "user": args.run_as_user,
        "bind-address": args.address,
        "port": str(args.port),
        "datadir": args.datadir,
        "socket": args.socket,
        "pid-file": args.pid_file,
        "server_id": str(args.index + 1),
        "skip-name-resolve": None,
        "character-set-server": "utf8mb4",
        "collation-server": "utf8mb4_unicode_ci",
        "default_storage_engine": "InnoDB",
        "innodb_buffer_pool_size": args.buffer_pool_size,
        "binlog_format": "ROW",
    }
    if args.tmpdir:
        mysqld["tmpdir"] = args.tmpdir
    if args.log_error:
        mysqld["log_error"] = args.log_error
    if args.tls:
        mysqld.update(
            {
                "ssl_ca": args.tls.ca_file,
                "ssl_cert": args.tls.cert_file,
                "ssl_key": args.tls.key_file,
                "require_secure_transport": "ON",
                "tls_version": "TLSv1.2,TLSv1.3",
            }
        )
    sections: dict[str, dict[str, str | None]] = {"mysqld": mysqld}
    if args.topology in (MariaDbTopology.PRIMARY_REPLICA, MariaDbTopology.GALERA):
        # Point-in-time recovery (platform-backup binlog-ship) needs a binary log on every node that
        # can be the backup node. On Galera, writes applied from peers reach the local binlog only
        # with log_slave_updates, so each node's binlog holds every write. The basename is what
        # docs/RUNBOOK.md replays (mariadb-bin.NNNNNN).
        mysqld.update(
            {
                "log_bin": "mariadb-bin",
                "log_slave_updates": "ON",
                "expire_logs_days": "7",
            }
        )
    if args.topology is MariaDbTopology.PRIMARY_REPLICA:
        mysqld.update(
            {
                "gtid_strict_mode": "ON",
                "relay_log": "relay-bin",
            }
        )
        if args.index > 0:
            # The app user has only database-level privileges, none of which bypass read_only.
            mysqld["read_only"] = "ON"
    elif args.topology is MariaDbTopology.GALERA:
        provider_options = [
            f"gmcast.listen_addr=tcp://{args.address}:{args.galera_port}",
            f"ist.recv_addr={args.address}:{args.ist_port}",
        ]
        if args.tls:
            provider_options += [
                f"socket.ssl_ca={args.tls.ca_file}",
                f"socket.ssl_cert={args.tls.cert_file}",
                f"socket.ssl_key={args.tls.key_file}",
            ]
        creds = args.credentials
        mysqld.update(
            {
                "innodb_autoinc_lock_mode": "2",
                "innodb_flush_log_at_trx_commit": "2",  # durability comes from the other nodes
                "wsrep_on": "ON",
                "wsrep_provider": args.galera_provider,
                "wsrep_cluster_name": args.cluster_name,
                "wsrep_cluster_address": galera_cluster_address(args),
                "wsrep_node_name": f"node-{args.index}",
                "wsrep_node_address": f"{args.address}:{args.galera_port}",
                "wsrep_sst_receive_address": f"{args.address}:{args.sst_port}",
                "wsrep_sst_method": "mariabackup",
                "wsrep_sst_auth": f"{creds.sst_user}:{creds.replication_password}",
                "wsrep_provider_options": '"' + ";".join(provider_options) + '"',
            }
        )
        if args.tls:
            sections["sst"] = {
                # socat TLS for the SST stream, verifying the peer's chain against the internal CA;
                # VERIFY_CA because the SST script would otherwise match the peer's CN to its address.
                "encrypt": "3",
                "ssl-mode": "VERIFY_CA",
                "tca": args.tls.ca_file,
                "tcert": args.tls.cert_file,
                "tkey": args.tls.key_file,
            }
    for key, value in args.extra_options.items():
        mysqld[key] = value
    return _ini(sections)


def render_client_cnf(socket: str = "/run/mysqld/mysqld.sock") -> str:
    """Client defaults for local administration over the Unix socket (root uses unix_socket auth)."""
    return _ini({"client": {"socket": socket}})


def sql_string(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_users_sql(
    args: MariaDbNodeArgs,
    *,
    database: str,
    app_user: str,
    app_client_host: str = "%",
    replication_client_hosts: Sequence[str] | None = None,
) -> str:
    """SQL run once on the node that starts the data set (node 0): root, app, replication/SST users.

    Idempotent. Replicas and Galera joiners receive the result through replication/SST. The
    replication user may connect only from the nodes' own addresses (`replication_client_hosts`,
    default: every node's address; the loopback tests pass the address their connections come from).
    """
    creds = args.credentials
    require = " REQUIRE SSL" if args.tls else ""
    lines = [
        # root keeps unix_socket login for the box's operators and gets a password for emergencies.
        "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password "
        f"USING PASSWORD({sql_string(creds.root_password)});",
        "DELETE FROM mysql.global_priv WHERE User='';",
        "DROP DATABASE IF EXISTS test;",
        f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;",
        f"CREATE USER IF NOT EXISTS {sql_string(app_user)}@{sql_string(app_client_host)} "
        f"IDENTIFIED BY {sql_string(creds.app_password)}{require};",
        f"ALTER USER {sql_string(app_user)}@{sql_string(app_client_host)} "
        f"IDENTIFIED BY {sql_string(creds.app_password)}{require};",
        # Database-level privileges only: nothing that bypasses read_only on a replica.
        f"GRANT ALL PRIVILEGES ON `{database}`.* TO {sql_string(app_user)}@{sql_string(app_client_host)};",
    ]
    if args.topology is MariaDbTopology.PRIMARY_REPLICA:
        for host in replication_client_hosts or args.addresses:
            user = f"{sql_string(creds.replication_user)}@{sql_string(host)}"
            lines += [
                f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {sql_string(creds.replication_password)}{require};",
                f"GRANT REPLICATION SLAVE, REPLICATION SLAVE ADMIN, BINLOG MONITOR ON *.* TO {user};",
            ]
    elif args.topology is MariaDbTopology.GALERA:
        user = f"{sql_string(creds.sst_user)}@'localhost'"
        lines += [
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {sql_string(creds.replication_password)};",
            f"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICA MONITOR ON *.* TO {user};",
        ]
    lines.append("FLUSH PRIVILEGES;")
    return "\n".join(lines) + "\n"


def render_replica_sql(args: MariaDbNodeArgs, *, connect_retry: int = 5) -> str:
    """SQL that points a replica (node > 0 of a primary/replica pair) at node 0 with GTID."""
    if args.topology is not MariaDbTopology.PRIMARY_REPLICA or args.index == 0:
        raise ValueError("only the replica of a primary/replica pair replicates from a primary")
    creds = args.credentials
    options = [
        f"MASTER_HOST={sql_string(args.addresses[0])}",
        f"MASTER_PORT={args.port}",
        f"MASTER_USER={sql_string(creds.replication_user)}",
        f"MASTER_PASSWORD={sql_string(creds.replication_password)}",
        "MASTER_USE_GTID=slave_pos",
        f"MASTER_CONNECT_RETRY={connect_retry}",
    ]
    if args.tls:
        options += [
            "MASTER_SSL=1",
            f"MASTER_SSL_CA={sql_string(args.tls.ca_file)}",
            "MASTER_SSL_VERIFY_SERVER_CERT=1",
        ]
    return "STOP SLAVE;\nCHANGE MASTER TO " + ", ".join(options) + ";\nSTART SLAVE;\n"


# --- cloud-init document ------------------------------------------------------------------

MARIADB_TLS_FILES = TlsFiles("/etc/mysql/tls/ca.pem", "/etc/mysql/tls/server.crt", "/etc/mysql/tls/server.key")


# Debian's mariadb.service runs /etc/mysql/debian-start after every start, and it runs
# mariadb-upgrade in the background: a full one on a node whose data came by SST, which carries
# no mariadb_upgrade_info. Its ALTER TABLE on mysql.* and a GRANT issued meanwhile wait on each
# other for ever (a prod Galera joiner hung so in the system layer), so whatever changes users
# or grants waits for it first (bounded: past 5 minutes it goes ahead and retries as before).
DEBIAN_START = "/etc/mysql/debian-start"


def wait_for_debian_start(script: str = DEBIAN_START) -> str:
    """Shell that waits while `script` runs (a parameter so tests can run a stand-in)."""
    directory, _, name = script.rpartition("/")
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", script) or not name:
        raise ValueError(f"not a plain script path: {script!r}")
    # The bracket keeps the pattern from matching the command line of the shell that runs it.
    pattern = f"{directory}/[{name[0]}]{name[1:]}"
    return f"for _ in $(seq 1 150); do pgrep -f {shlex.quote(pattern)} >/dev/null || break; sleep 2; done"


def render_mariadb_setup_script(
    args: MariaDbNodeArgs,
    private_network: bool = False,
    *,
    secrets_dir: str = SECRETS_DIR,
    policy_rc: str = "/usr/sbin/policy-rc.d",
    debian_start: str = DEBIAN_START,
) -> str:
    """First-boot setup: start MariaDB for the node's role; node 0 creates the users.

    `secrets_dir`, `policy_rc` and `debian_start` are parameters so the bootstrap decision can
    be exercised against a scratch directory with stand-in commands.
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
        "  for _ in $(seq 1 60); do mariadb -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 2; done",
        f"  {wait_for_debian_start(debian_start)}",
        "  mariadb -e 'SELECT 1' >/dev/null 2>&1",
        "}",
        "systemctl stop mariadb || true",
    ]
    if private_network:
        # Also listen on the private-network address, known only on the VM.
        lines += [
            *private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f"  printf '[mysqld]\\nbind-address = %s,%s\\n' {shlex.quote(args.address)} \"$PRIVATE\" \\",
            "    > /etc/mysql/mariadb.conf.d/61-platform-private-network.cnf",
            "fi",
        ]
    if args.topology is MariaDbTopology.GALERA:
        # A running member serves clients; a joiner still waiting for a primary component listens
        # on the Galera port but opens the client port only after its SST. Probing the Galera port
        # made node 0 turn joiner when its peers booted first, and nobody ever bootstrapped.
        lines += [
            # Waits while the node is joining (wsrep_local_state 1-3); true once Synced (4) and ready.
            "galera_synced() {",
            "  local state ready",
            "  for _ in $(seq 1 90); do",
            "    state=$(mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'wsrep_local_state'\" 2>/dev/null | cut -f2)",
            "    ready=$(mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'wsrep_ready'\" 2>/dev/null | cut -f2)",
            f'    [ "$state" = {WSREP_SYNCED} ] && [ "$ready" = ON ] && return 0',
            '    case "$state" in 1|2|3) sleep 2 ;; *) return 1 ;; esac',
            "  done",
            "  return 1",
            "}",
            'peer_answers() { for peer in "${PEERS[@]}"; do '
            + wait_for_tcp("peer", args.port)
            + " && return 0; done; return 1; }",
            'if [ ! -e "$DATADIR/grastate.dat" ] && [ "$INDEX" -eq 0 ] && ! peer_answers; then',
            "  # Fresh data directory, node 0, no peer serving clients: this is a brand-new cluster.",
            "  galera_new_cluster",
            "  wait_for_socket",
            f"  mariadb < {users_sql}",
            "else",
            "  # Join (SST/IST from a running member); wait for node 0 to bootstrap on first build.",
            "  # A started server is not yet a member: a joiner whose IST fails (\"IST didn't contain",
            "  # all write sets\", when its donor joined moments before) keeps running outside the",
            "  # cluster and says so nowhere but in its log. Only Synced counts; otherwise start over.",
            "  for attempt in $(seq 1 30); do",
            "    systemctl start mariadb && galera_synced && break",
            "    systemctl stop mariadb || true",
            "    sleep 10",
            "  done",
            "  galera_synced",
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
    return setup_script(lines)


# --- Galera health check (what the database proxy asks every node) ---------------------------

GALERA_HEALTH_SCRIPT = f"{SETUP_DIR}/galera-health"
GALERA_HEALTH_UNIT = "galera-health"  # galera-health.socket + galera-health@.service
WSREP_SYNCED = 4  # wsrep_local_state: 4 = Synced


# The script behind galera-health.socket; __SOCKET__ and __SYNCED__ are filled in by the renderer.
_GALERA_HEALTH_SCRIPT = r"""#!/bin/bash
# Rendered by platform-infra (components/data/mariadb/config.py): Galera health for the database proxy.
set -u
# Read the request line and headers first (bounded in lines and time): closing a connection with
# unread input resets it, and the proxy would count a reset as a failed check.
for _ in $(seq 1 32); do
  IFS= read -r -t 2 line || break
  line="${line%$'\r'}"
  [ -z "$line" ] && break
done
state=""
ready=""
while read -r name value; do
  case "$name" in
    wsrep_local_state) state="$value" ;;
    wsrep_ready) ready="$value" ;;
  esac
done < <(timeout 5 mariadb --no-defaults --protocol=socket --socket=__SOCKET__ --user=root \
  --connect-timeout=2 -N -B \
  -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_ready')" 2>/dev/null)
if [ "$state" = __SYNCED__ ] && [ "$ready" = ON ]; then
  status="200 OK"
  body=$'Galera node is synced.\r\n'
else
  status="503 Service Unavailable"
  body=$'Galera node is not synced.\r\n'
fi
printf 'HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
  "$status" "${#body}" "$body"
"""


def render_galera_health_script(socket: str = "/run/mysqld/mysqld.sock") -> str:
    """The per-connection health check (Percona clustercheck style) behind galera-health.socket.

    systemd hands it one TCP connection on stdin/stdout. It answers `200 OK` only when the local
    node is Synced (wsrep_local_state 4) and accepts queries (wsrep_ready ON), `503 Service
    Unavailable` otherwise, server unreachable included. It logs in as root over the unix socket
    (unix_socket authentication: no password exists to leak) and says nothing but its verdict.
    """
    return _GALERA_HEALTH_SCRIPT.replace("__SOCKET__", shlex.quote(socket)).replace("__SYNCED__", str(WSREP_SYNCED))


def render_galera_health_units(port: int = GALERA_HEALTH_PORT, script: str = GALERA_HEALTH_SCRIPT) -> dict[str, str]:
    """systemd unit name -> content: a socket accepting on `port` and one service per connection."""
    socket_unit = (
        "# Managed by platform-infra (cloud-init).\n"
        "[Unit]\n"
        "Description=Galera health check for the database proxy\n"
        "After=network.target\n"
        "[Socket]\n"
        f"ListenStream={port}\n"
        "Accept=yes\n"
        "MaxConnections=32\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )
    service_unit = (
        "# Managed by platform-infra (cloud-init).\n"
        "[Unit]\n"
        "Description=Galera health check (one connection)\n"
        "CollectMode=inactive-or-failed\n"
        "[Service]\n"
        # A client that hangs up early fails the write: not a failure of this unit.
        f"ExecStart=-{script}\n"
        "StandardInput=socket\n"
        "StandardOutput=socket\n"
        "StandardError=journal\n"
        "RuntimeMaxSec=10\n"
        # One start per check and proxy every 2 s: keep the service manager's notes out of the journal.
        "LogLevelMax=warning\n"
        "NoNewPrivileges=yes\n"
        "ProtectSystem=full\n"
        "ProtectHome=yes\n"
        "PrivateTmp=yes\n"
    )
    return {f"{GALERA_HEALTH_UNIT}.socket": socket_unit, f"{GALERA_HEALTH_UNIT}@.service": service_unit}


def galera_health_cloud_config() -> dict[str, Any]:
    """Files and commands that install and start the health check on a Galera node."""
    files = [cloud_file(GALERA_HEALTH_SCRIPT, render_galera_health_script(), "0700")]
    files += [
        cloud_file(f"/etc/systemd/system/{unit}", content, "0644")
        for unit, content in render_galera_health_units().items()
    ]
    runcmd = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", f"{GALERA_HEALTH_UNIT}.socket"]]
    return {"write_files": files, "runcmd": runcmd}


# --- the database proxy in front of a Galera cluster (HAProxy) -------------------------------


def render_database_proxy_config(
    servers: Sequence[tuple[str, str]],
    *,
    port: int = MARIADB_PORT,
    listen_port: int = MARIADB_PORT,
    health_port: int = GALERA_HEALTH_PORT,
    monitor_port: int = PROXY_MONITOR_PORT,
    monitor_path: str = PROXY_MONITOR_PATH,
    bind_address: str = "",
) -> str:
    """haproxy.cfg for the in-cluster proxy in front of a Galera cluster.

    `servers` are (name, address) in node order: node 0 takes every connection while its health
    check passes, the others are backups taken in order (one writer: no certification conflicts
    between nodes). Addresses are IPs, so HAProxy resolves nothing at run time. TLS passes
    through (TCP mode): clients verify the node's certificate against the proxy's name.
    `bind_address` and the ports are parameters for the loopback tests; production binds all.
    """
    if not servers:
        raise ValueError("a database proxy needs at least one server")
    names = [name for name, _ in servers]
    if len(set(names)) != len(names):
        raise ValueError(f"server names must be unique: {names}")
    for name, address in servers:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"not a server name: {name!r}")
        ipaddress.ip_address(address)  # an IP, never a name to resolve
    lines = [
        "# Rendered by platform-infra (components/data/mariadb/config.py); do not edit by hand.",
        "global",
        "    log stdout format raw local0 info",
        "    maxconn 1024",
        "    nbthread 2",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option dontlognull",
        "    retries 3",
        "    timeout connect 5s",
        # Database sessions are long-lived and idle between queries: MariaDB's own wait_timeout
        # (8 h) closes idle ones, not the proxy.
        "    timeout client 8h",
        "    timeout server 8h",
        "    timeout check 2s",
        "",
        "# The proxy's own health (liveness and readiness of its pods) and its stats page.",
        "frontend monitor",
        "    mode http",
        f"    bind {bind_address}:{monitor_port}",
        f"    monitor-uri {monitor_path}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 10s",
        "    timeout client 10s",
        "    timeout http-request 5s",
        "",
        "listen mariadb",
        f"    bind {bind_address}:{listen_port}",
        "    mode tcp",
        "    option tcplog",
        "    option httpchk",
        "    http-check send meth GET uri /",
        "    http-check expect status 200",
        f"    default-server port {health_port} inter 2s fall 2 rise 3 on-marked-down shutdown-sessions",
    ]
    for index, (name, address) in enumerate(servers):
        lines.append(f"    server {name} {address}:{port} check" + (" backup" if index else ""))
    return "\n".join(lines) + "\n"


def mariadb_cloud_config(
    args: MariaDbNodeArgs,
    *,
    database: str,
    app_user: str,
    tls: TlsMaterial | None = None,
    private_network: bool = False,
) -> dict[str, Any]:
    """cloud-config for one MariaDB node (carries credentials: the caller keeps it secret)."""
    require_tls_pair(args.tls, tls)
    packages = ["mariadb-server", "mariadb-client", "mariadb-backup"]
    if args.topology is MariaDbTopology.GALERA:
        packages += ["galera-4", "socat"]
    files = [
        hold_service_starts(),
        cloud_file("/etc/mysql/mariadb.conf.d/60-platform.cnf", render_server_cnf(args), "0640", "root:mysql", True),
        cloud_file("/root/.my.cnf", render_client_cnf(args.socket), "0600"),
        cloud_file(f"{SETUP_DIR}/mariadb-setup.sh", render_mariadb_setup_script(args, private_network), "0700"),
    ]
    if args.index == 0:
        files.append(
            cloud_file(
                f"{SECRETS_DIR}/mariadb-users.sql", render_users_sql(args, database=database, app_user=app_user), "0600"
            )
        )
    elif args.topology is MariaDbTopology.PRIMARY_REPLICA:
        files.append(cloud_file(f"{SECRETS_DIR}/mariadb-replica.sql", render_replica_sql(args), "0600"))
    if tls is not None and args.tls is not None:
        files += tls_files(args.tls, tls, "mysql:mysql")
    runcmd: list[list[str]] = [[f"{SETUP_DIR}/mariadb-setup.sh"]]
    if args.topology is MariaDbTopology.GALERA:
        # The database proxy's health check: 200 only while this node is Synced.
        health = galera_health_cloud_config()
        files += health["write_files"]
        runcmd += health["runcmd"]
    return {"packages": packages, "write_files": files, "runcmd": runcmd}


# --- exporter, alerts and backups (registry entry in components/data/services.py) -----------

EXPORTER_PORT = 9104
SCRAPE_JOB = "mysqld"

# The exporter logs in through MariaDB's unix_socket plugin as the OS user it runs as, so no
# password exists to leak; the grant is the minimum its collectors read.
MYSQLD_EXPORTER_GRANTS = (
    "SET SESSION sql_log_bin=0; "
    "CREATE USER IF NOT EXISTS 'prometheus'@'localhost' IDENTIFIED VIA unix_socket "
    "WITH MAX_USER_CONNECTIONS 3; "
    "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO 'prometheus'@'localhost';"
)


# How the exporter finds the server differs by release: mysqld_exporter 0.14 (Debian 12) reads
# DATA_SOURCE_NAME and ignores --config.my-cnf when it is set (and rejects a cnf without a
# password, which unix_socket has none of); 0.15 and later (0.17 on Debian 13) no longer read
# DATA_SOURCE_NAME and exit with "no user specified" unless a cnf names the user. Both are given.
EXPORTER_MY_CNF = "/etc/prometheus/mysqld-exporter.cnf"
EXPORTER_DSN = "prometheus@unix(/run/mysqld/mysqld.sock)/"


def exporter_my_cnf_file() -> dict[str, Any]:
    """The exporter's client options: user and socket only (unix_socket needs no password)."""
    content = (
        "# Managed by platform-infra (cloud-init): mysqld_exporter >= 0.15 reads this.\n"
        "[client]\nuser = prometheus\nsocket = /run/mysqld/mysqld.sock\n"
    )
    return {"path": EXPORTER_MY_CNF, "owner": "root:root", "permissions": "0644", "content": content}


def exporter_cloud_config(address: str, *, debian_start: str = DEBIAN_START) -> dict[str, Any]:
    args = [
        f"--web.listen-address={address}:{EXPORTER_PORT}",
        f"--config.my-cnf={EXPORTER_MY_CNF}",
        "--collect.info_schema.processlist",
        "--collect.slave_status",
        "--collect.global_status",
    ]
    grant_loop = (
        f"{wait_for_debian_start(debian_start)}; "
        "for attempt in $(seq 60); do "
        f"mariadb -e {shlex.quote(MYSQLD_EXPORTER_GRANTS)} && exit 0; sleep 5; done; exit 1"
    )
    return {
        "packages": ["prometheus-mysqld-exporter"],
        "write_files": [
            exporter_defaults_file(
                "/etc/default/prometheus-mysqld-exporter",
                args,
                extra=[f'DATA_SOURCE_NAME="{EXPORTER_DSN}"'],
            ),
            exporter_my_cnf_file(),
        ],
        "runcmd": [
            ["sh", "-c", grant_loop],
            ["systemctl", "restart", "prometheus-mysqld-exporter"],
        ],
    }



def alert_rules(t: AlertThresholds, nodes: int) -> list[dict[str, Any]]:
    rules = [
        alert(
            "MariaDbDown",
            "mysql_up == 0",
            t.service_down_for,
            "critical",
            "MariaDB on {{ $labels.instance }} does not answer",
            "mysqld_exporter cannot connect to the server.",
        )
    ]
    if nodes >= 3:
        rules.append(
            alert(
                "GaleraClusterTooSmall",
                f"mysql_global_status_wsrep_cluster_size < {nodes}",
                "1m",
                "critical",
                f"Galera cluster has fewer than {nodes} members",
                "{{ $labels.instance }} sees {{ $value }} members in its cluster.",
            )
        )
        rules.append(
            alert(
                "GaleraNodeNotReady",
                "mysql_global_status_wsrep_ready == 0",
                "1m",
                "critical",
                "Galera node {{ $labels.instance }} does not accept queries",
                "wsrep_ready is OFF: the node is not part of the primary component.",
            )
        )
    elif nodes == 2:
        rules.append(
            alert(
                "MariaDbReplicationBroken",
                "mysql_slave_status_slave_io_running == 0 or mysql_slave_status_slave_sql_running == 0",
                "1m",
                "critical",
                "MariaDB replication stopped on {{ $labels.instance }}",
                "The replica's IO or SQL thread is not running.",
            )
        )
        rules.append(
            alert(
                "MariaDbReplicationLag",
                "mysql_slave_status_seconds_behind_master > 300",
                "5m",
                "warning",
                "MariaDB replica {{ $labels.instance }} lags more than 5 minutes",
                "Seconds behind the primary: {{ $value }}.",
            )
        )
    return rules



def backup_jobs(settings: BackupSettings) -> list[BackupJob]:
    jobs = [BackupJob("mariadb-full", "mariabackup", on_calendar=settings.full_schedule)]
    if settings.incremental_schedule:
        jobs.append(
            BackupJob("mariadb-incremental", "mariabackup", on_calendar=settings.incremental_schedule)
        )
    jobs.append(
        BackupJob(
            "binlog-ship", "binlog", every_seconds=settings.binlog_ship_interval_seconds, timeout="30min"
        )
    )
    jobs.append(BackupJob("verify", "mariabackup", on_calendar=settings.verify_schedule, timeout="12h"))
    return jobs


def backup_alert_rules(backups: BackupSettings) -> list[dict[str, Any]]:
    """Point-in-time recovery rests on the full backups, the shipped binary logs and the restore test."""
    success = f"{BACKUP_METRIC_PREFIX}_last_success_timestamp_seconds"
    stale_seconds = backups.stale_after_hours * 3600
    binlog_stale_seconds = 3 * backups.binlog_ship_interval_seconds
    verify_stale_seconds = backups.verify_stale_after_days * 86400
    rules = [
        alert(
            "BackupMissing",
            f'absent({success}{{kind="full"}})',
            f"{backups.stale_after_hours}h",
            "critical",
            "No full MariaDB backup has ever reported success",
            "The backup timer is not running or cannot write its metric.",
        ),
        alert(
            "BinlogShippingStale",
            f'time() - {success}{{kind="binlog"}} > {binlog_stale_seconds}',
            None,
            "critical",
            "Binary logs not shipped for {{ $value | humanizeDuration }}",
            "Point-in-time recovery would lose more than the RPO.",
        ),
        alert(
            "BackupVerificationStale",
            f'time() - {success}{{kind="verify"}} > {verify_stale_seconds}',
            None,
            "warning",
            "Backups not verified for " + f"{backups.verify_stale_after_days} days",
            "The weekly restore test has not succeeded recently.",
        ),
    ]
    if backups.incremental_schedule is not None:
        rules.append(
            alert(
                "IncrementalBackupStale",
                f'time() - {success}{{kind="incremental"}} > {stale_seconds}',
                None,
                "warning",
                "No incremental MariaDB backup for " + f"{backups.stale_after_hours}h",
                "The incremental timer has not succeeded recently.",
            )
        )
    return rules
