"""Per-role cloud-config documents of the data VMs: file placement, ownership, first-boot order."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from components.data.cloud_init import PRIVATE_IPV4_FUNCTION, TlsMaterial
from components.data.mariadb.config import (
    MARIADB_TLS_FILES,
    MariaDbCredentials,
    MariaDbNodeArgs,
    exporter_cloud_config,
    mariadb_cloud_config,
    render_mariadb_setup_script,
)
from components.data.rabbitmq.cluster import CLI_PORTS
from components.data.rabbitmq.config import (
    DIST_PORT,
    EPMD_PORT,
    RABBITMQ_TLS_FILES,
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    node_names_for,
    rabbitmq_cloud_config,
)
from components.data.redis.config import REDIS_TLS_FILES, RedisNodeArgs, redis_cloud_config

ADDRESSES = ["10.0.1.10", "10.0.1.11", "10.0.1.12", "10.0.1.13", "10.0.1.14"]
MATERIAL = TlsMaterial(ca_pem="CA PEM\n", cert_pem="CERT PEM\n", key_pem="KEY PEM\n")
MARIADB_CREDS = MariaDbCredentials(root_password="rootpw", app_password="apppw", replication_password="replpw")


def mariadb(nodes: int, index: int, tls: bool = False) -> dict[str, Any]:
    args = MariaDbNodeArgs(
        nodes=nodes,
        index=index,
        addresses=ADDRESSES[:nodes],
        credentials=MARIADB_CREDS,
        tls=MARIADB_TLS_FILES if tls else None,
    )
    return mariadb_cloud_config(args, database="app", app_user="app", tls=MATERIAL if tls else None)


def files(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in doc["write_files"]}


@pytest.mark.parametrize("doc", [mariadb(1, 0), mariadb(3, 1)], ids=["standalone", "galera"])
def test_service_start_is_held_until_the_setup_script_has_written_the_config(doc: dict[str, Any]) -> None:
    hold = files(doc)["/usr/sbin/policy-rc.d"]
    assert "exit 101" in hold["content"] and not hold.get("defer")
    config = files(doc)["/etc/mysql/mariadb.conf.d/60-platform.cnf"]
    assert config["defer"] is True and config["owner"] == "root:mysql" and config["permissions"] == "0640"
    script = files(doc)["/usr/local/lib/platform/mariadb-setup.sh"]["content"]
    assert script.index("rm -f /usr/sbin/policy-rc.d") < script.index("systemctl")
    # The setup script first; Galera nodes then start their health check socket.
    assert doc["runcmd"][0] == ["/usr/local/lib/platform/mariadb-setup.sh"]


def test_only_node_zero_carries_the_users_sql_and_only_the_replica_the_replica_sql() -> None:
    assert "/root/platform/mariadb-users.sql" in files(mariadb(2, 0))
    assert "/root/platform/mariadb-replica.sql" not in files(mariadb(2, 0))
    replica = files(mariadb(2, 1))
    assert replica["/root/platform/mariadb-replica.sql"]["permissions"] == "0600"
    assert "/root/platform/mariadb-users.sql" not in replica
    assert "/root/platform/mariadb-users.sql" not in files(mariadb(3, 2))


def test_galera_packages_and_safe_bootstrap_guard() -> None:
    doc = mariadb(3, 0)
    assert {"galera-4", "mariadb-backup", "socat"} <= set(doc["packages"])
    script = files(doc)["/usr/local/lib/platform/mariadb-setup.sh"]["content"]
    guard = script.index('if [ ! -e "$DATADIR/grastate.dat" ] && [ "$INDEX" -eq 0 ] && ! peer_answers; then')
    assert guard < script.index("galera_new_cluster")
    assert script.count("galera_new_cluster") == 1
    assert "PEERS=(10.0.1.11 10.0.1.12)" in script


@pytest.mark.parametrize(("nodes", "index"), [(1, 0), (2, 0), (2, 1), (3, 0), (3, 2)])
def test_mariadb_setup_script_is_valid_bash(nodes: int, index: int) -> None:
    args = MariaDbNodeArgs(nodes=nodes, index=index, addresses=ADDRESSES[:nodes], credentials=MARIADB_CREDS)
    result = subprocess.run(["bash", "-n"], input=render_mariadb_setup_script(args), text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_tls_material_lands_in_the_service_directory_with_a_private_key() -> None:
    placed = files(mariadb(1, 0, tls=True))
    key = placed[MARIADB_TLS_FILES.key_file]
    assert key["content"] == "KEY PEM\n" and key["permissions"] == "0600" and key["owner"] == "mysql:mysql"
    assert placed[MARIADB_TLS_FILES.ca_file]["content"] == "CA PEM\n"


def test_tls_paths_without_material_are_refused() -> None:
    args = MariaDbNodeArgs(nodes=1, index=0, addresses=ADDRESSES[:1], credentials=MARIADB_CREDS, tls=MARIADB_TLS_FILES)
    with pytest.raises(ValueError, match="go together"):
        mariadb_cloud_config(args, database="app", app_user="app")


@pytest.mark.parametrize(("nodes", "sentinel"), [(1, False), (2, False), (3, True)])
def test_redis_installs_and_starts_sentinel_only_with_three_or_more_nodes(nodes: int, sentinel: bool) -> None:
    doc = redis_cloud_config(RedisNodeArgs(nodes=nodes, index=0, addresses=ADDRESSES[:nodes], password="pw"))
    assert ("redis-sentinel" in doc["packages"]) is sentinel
    assert ("/etc/redis/sentinel.conf" in files(doc)) is sentinel
    script = files(doc)["/usr/local/lib/platform/redis-setup.sh"]["content"]
    assert ("systemctl restart redis-sentinel" in script) is sentinel
    assert doc["runcmd"] == [["/usr/local/lib/platform/redis-setup.sh"]]
    # Sentinel rewrites the configs after a failover: they belong to redis.
    assert files(doc)["/etc/redis/redis.conf"]["owner"] == "redis:redis"
    assert "vm.overcommit_memory = 1" in files(doc)["/etc/sysctl.d/60-redis.conf"]["content"]
    assert script.index("rm -f /usr/sbin/policy-rc.d") < script.index("systemctl restart redis-server")


def test_redis_tls_files_belong_to_redis() -> None:
    args = RedisNodeArgs(nodes=1, index=0, addresses=ADDRESSES[:1], password="pw", tls=REDIS_TLS_FILES)
    assert files(redis_cloud_config(args, MATERIAL))[REDIS_TLS_FILES.key_file]["owner"] == "redis:redis"


def test_rabbitmq_node_gets_cookie_hosts_and_definitions() -> None:
    args = RabbitMqNodeArgs(
        index=1,
        addresses=ADDRESSES[:3],
        node_names=node_names_for(["mq-0", "mq-1", "mq-2"]),
        credentials=RabbitMqCredentials(admin_password="a", app_password="b", erlang_cookie="COOKIE"),
        tls=RABBITMQ_TLS_FILES,
    )
    doc = rabbitmq_cloud_config(args, MATERIAL)
    placed = files(doc)
    cookie = placed["/var/lib/rabbitmq/.erlang.cookie"]
    assert cookie["content"] == "COOKIE" and cookie["permissions"] == "0400" and cookie["defer"] is True
    assert placed["/etc/hosts"]["append"] is True
    assert placed["/etc/hosts"]["content"] == "10.0.1.10 mq-0\n10.0.1.11 mq-1\n10.0.1.12 mq-2\n"
    assert doc["manage_etc_hosts"] is False
    assert "NODENAME=rabbit@mq-1" in placed["/etc/rabbitmq/rabbitmq-env.conf"]["content"]
    assert "/etc/rabbitmq/rabbitmq.conf.join" not in placed  # only the seed needs a joiner variant
    assert placed[RABBITMQ_TLS_FILES.key_file]["owner"] == "rabbitmq:rabbitmq"
    assert "inet_tls" in placed["/etc/rabbitmq/rabbitmq-env.conf"]["content"]
    assert placed["/etc/rabbitmq/inter_node_tls.config"]["defer"] is True


def test_rabbitmq_seed_switches_to_joining_when_a_peer_already_runs() -> None:
    args = RabbitMqNodeArgs(
        index=0,
        addresses=ADDRESSES[:3],
        node_names=node_names_for(["mq-0", "mq-1", "mq-2"]),
        credentials=RabbitMqCredentials(admin_password="a", app_password="b", erlang_cookie="COOKIE"),
    )
    placed = files(rabbitmq_cloud_config(args))
    assert "classic_config.nodes.2" not in placed["/etc/rabbitmq/rabbitmq.conf"]["content"]
    assert "classic_config.nodes.3 = rabbit@mq-2" in placed["/etc/rabbitmq/rabbitmq.conf.join"]["content"]
    script = placed["/usr/local/lib/platform/rabbitmq-setup.sh"]["content"]
    assert "cp /etc/rabbitmq/rabbitmq.conf.join /etc/rabbitmq/rabbitmq.conf" in script
    assert script.index("cp /etc/rabbitmq") < script.index("systemctl restart rabbitmq-server")
    result = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_rabbitmq_joiners_start_after_the_previous_node_answers() -> None:
    args = RabbitMqNodeArgs(
        index=2,
        addresses=ADDRESSES[:3],
        node_names=node_names_for(["mq-0", "mq-1", "mq-2"]),
        credentials=RabbitMqCredentials(admin_password="a", app_password="b", erlang_cookie="COOKIE"),
    )
    script = files(rabbitmq_cloud_config(args))["/usr/local/lib/platform/rabbitmq-setup.sh"]["content"]
    assert "PREVIOUS=10.0.1.11" in script and "/dev/tcp/${PREVIOUS}/25672" in script
    assert script.index("PREVIOUS=") < script.index("systemctl restart rabbitmq-server")
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize("index", [0, 1, 2])
def test_rabbitmq_setup_probes_peers_only_on_ports_their_firewall_admits_between_peers(index: int) -> None:
    args = RabbitMqNodeArgs(
        index=index,
        addresses=ADDRESSES[:3],
        node_names=node_names_for(["mq-0", "mq-1", "mq-2"]),
        credentials=RabbitMqCredentials(admin_password="a", app_password="b", erlang_cookie="COOKIE"),
        tls=RABBITMQ_TLS_FILES,
    )
    script = files(rabbitmq_cloud_config(args, MATERIAL))["/usr/local/lib/platform/rabbitmq-setup.sh"]["content"]
    # cluster-from-peers (components/data/rabbitmq/cluster.py) admits these between peers; 5671 is app-only.
    low, high = (int(p) for p in CLI_PORTS.split("-"))
    admitted = {EPMD_PORT, DIST_PORT, *range(low, high + 1)}
    ports = {int(p) for p in re.findall(r"/dev/tcp/\$\{\w+\}/(\d+)", script)}
    for line in re.findall(r"PEERS=\(([^)]*)\)", script):
        ports |= {int(entry.rsplit("/", 1)[1]) for entry in line.split()}
    assert ports, script
    assert ports <= admitted, f"probes {ports} but peers admit only {sorted(admitted)[:3]}..."
    assert "5671" not in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_private_network_path_also_listens_on_the_private_address_found_at_boot() -> None:
    mariadb_args = MariaDbNodeArgs(nodes=1, index=0, addresses=ADDRESSES[:1], credentials=MARIADB_CREDS)
    mariadb_script = render_mariadb_setup_script(mariadb_args, private_network=True)
    assert "bind-address = %s,%s" in mariadb_script and "10.0.1.10" in mariadb_script
    assert "private_ipv4" not in render_mariadb_setup_script(mariadb_args)
    redis_args = RedisNodeArgs(nodes=3, index=1, addresses=ADDRESSES[:3], password="pw")
    redis_script = files(redis_cloud_config(redis_args, private_network=True))[
        "/usr/local/lib/platform/redis-setup.sh"
    ]["content"]
    assert 'sed -i "s/^bind .*/bind 10.0.1.11 $PRIVATE/" /etc/redis/redis.conf /etc/redis/sentinel.conf' in redis_script
    rabbit_args = RabbitMqNodeArgs(
        index=0,
        addresses=ADDRESSES[:1],
        node_names=["rabbit@mq-0"],
        credentials=RabbitMqCredentials(admin_password="a", app_password="b", erlang_cookie="C"),
    )
    rabbit_script = files(rabbitmq_cloud_config(rabbit_args, private_network=True))[
        "/usr/local/lib/platform/rabbitmq-setup.sh"
    ]["content"]
    assert 'echo "listeners.tcp.private = $PRIVATE:5672" >> /etc/rabbitmq/rabbitmq.conf' in rabbit_script
    for script in (mariadb_script, redis_script, rabbit_script):
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_private_ipv4_function_picks_only_linode_private_network_addresses() -> None:
    fake_ip = (
        "#!/bin/sh\n"
        "echo '2: eth0    inet 172.105.1.2/24 brd 172.105.1.255 scope global eth0'\n"
        "echo '2: eth0    inet 192.168.1.9/24 scope global eth0:1'\n"
        "echo '2: eth0    inet 192.168.139.7/17 scope global eth0:2'\n"
        "echo '3: eth1    inet 10.0.1.10/24 scope global eth1'\n"
    )
    program = f"ip() {{ sh -c {shlex.quote(fake_ip)}; }}\n{PRIVATE_IPV4_FUNCTION}\nprivate_ipv4\n"
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=10)
    assert result.stdout.strip() == "192.168.139.7"


# --- the Galera bootstrap decision, run for real with stand-in commands ----------------------


CLIENT_PORT, GALERA_PORT = 13306, 14567


def run_galera_setup(
    tmp_path: Path,
    index: int,
    *,
    grastate: bool,
    peer_ports: tuple[int, ...] = (),
    extra_steps: dict[str, str] | None = None,
    exit_status: int = 0,
) -> list[str]:
    """Run node `index`'s rendered setup script; returns the commands it called, in order.
    `extra_steps` adds shell lines to a stand-in command (after it notes its call)."""
    bin_dir, datadir, secrets = tmp_path / "bin", tmp_path / "data", tmp_path / "secrets"
    for directory in (bin_dir, datadir, secrets):
        directory.mkdir()
    calls = tmp_path / "calls.log"
    # The stand-in server reports the Galera state written to wsrep-state (Synced unless a test
    # says otherwise); the 10 s pause between join attempts costs no time.
    state = tmp_path / "wsrep-state"
    report = (
        f"case \"$*\" in *wsrep_local_state*)"
        f" printf 'wsrep_local_state\\t%s\\n' \"$(cat {state} 2>/dev/null || echo 4)\" ;;"
        " *wsrep_ready*) printf 'wsrep_ready\\tON\\n' ;; esac\n"
    )
    for command in ("systemctl", "galera_new_cluster", "mariadb", "shred", "sleep"):
        stub = bin_dir / command
        extra = (extra_steps or {}).get(command, "") + (report if command == "mariadb" else "")
        if command == "sleep":
            extra += '[ "$1" = 10 ] || /bin/sleep "$@"\n'  # only the pause between join attempts is skipped
        stub.write_text(f'#!/bin/sh\necho "{command} $*" >> {calls}\n{extra}')
        stub.chmod(0o755)
    (secrets / "mariadb-users.sql").write_text("SELECT 1;\n")
    if grastate:
        (datadir / "grastate.dat").write_text("safe_to_bootstrap: 0\n")
    # Loopback addresses of this test's own (tests run in parallel and bind the peers' ports).
    subnet = zlib.crc32(str(tmp_path).encode()) % 250 + 1
    addresses = [f"127.3.{subnet}.51", f"127.3.{subnet}.52", f"127.3.{subnet}.53"]
    args = MariaDbNodeArgs(
        nodes=3,
        index=index,
        addresses=addresses,
        credentials=MARIADB_CREDS,
        datadir=str(datadir),
        port=CLIENT_PORT,
        galera_port=GALERA_PORT,
    )
    script = render_mariadb_setup_script(
        args,
        secrets_dir=str(secrets),
        policy_rc=str(tmp_path / "policy-rc.d"),
        debian_start=str(debian_start_path(tmp_path)),
    )
    listeners = [socket.socket() for _ in peer_ports]
    try:
        for listener, port in zip(listeners, peer_ports, strict=True):
            listener.bind((addresses[1], port))
            listener.listen()
        result = subprocess.run(
            ["bash", "-c", script],
            env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for listener in listeners:
            listener.close()
    assert result.returncode == exit_status, result.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_node_zero_bootstraps_a_fresh_cluster_when_no_peer_answers(tmp_path: Path) -> None:
    calls = run_galera_setup(tmp_path, 0, grastate=False)
    assert "galera_new_cluster " in calls
    assert "systemctl start mariadb" not in calls


def test_node_zero_joins_when_a_peer_already_runs(tmp_path: Path) -> None:
    # A running member serves clients (and, of course, Galera).
    calls = run_galera_setup(tmp_path, 0, grastate=False, peer_ports=(GALERA_PORT, CLIENT_PORT))
    assert "galera_new_cluster " not in calls
    assert "systemctl start mariadb" in calls


def test_node_zero_bootstraps_when_peers_only_wait_to_join(tmp_path: Path) -> None:
    # A joiner retrying 'systemctl start mariadb' listens on the Galera port but serves no clients:
    # it is waiting for a primary component that only node 0 can create.
    calls = run_galera_setup(tmp_path, 0, grastate=False, peer_ports=(GALERA_PORT,))
    assert "galera_new_cluster " in calls
    assert "systemctl start mariadb" not in calls


def test_node_zero_with_an_existing_data_directory_never_bootstraps(tmp_path: Path) -> None:
    calls = run_galera_setup(tmp_path, 0, grastate=True)
    assert "galera_new_cluster " not in calls and "systemctl start mariadb" in calls


def test_other_nodes_always_join(tmp_path: Path) -> None:
    calls = run_galera_setup(tmp_path, 2, grastate=False)
    assert "galera_new_cluster " not in calls and "systemctl start mariadb" in calls


def debian_start_path(tmp_path: Path) -> Path:
    # Per test, so Debian's real script running in a system container on this host is not waited for.
    return tmp_path / "etc" / "mysql" / "debian-start"


def fake_debian_start(tmp_path: Path, calls: Path, seconds: float) -> Path:
    """A stand-in for /etc/mysql/debian-start's background upgrade; it notes when it is done."""
    script = debian_start_path(tmp_path)
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/bash\n/bin/sleep {seconds}\necho "debian-start done" >> {calls}\n')
    script.chmod(0o755)
    return script


def test_node_zero_creates_its_users_only_after_debians_post_start_upgrade(tmp_path: Path) -> None:
    # mariadb-upgrade's ALTER TABLE on mysql.* and a concurrent GRANT wait on each other for ever.
    calls = tmp_path / "calls.log"
    upgrade = fake_debian_start(tmp_path, calls, 2)
    # mariadb.service's ExecStartPost leaves it running in the background when the start returns.
    in_background = f"setsid bash {upgrade} >/dev/null 2>&1 < /dev/null &\n"
    recorded = run_galera_setup(tmp_path, 0, grastate=False, extra_steps={"galera_new_cluster": in_background})
    assert "debian-start done" in recorded
    users_fed = recorded.index("mariadb ")  # `mariadb < users.sql`: no arguments
    assert recorded.index("debian-start done") < users_fed, recorded


def run_exporter_grant(tmp_path: Path, upgrade_seconds: float | None) -> tuple[list[str], float]:
    """Run the exporter's grant command as cloud-init would, with a stand-in `mariadb`."""
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "grant-bin"
    bin_dir.mkdir()
    stub = bin_dir / "mariadb"
    stub.write_text(f'#!/bin/sh\necho "mariadb" >> {calls}\n')
    stub.chmod(0o755)
    runcmd = exporter_cloud_config("10.0.1.21", debian_start=str(debian_start_path(tmp_path)))["runcmd"]
    grant = next(command for command in runcmd if command[0] == "sh")
    upgrade = None
    if upgrade_seconds is not None:
        upgrade = subprocess.Popen(["bash", str(fake_debian_start(tmp_path, calls, upgrade_seconds))])
    started = time.monotonic()
    try:
        subprocess.run(grant, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=True, timeout=60)
    finally:
        if upgrade is not None:
            upgrade.wait(timeout=30)
    return calls.read_text().splitlines(), time.monotonic() - started


def test_the_exporter_grant_waits_for_debians_post_start_upgrade(tmp_path: Path) -> None:
    recorded, _ = run_exporter_grant(tmp_path, 2)
    assert recorded == ["debian-start done", "mariadb"]


def test_the_exporter_grant_does_not_wait_for_itself(tmp_path: Path) -> None:
    # The wait's own command line names the script it waits for; the pattern must not match it.
    debian_start_path(tmp_path).parent.mkdir(parents=True)
    recorded, seconds = run_exporter_grant(tmp_path, None)
    assert recorded == ["mariadb"]
    assert seconds < 5


def test_the_production_wait_names_debians_script() -> None:
    grant = next(command for command in exporter_cloud_config("10.0.1.21")["runcmd"] if command[0] == "sh")
    assert "pgrep -f '/etc/mysql/[d]ebian-start'" in grant[2]


def test_a_joiner_left_outside_the_cluster_starts_over(tmp_path: Path) -> None:
    # The first start "succeeds" but the node is not a member (wsrep_local_state 0, as after a
    # failed IST); the second start joins.
    state = tmp_path / "wsrep-state"
    count = tmp_path / "starts"
    on_start = (
        f'if [ "$1 $2" = "start mariadb" ]; then n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}; '
        f'if [ $n -eq 1 ]; then echo 0 > {state}; else echo 4 > {state}; fi; fi\n'
    )
    calls = run_galera_setup(tmp_path, 1, grastate=False, extra_steps={"systemctl": on_start})
    service = [call for call in calls if call.endswith(" mariadb") and call.startswith("systemctl ")]
    # stop (the script's first line), start (outside the cluster), stop, start (Synced), enable
    assert service == [
        "systemctl stop mariadb",
        "systemctl start mariadb",
        "systemctl stop mariadb",
        "systemctl start mariadb",
        "systemctl enable mariadb",
    ]


def test_a_joiner_that_never_becomes_a_member_fails_the_setup(tmp_path: Path) -> None:
    (tmp_path / "wsrep-state").write_text("0\n")
    calls = run_galera_setup(tmp_path, 2, grastate=False, exit_status=1)
    assert calls.count("systemctl start mariadb") == 30
    assert "systemctl enable mariadb" not in calls
