"""Pure renderers for Redis: redis.conf per node and sentinel.conf for 3+ nodes.

1 node = standalone; 2 = primary (node 0) + replica; 3+ = primary, replicas and one Sentinel per
node with a majority quorum. AUTH and protected mode are always on, every listener is bound to the
node's VPC address; with TLS the plaintext port is closed (port 0) and TLS takes the usual port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
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
)
from components.data.connections import TlsFiles
from components.data.plugin import BackupJob, alert, exporter_defaults_file
from components.settings.operations import AlertThresholds, BackupSettings

REDIS_PORT = 6379
SENTINEL_PORT = 26379


class RedisTopology(StrEnum):
    STANDALONE = "standalone"
    PRIMARY_REPLICA = "primary-replica"
    SENTINEL = "sentinel"


def topology_for(nodes: int) -> RedisTopology:
    if nodes < 1:
        raise ValueError(f"Redis needs at least 1 node, got {nodes}")
    if nodes == 1:
        return RedisTopology.STANDALONE
    if nodes == 2:
        return RedisTopology.PRIMARY_REPLICA
    return RedisTopology.SENTINEL


def sentinel_quorum(nodes: int) -> int:
    """Sentinels that must agree the primary is down: a majority, so a minority cannot fail over."""
    return nodes // 2 + 1


@dataclass(frozen=True)
class RedisNodeArgs:
    nodes: int
    index: int
    addresses: Sequence[str]
    password: str
    tls: TlsFiles | None = None
    port: int = REDIS_PORT
    sentinel_port: int = SENTINEL_PORT
    sentinel_master: str = "platform"
    datadir: str = "/var/lib/redis"
    logfile: str = "/var/log/redis/redis-server.log"
    sentinel_logfile: str = "/var/log/redis/redis-sentinel.log"
    pidfile: str = "/run/redis/redis-server.pid"
    sentinel_pidfile: str = "/run/sentinel/redis-sentinel.pid"
    maxmemory: str = "0"  # 0 = no limit; the component sets ~70% of the plan's memory
    maxmemory_policy: str = "volatile-lru"
    # A replica must be serving within 10 s of the primary's loss. After subjective down come the
    # quorum, a leader election with up to 1 s of random delay, the promotion and the replicas'
    # reconfiguration: the system layer measured 7.7-9.8 s from power-off to the announced new
    # primary with 3000 ms here (9.7 s with 5000), so 2 s of silence marks the primary down. VPC
    # round trips are well under a millisecond.
    down_after_ms: int = 2000
    failover_timeout_ms: int = 60000

    def __post_init__(self) -> None:
        if len(self.addresses) != self.nodes:
            raise ValueError(f"{self.nodes} nodes need {self.nodes} addresses, got {len(self.addresses)}")
        if not 0 <= self.index < self.nodes:
            raise ValueError(f"node index {self.index} outside 0..{self.nodes - 1}")

    @property
    def topology(self) -> RedisTopology:
        return topology_for(self.nodes)

    @property
    def address(self) -> str:
        return self.addresses[self.index]


def _quote(value: str) -> str:
    """Redis config string argument (double-quoted, escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lines(pairs: list[tuple[str, str]]) -> str:
    header = "# Rendered by platform-infra (components/data/redis/config.py). Sentinel may rewrite it.\n"
    return header + "".join(f"{key} {value}\n" for key, value in pairs)


def _listener(args: RedisNodeArgs, port: int) -> list[tuple[str, str]]:
    if args.tls is None:
        return [("port", str(port))]
    return [
        ("port", "0"),  # no plaintext listener at all
        ("tls-port", str(port)),
        ("tls-cert-file", args.tls.cert_file),
        ("tls-key-file", args.tls.key_file),
        ("tls-ca-cert-file", args.tls.ca_file),
        ("tls-auth-clients", "no"),  # clients prove themselves with AUTH; the server proves itself by cert
        ("tls-replication", "yes"),
        ("tls-protocols", _quote("TLSv1.2 TLSv1.3")),
    ]


def render_redis_conf(args: RedisNodeArgs) -> str:
    """redis.conf of node `args.index`; node 0 starts as primary, the others replicate from it."""
    pairs: list[tuple[str, str]] = [
        ("bind", args.address),
        ("protected-mode", "yes"),
        *_listener(args, args.port),
        ("daemonize", "no"),
        ("pidfile", args.pidfile),
        ("logfile", _quote(args.logfile)),
        ("dir", args.datadir),
        ("requirepass", _quote(args.password)),
        # Every node may become primary after a failover, so every node knows the password.
        ("masterauth", _quote(args.password)),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("save", _quote("900 1 300 10 60 10000")),
        ("maxmemory", args.maxmemory),
        ("maxmemory-policy", args.maxmemory_policy),
        ("replica-read-only", "yes"),
        ("replica-serve-stale-data", "yes"),
        ("repl-diskless-sync", "yes"),
        # Dangerous admin commands are off for every client; operators use redis-cli on the VM.
        ("rename-command", "FLUSHALL " + _quote("")),
        ("rename-command", "DEBUG " + _quote("")),
    ]
    if args.topology is not RedisTopology.STANDALONE:
        # Replicas announce their VPC address so Sentinel and clients reach them, not 127.0.0.1.
        pairs.append(("replica-announce-ip", args.address))
        if args.index > 0:
            pairs.append(("replicaof", f"{args.addresses[0]} {args.port}"))
        if args.topology is RedisTopology.SENTINEL:
            # Fewer than one replica online means a split primary: stop taking writes.
            pairs += [("min-replicas-to-write", "1"), ("min-replicas-max-lag", "10")]
    return _lines(pairs)


def render_sentinel_conf(args: RedisNodeArgs) -> str:
    """sentinel.conf of node `args.index` (3+ nodes only); Sentinel rewrites it as it learns."""
    if args.topology is not RedisTopology.SENTINEL:
        raise ValueError("Sentinel runs only with 3 or more Redis nodes")
    master = args.sentinel_master
    pairs: list[tuple[str, str]] = [
        ("bind", args.address),
        ("protected-mode", "yes"),
        *_listener(args, args.sentinel_port),
        ("daemonize", "no"),
        ("pidfile", args.sentinel_pidfile),
        ("logfile", _quote(args.sentinel_logfile)),
        ("dir", args.datadir),
        # Clients and the other Sentinels authenticate with the same password.
        ("requirepass", _quote(args.password)),
        ("sentinel announce-ip", args.address),
        ("sentinel announce-port", str(args.sentinel_port)),
        ("sentinel resolve-hostnames", "no"),
        ("sentinel monitor", f"{master} {args.addresses[0]} {args.port} {sentinel_quorum(args.nodes)}"),
        ("sentinel auth-pass", f"{master} {_quote(args.password)}"),
        ("sentinel down-after-milliseconds", f"{master} {args.down_after_ms}"),
        ("sentinel failover-timeout", f"{master} {args.failover_timeout_ms}"),
        ("sentinel parallel-syncs", f"{master} 1"),
    ]
    return _lines(pairs)


# --- cloud-init document ------------------------------------------------------------------

REDIS_TLS_FILES = TlsFiles("/etc/redis/tls/ca.pem", "/etc/redis/tls/server.crt", "/etc/redis/tls/server.key")


def render_redis_setup_script(args: RedisNodeArgs, private_network: bool = False) -> str:
    """First-boot start of Redis (and Sentinel with 3+ nodes)."""
    sentinel = args.topology is RedisTopology.SENTINEL
    lines = ["rm -f /usr/sbin/policy-rc.d", "sysctl --system >/dev/null"]
    if private_network:
        configs = "/etc/redis/redis.conf" + (" /etc/redis/sentinel.conf" if sentinel else "")
        lines += [
            *private_network_lines(),
            'if [ -n "$PRIVATE" ]; then',
            f'  sed -i "s/^bind .*/bind {args.address} $PRIVATE/" {configs}',
            "fi",
        ]
    lines += ["systemctl enable redis-server", "systemctl restart redis-server"]
    if sentinel:
        lines += ["systemctl enable redis-sentinel", "systemctl restart redis-sentinel"]
    return setup_script(lines)


def redis_cloud_config(
    args: RedisNodeArgs, tls: TlsMaterial | None = None, private_network: bool = False
) -> dict[str, Any]:
    """cloud-config for one Redis node (and its Sentinel with 3+ nodes)."""
    require_tls_pair(args.tls, tls)
    sentinel = args.topology is RedisTopology.SENTINEL
    packages = ["redis-server", *(["redis-sentinel"] if sentinel else [])]
    files = [
        hold_service_starts(),
        # Redis forks for snapshots and replication; without overcommit a fork can fail under load.
        cloud_file("/etc/sysctl.d/60-redis.conf", "vm.overcommit_memory = 1\n", "0644"),
        # Owned by redis: Sentinel failovers rewrite both files (CONFIG REWRITE).
        cloud_file("/etc/redis/redis.conf", render_redis_conf(args), "0640", "redis:redis", True),
    ]
    if sentinel:
        files.append(cloud_file("/etc/redis/sentinel.conf", render_sentinel_conf(args), "0640", "redis:redis", True))
    if tls is not None and args.tls is not None:
        files += tls_files(args.tls, tls, "redis:redis")
    files.append(cloud_file(f"{SETUP_DIR}/redis-setup.sh", render_redis_setup_script(args, private_network), "0700"))
    runcmd = [[f"{SETUP_DIR}/redis-setup.sh"]]
    return {"packages": packages, "write_files": files, "runcmd": runcmd}


# --- exporter, alerts and backups (registry entry in components/data/services.py) -----------

EXPORTER_PORT = 9121
SCRAPE_JOB = "redis"

# The exporter reads how to reach Redis from the server's own config at each start: the address
# Redis binds (the VPC address first; never 127.0.0.1), plaintext or TLS (with the internal CA, and
# a client certificate when tls-auth-clients asks for one) and the password. The secret is written
# once (by the data tier) and never copied into another config file; /etc/redis is not readable by
# the exporter's user, so the CA (and a client certificate) are copied to /run for it.
REDIS_PASSWORD_HELPER = "/usr/local/lib/platform/redis-exporter-env"
REDIS_PASSWORD_SCRIPT = """#!/bin/sh
# Managed by platform-infra (cloud-init): how prometheus-redis-exporter reaches Redis.
set -eu
conf="${REDIS_CONF:-/etc/redis/redis.conf}"
out="${EXPORTER_ENV:-/run/prometheus-redis-exporter.env}"
tls_dir="${EXPORTER_TLS_DIR:-/run/prometheus-redis-exporter}"
umask 077
value() { awk -v key="$1" '$1 == key {print $2; exit}' "$conf" | tr -d '"'; }
owned() { if id prometheus >/dev/null 2>&1; then chown prometheus "$@"; fi; }
host=$(value bind)
tls_port=$(value tls-port)
{
  printf 'REDIS_PASSWORD="%s"\\n' "$(value requirepass)"
  if [ -n "$tls_port" ] && [ "$tls_port" != 0 ]; then
    install -d -m 0755 "$tls_dir"
    install -m 0644 "$(value tls-ca-cert-file)" "$tls_dir/ca.pem"
    printf 'REDIS_ADDR="rediss://%s:%s"\\n' "$host" "$tls_port"
    printf 'REDIS_EXPORTER_TLS_CA_CERT_FILE="%s"\\n' "$tls_dir/ca.pem"
    if [ "$(value tls-auth-clients)" != no ]; then  # Redis's default is yes
      install -m 0600 "$(value tls-cert-file)" "$tls_dir/client.crt"
      install -m 0600 "$(value tls-key-file)" "$tls_dir/client.key"
      owned "$tls_dir/client.crt" "$tls_dir/client.key"
      printf 'REDIS_EXPORTER_TLS_CLIENT_CERT_FILE="%s"\\n' "$tls_dir/client.crt"
      printf 'REDIS_EXPORTER_TLS_CLIENT_KEY_FILE="%s"\\n' "$tls_dir/client.key"
    fi
  else
    printf 'REDIS_ADDR="redis://%s:%s"\\n' "$host" "$(value port)"
  fi
} > "$out"
owned "$out"
"""
REDIS_EXPORTER_DROPIN = f"""# Managed by platform-infra (cloud-init).
[Service]
ExecStartPre=+{REDIS_PASSWORD_HELPER}
EnvironmentFile=-/run/prometheus-redis-exporter.env
"""


def exporter_cloud_config(address: str) -> dict[str, Any]:
    args = [
        f"-web.listen-address={address}:{EXPORTER_PORT}",
        # -redis.addr and TLS come from REDIS_ADDR / REDIS_EXPORTER_TLS_* (REDIS_PASSWORD_SCRIPT).
    ]
    return {
        "packages": ["prometheus-redis-exporter"],
        "write_files": [
            exporter_defaults_file("/etc/default/prometheus-redis-exporter", args),
            {
                "path": REDIS_PASSWORD_HELPER,
                "owner": "root:root",
                "permissions": "0755",
                "content": REDIS_PASSWORD_SCRIPT,
            },
            {
                "path": "/etc/systemd/system/prometheus-redis-exporter.service.d/10-password.conf",
                "owner": "root:root",
                "permissions": "0644",
                "content": REDIS_EXPORTER_DROPIN,
            },
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "restart", "prometheus-redis-exporter"],
        ],
    }



def alert_rules(t: AlertThresholds, nodes: int) -> list[dict[str, Any]]:
    rules = [
        alert(
            "RedisNoPrimary",
            '(count(redis_instance_info{role="master"}) or vector(0)) < 1',
            "1m",
            "critical",
            "No Redis node reports the primary role",
            "Writes fail until Sentinel promotes a replica or an operator intervenes.",
        )
    ]
    if nodes >= 2:
        rules.append(
            alert(
                "RedisReplicationBroken",
                f'(sum(redis_connected_slaves and on (instance) redis_instance_info{{role="master"}})'
                f" or vector(0)) < {nodes - 1} or redis_master_link_up == 0",
                "2m",
                "critical",
                "Redis replication is broken",
                f"The primary should have {nodes - 1} connected replicas, or a replica lost its link.",
            )
        )
    return rules



def backup_jobs(settings: BackupSettings) -> list[BackupJob]:
    return [BackupJob("redis-snapshot", "redis", on_calendar=settings.redis_schedule, timeout="2h")]
