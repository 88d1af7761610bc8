"""Backups to the local S3 (object_storage.py), their restore verification and a point-in-time restore.

What the timers do, done once by hand: `systemctl start platform-backup-<job>.service` on each
service's backup node (components/operations/schedules.py, `backup_node_index`), then what
lands in the bucket, what `platform-backup-verify` says and what the node's textfile metrics say.
The point-in-time restore runs docs/RUNBOOK.md's own blocks ("MariaDB point-in-time restore",
steps 2, 3 and 5, read from the file) on the backup node, into a scratch throwaway server instead
of the live datadir (step 4); the Redis and RabbitMQ backups are read back with the runbook's
download block, and the definitions imported with its `rabbitmqctl import_definitions`.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from components.operations.schedules import SCRIPT_PATH, UNIT_PREFIX, backup_node_index
from tests.system.app_side import AppSide
from tests.system.checks import EVIDENCE, TIMINGS, Fleet, scrape
from tests.system.clusters import mariadb, wait_until
from tests.system.machine import Container
from tests.system.object_storage import backup_environment, local_s3
from tests.system.program import Vm

ROLES = ("mariadb", "redis", "rabbitmq")
FULL = f"{UNIT_PREFIX}-mariadb-full.service"
INCREMENTAL = f"{UNIT_PREFIX}-mariadb-incremental.service"
BINLOG = f"{UNIT_PREFIX}-binlog-ship.service"
VERIFY = f"{UNIT_PREFIX}-verify.service"
TEXTFILES = "/var/lib/prometheus/node-exporter"
# Sourcing the env file as docs/RUNBOOK.md does before running the script by hand.
WITH_ENV = "set -a; . /etc/platform-backup/env; set +a; "

# What each kind of backup leaves under the backup node's prefix (<stack>/<role>).
OBJECTS = {
    "mariadb full": r"mariadb/\d{8}T\d{6}Z/00-full\.xbstream\.zst",
    "mariadb incremental": r"mariadb/\d{8}T\d{6}Z/\d\d-inc\.xbstream\.zst",
    "mariadb manifest": r"mariadb/\d{8}T\d{6}Z/manifest\.json",
    "mariadb latest": r"mariadb/latest",
    "binary log": r"binlog/mariadb-bin\.\d{6}\.zst",
    "redis rdb": r"redis/\d{8}T\d{6}Z\.rdb\.zst",
    "rabbitmq definitions": r"rabbitmq/\d{8}T\d{6}Z\.json\.zst",
}
EXPECTED = {
    "mariadb": ["mariadb full", "mariadb incremental", "mariadb manifest", "mariadb latest", "binary log"],
    "redis": ["redis rdb"],
    "rabbitmq": ["rabbitmq definitions"],
}


def backup_node(group: Fleet, role: str) -> Container:
    """The node that takes the role's backups, as the program picks it; it must carry the env file."""
    labels = sorted(label for label, c in group.containers.items() if c.vm.role == role)
    node = group[labels[backup_node_index(len(labels))]]
    others = [label for label in labels if backup_environment(group[label].vm) is not None]
    assert others == [node.vm.label], f"{role}: backup env file on {others}, expected {node.vm.label}"
    return node


def backup_units(vm: Vm) -> list[str]:
    """The backup services the VM's user data writes, in its order."""
    files = yaml.safe_load(vm.user_data).get("write_files") or []
    pattern = re.compile(rf"^/etc/systemd/system/({UNIT_PREFIX}-[\w-]+\.service)$")
    return [m.group(1) for f in files if (m := pattern.match(str(f.get("path", ""))))]


def _script_result(journal: str) -> dict[str, Any]:
    """The JSON line platform-backup prints when it succeeds."""
    for line in reversed(journal.splitlines()):
        if line.startswith("{") and '"result"' in line:
            result: dict[str, Any] = json.loads(line)
            return result
    return {}


def start_unit(node: Container, unit: str, timeout: float = 900) -> dict[str, Any]:
    """`systemctl start` (what the timer triggers), waiting for the oneshot to finish."""
    node.run(f"systemctl reset-failed {unit}", check=False)
    since = node.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    started = time.monotonic()
    node.run(f"systemctl start {unit}", check=False, timeout=timeout)
    seconds = time.monotonic() - started
    show = node.run(f"systemctl show -p Result -p ExecMainStatus {unit}").stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    journal = node.run(f"journalctl -u {unit} --since '{since}' --no-pager -o cat", check=False).stdout
    return {
        "node": node.vm.label,
        "unit": unit,
        "result": props.get("Result"),
        "exit": props.get("ExecMainStatus"),
        "seconds": round(seconds, 2),
        "script": _script_result(journal),
        "journal": journal[-1500:],
    }


def run_by_hand(node: Container, command: str, lock: str, timeout: float = 900) -> dict[str, Any]:
    """The script run as docs/RUNBOOK.md runs it (env sourced), under the job's lock."""
    started = time.monotonic()
    done = node.run(
        f"{WITH_ENV}flock --wait 600 /run/{UNIT_PREFIX}-{lock}.lock {SCRIPT_PATH} {command}",
        check=False,
        timeout=timeout,
    )
    return {
        "node": node.vm.label,
        "unit": f"platform-backup {command} (by hand)",
        "result": "success" if done.returncode == 0 else f"exit {done.returncode}",
        "seconds": round(time.monotonic() - started, 2),
        "script": _script_result(done.stdout),
        "journal": (done.stdout + done.stderr)[-1500:],
    }


def incremental(node: Container) -> dict[str, Any]:
    """The incremental job; staging schedules none (docs/RUNBOOK.md), so there the script runs by hand."""
    if INCREMENTAL in backup_units(node.vm):
        return start_unit(node, INCREMENTAL)
    return run_by_hand(node, "mariadb-incremental", "mariabackup")


def bucket_objects(group: Fleet, node: Container) -> dict[str, int]:
    """key -> size of what the node's backups left under its prefix."""
    env = backup_environment(node.vm)
    assert env is not None
    s3 = local_s3(group)
    prefix = env["PLATFORM_BACKUP_PREFIX"].strip("/") + "/"
    return s3.objects(env["PLATFORM_BACKUP_S3_ENDPOINT"], env["PLATFORM_BACKUP_BUCKET"], prefix)


def classify(objects: dict[str, int], prefix: str) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {kind: [] for kind in OBJECTS}
    for key in objects:
        for kind, pattern in OBJECTS.items():
            if re.fullmatch(re.escape(prefix.strip("/")) + "/" + pattern, key):
                kinds[kind].append(key)
    return kinds


# --- docs/RUNBOOK.md, run as written -------------------------------------------------------------

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"
# What `sudo -i` gives the operator: root's PATH (platform-backup is in /usr/local/sbin).
ROOT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH\n"
DOWNLOAD_SECTION = "Downloading the newest Redis snapshot or RabbitMQ definitions"
PITR_SECTION = "MariaDB point-in-time restore"


def runbook_blocks(section: str) -> list[str]:
    """The ```sh blocks of a docs/RUNBOOK.md section, as an operator pastes them (dedented)."""
    text = RUNBOOK.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else len(text)]
    return [textwrap.dedent(block) for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", body, re.S | re.M)]


def runbook_block(section: str, containing: str) -> str:
    [block] = [b for b in runbook_blocks(section) if containing in b]
    return block


def substitute(block: str, replacements: dict[str, str]) -> str:
    """The block with the runbook's placeholders filled in; each must be there (the runbook and
    this layer must not drift apart silently)."""
    for old, new in replacements.items():
        assert old in block, f"docs/RUNBOOK.md no longer says {old!r} in:\n{block}"
        block = block.replace(old, new)
    return block


def run_as_root(node: Container, block: str, timeout: float = 900) -> str:
    """A runbook block on the node as `sudo -i` then the block's lines would run it."""
    lines = [line for line in block.splitlines() if line.strip() != "sudo -i"]
    script = ROOT_PATH + "\n".join(lines) + "\n"
    return node.run(f"bash -e -o pipefail -c {shlex.quote(script)}", timeout=timeout).stdout


def download_newest(node: Container, kind: str) -> str:
    """docs/RUNBOOK.md's download of the newest `<prefix>/<kind>/` object; the decompressed file's path."""
    block = runbook_block(DOWNLOAD_SECTION, "python3 - redis")
    replacements = {"python3 - redis": f"python3 - {kind}"}
    if kind == "rabbitmq":
        replacements["/var/tmp/newest.rdb"] = "/var/tmp/newest.json"
    run_as_root(node, substitute(block, replacements), timeout=300)
    return "/var/tmp/newest.json" if kind == "rabbitmq" else "/var/tmp/newest.rdb"


def textfile_metrics(node: Container) -> dict[str, float]:
    """`platform_backup_last_run_success{kind}` as the node's textfile collector files say it."""
    text = node.run(f"cat {TEXTFILES}/platform_backup_*.prom", check=False).stdout
    found = re.findall(r'^platform_backup_last_run_success\{kind="(\w+)"\} (\S+)$', text, re.M)
    return {kind: float(value) for kind, value in found}


def scraped_metrics(group: Fleet, node: Container) -> dict[str, float]:
    """The same metric through the node exporter, scraped from the app side as Prometheus does."""
    text = scrape(group.lan.client, node.vm.private_address or node.vm.address, 9100, group.sources["app"])
    found = re.findall(r'^platform_backup_last_run_success\{kind="(\w+)"\} (\S+)$', text, re.M)
    return {kind: float(value) for kind, value in found}


def _table(app: AppSide) -> str:
    return f"{urlsplit(app.settings['DATABASE_URL']).path.lstrip('/')}.system_layer_writes"


def _ids(node: Container, table: str, socket: str | None = None) -> set[int]:
    if socket is None:
        return {int(x) for x in mariadb(node, f"SELECT id FROM {table}").split()}
    out = node.run(f"mariadb --socket={socket} -N -B -e {shlex.quote(f'SELECT id FROM {table}')}").stdout
    return {int(x) for x in out.split()}


def write_rows(app: AppSide, node: Container, seconds: float = 3) -> list[int]:
    """Rows written through DATABASE_URL (the app's path), waited for on the backup node."""
    result = app.run("mariadb-writer", str(seconds))
    ids = sorted(int(i) for i, _, _ in result["acknowledged"])
    assert ids, f"the writer got nothing acknowledged: {result['errors'][:3]}"
    table = _table(app)
    wait_until(lambda: set(ids) <= _ids(node, table), 60, f"{node.vm.label} holds the rows", 0.5)
    return ids


def backups_reach_the_bucket(app: AppSide, group: Fleet, stack: str) -> dict[str, Any]:
    """Every backup job once on its node, then what is in the bucket and the restore verification."""
    roles = [role for role in ROLES if any(c.vm.role == role for c in group.containers.values())]
    nodes = {role: backup_node(group, role) for role in roles}
    rows = write_rows(app, nodes["mariadb"])
    jobs: list[dict[str, Any]] = []
    for node in nodes.values():
        for unit in backup_units(node.vm):
            if unit in (VERIFY, INCREMENTAL):
                continue
            jobs.append(start_unit(node, unit))
            if unit == FULL:
                jobs.append(incremental(node))
    objects: dict[str, dict[str, int]] = {}
    kinds: dict[str, dict[str, list[str]]] = {}
    for role, node in nodes.items():
        env = backup_environment(node.vm)
        assert env is not None
        objects[role] = bucket_objects(group, node)
        kinds[role] = classify(objects[role], env["PLATFORM_BACKUP_PREFIX"])
    verify = start_unit(nodes["mariadb"], VERIFY, timeout=1800)
    # What a restore of Redis or RabbitMQ starts from, downloaded as docs/RUNBOOK.md does it; the
    # definitions imported back (the same ones: nothing changes) with the runbook's command.
    rdb = ""
    if kinds.get("redis", {}).get("redis rdb"):
        rdb = nodes["redis"].run(f"head -c 5 {download_newest(nodes['redis'], 'redis')}").stdout
    definitions, imported = "{}", ""
    if kinds.get("rabbitmq", {}).get("rabbitmq definitions"):
        path = download_newest(nodes["rabbitmq"], "rabbitmq")
        definitions = nodes["rabbitmq"].run(f"cat {path}").stdout
        done = nodes["rabbitmq"].run(f"rabbitmqctl import_definitions {path}", check=False, timeout=300)
        imported = "ok" if done.returncode == 0 else (done.stdout + done.stderr)[-800:]
    vhosts = sorted(v["name"] for v in json.loads(definitions).get("vhosts", []))
    metrics = {role: textfile_metrics(node) for role, node in nodes.items()}
    scraped = {role: scraped_metrics(group, node) for role, node in nodes.items()}
    report = {
        "rows written through DATABASE_URL": len(rows),
        "jobs": jobs,
        "verify": verify,
        "objects": objects,
        "kinds": {role: {k: len(v) for k, v in found.items() if v} for role, found in kinds.items()},
        "missing": {role: [k for k in EXPECTED[role] if not kinds[role][k]] for role in roles},
        "redis rdb starts with": rdb,
        "rabbitmq definitions vhosts": vhosts,
        "rabbitmq import_definitions": imported,
        "app vhost": unquote(urlsplit(app.settings["AMQP_URLS"].split(",")[0]).path.lstrip("/")),
        "textfile metrics": metrics,
        "scraped metrics": scraped,
    }
    EVIDENCE[f"{stack} backups"] = report
    for job in [*jobs, verify]:
        TIMINGS[f"{stack} backup: {job['unit']} on {job['node']}"] = job["seconds"]
    for role in roles:
        TIMINGS[f"{stack} backup: objects under {role}'s prefix (count)"] = len(objects[role])
        TIMINGS[f"{stack} backup: bytes under {role}'s prefix"] = sum(objects[role].values())
    TIMINGS[f"{stack} backup: objects in the bucket (count)"] = sum(len(found) for found in objects.values())
    TIMINGS[f"{stack} backup: bytes in the bucket"] = sum(sum(found.values()) for found in objects.values())
    return report


def check_backups(report: dict[str, Any]) -> None:
    """Every job succeeded, every kind of object arrived, the verification passed, the metrics say so."""
    failed = [job for job in report["jobs"] if job["result"] != "success"]
    assert failed == [], failed
    assert report["missing"] == {role: [] for role in ROLES}, report["kinds"]
    verify = report["verify"]
    assert verify["result"] == "success", verify["journal"]
    assert verify["script"].get("tables_ok", 0) > 0 and verify["script"].get("pieces") == 2, verify["script"]
    assert report["redis rdb starts with"] == "REDIS"
    assert report["app vhost"] in report["rabbitmq definitions vhosts"], report["rabbitmq definitions vhosts"]
    assert report["rabbitmq import_definitions"] == "ok", report["rabbitmq import_definitions"]
    expected = {"mariadb": {"full", "incremental", "binlog", "verify"}, "redis": {"redis"}, "rabbitmq": {"rabbitmq"}}
    for role, kinds in expected.items():
        # The textfile the job writes, and the same through node_exporter as Prometheus scrapes it.
        assert report["textfile metrics"][role] == {kind: 1.0 for kind in kinds}, report["textfile metrics"]
        assert report["scraped metrics"][role] == {kind: 1.0 for kind in kinds}, report["scraped metrics"]


def check_point_in_time_restore(result: dict[str, Any]) -> None:
    for job in result["jobs"]:
        assert job["result"] == "success", job
    assert result["batch B in the backup"] == 0, "batch B must come from the binary logs, not the backup"
    assert result["rows of the incremental restored"] == result["rows between full and incremental"] > 0
    assert result["missing after replay"] == [], result
    assert result["extra after replay"] == [], result
    assert result["rows after the replay"] == result["rows at T"] > result["rows in the restored backup"]


# --- point-in-time restore (docs/RUNBOOK.md steps 2, 3 and 5, into a scratch server) ------------

SCRATCH = "/var/tmp/system-layer-pitr"
SCRATCH_UNIT = "system-layer-pitr-mariadbd"


def _sleep_past_second(margin: float = 0.25) -> None:
    """Until just after the next second boundary (containers share the host's clock)."""
    now = time.time()
    time.sleep(math.ceil(now) - now + margin)


def _start_scratch_server(node: Container) -> str:
    """A throwaway mariadbd on the restored datadir, socket only, as `platform-backup verify` starts one."""
    socket = f"{SCRATCH}/run/mariadbd.sock"
    argv = [
        "mariadbd",
        "--no-defaults",
        f"--datadir={SCRATCH}/data",
        f"--socket={socket}",
        f"--pid-file={SCRATCH}/run/mariadbd.pid",
        f"--log-error={SCRATCH}/run/mariadbd.err",
        "--skip-networking",
        "--skip-log-bin",
        "--skip-slave-start",
        "--innodb-buffer-pool-size=64M",
        "--wsrep-on=OFF",
        "--user=root",
    ]
    node.run(f"mkdir -p {SCRATCH}/run && systemd-run --quiet --unit={SCRATCH_UNIT} --collect {shlex.join(argv)}")

    def answers() -> bool:
        ping = node.run(f"mariadb-admin --no-defaults --socket={socket} ping", check=False)
        return ping.returncode == 0

    try:
        wait_until(answers, 180, "scratch mariadbd answers", 0.5)
    except TimeoutError as error:
        log = node.run(f"tail -n 30 {SCRATCH}/run/mariadbd.err", check=False).stdout
        raise AssertionError(f"{error}: {log}") from error
    return socket


def point_in_time_restore(app: AppSide, group: Fleet, stack: str) -> dict[str, Any]:
    """Batch A, full, a few rows, incremental, batch B, moment T, destructive change C (deletes
    most of A and all of B), binlogs shipped; then restore + binlogs + replay up to T into a
    scratch server: it must hold exactly the rows the node held at T."""
    node = backup_node(group, "mariadb")
    table = _table(app)
    timings: dict[str, float] = {}
    batch_a = write_rows(app, node)
    jobs = [start_unit(node, FULL)]
    between = write_rows(app, node, 1)  # only the incremental holds these
    jobs.append(incremental(node))
    batch_b = write_rows(app, node)
    _sleep_past_second()  # batch B's events carry earlier seconds than T
    moment = mariadb(node, "SELECT NOW()").strip()
    at_moment = _ids(node, table)
    _sleep_past_second()  # C's events carry later seconds than T
    app.run("mariadb-query", f"DELETE FROM system_layer_writes WHERE id > {batch_a[0]}")
    wait_until(lambda: max(_ids(node, table) or {0}) == batch_a[0], 60, "the backup node applied C", 0.5)
    jobs.append(start_unit(node, BINLOG))
    for job in jobs:
        assert job["result"] == "success", job

    started = time.monotonic()
    node.run(f"systemctl stop {SCRATCH_UNIT} 2>/dev/null; rm -rf {SCRATCH} && mkdir -p {SCRATCH}", check=False)
    # Steps 2 and 3 as docs/RUNBOOK.md writes them, into the scratch directory.
    paths = {"/var/tmp/restore/": f"{SCRATCH}/"}
    step = time.monotonic()
    restored = run_as_root(node, substitute(runbook_block(PITR_SECTION, "platform-backup restore"), paths), 1800)
    timings["restore (download + prepare)"] = time.monotonic() - step
    binlog_info = node.run(f"cat {SCRATCH}/data/mariadb_backup_binlog_info").stdout.split()
    first_file, position = binlog_info[0], binlog_info[1]
    step = time.monotonic()
    # Step 3 runs in step 2's shell, where the env file is sourced.
    step_3 = WITH_ENV + "\n" + substitute(runbook_block(PITR_SECTION, "platform-backup binlogs"), paths)
    fetched = run_as_root(node, step_3, 600)
    timings["binlogs (download + decompress)"] = time.monotonic() - step
    step = time.monotonic()
    socket = _start_scratch_server(node)  # instead of step 4 (the live datadir)
    timings["scratch mariadbd start"] = time.monotonic() - step
    try:
        before_replay = _ids(node, table, socket)
        # Step 5, the runbook's lines, into the scratch server's socket.
        replay = substitute(
            runbook_block(PITR_SECTION, "mariadb-binlog"),
            {
                **paths,
                "<position from step 2>": position,
                "<file from step 2>": first_file,
                '--stop-datetime="2026-11-23 10:41:00"': f'--stop-datetime="{moment}"',
                "| mariadb\n": f"| mariadb --socket={socket}\n",
            },
        )
        step = time.monotonic()
        run_as_root(node, replay, 600)
        timings["replay to T"] = time.monotonic() - step
        after_replay = _ids(node, table, socket)
    finally:
        node.run(f"systemctl stop {SCRATCH_UNIT}", check=False)
    timings["total (restore .. replayed)"] = time.monotonic() - started
    node.run(f"rm -rf {SCRATCH}", check=False)
    result = {
        "node": node.vm.label,
        "moment T": moment,
        "binlog start": f"{first_file}:{position}",
        "batch A": [batch_a[0], batch_a[-1], len(batch_a)],
        "batch B": [batch_b[0], batch_b[-1], len(batch_b)],
        "rows between full and incremental": len(between),
        "rows of the incremental restored": len(set(between) & before_replay),
        "rows at T": len(at_moment),
        "rows in the restored backup": len(before_replay),
        "rows after the replay": len(after_replay),
        "batch B in the backup": len(set(batch_b) & before_replay),
        "missing after replay": sorted(at_moment - after_replay)[:20],
        "extra after replay": sorted(after_replay - at_moment)[:20],
        "restore": restored.strip()[-500:],
        "binlogs": fetched.strip()[-500:],
        "jobs": jobs,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    EVIDENCE[f"{stack} point-in-time restore"] = result
    for name, seconds in timings.items():
        TIMINGS[f"{stack} point-in-time restore: {name}"] = seconds
    return result
