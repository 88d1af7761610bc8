"""What `platform-backup` leaves for node_exporter and takes from rabbitmqctl, as a Debian VM runs them.

Both defects were found by the system layer (tests/system, local S3): on the MariaDB backup node
only the binlog job's `platform_backup_last_run_success` reached Prometheus, and the RabbitMQ
definitions job failed on every run.
"""

from __future__ import annotations

import json
import os
import stat
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

import pytest

from tests.unit.test_redis_reachability import backup_module


def config(module: Any, tmp_path: Path) -> Any:
    return module.Config.from_env(
        {
            "PLATFORM_BACKUP_S3_ENDPOINT": "https://eu-central-1.linodeobjects.com",
            "PLATFORM_BACKUP_BUCKET": "bucket",
            "PLATFORM_BACKUP_PREFIX": "staging/rabbitmq",
            "PLATFORM_BACKUP_ACCESS_KEY": "key",
            "PLATFORM_BACKUP_SECRET_KEY": "secret",
            "PLATFORM_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "PLATFORM_BACKUP_TEXTFILE_DIR": str(tmp_path / "textfile"),
        }
    )


def test_every_kind_describes_a_metric_family_with_the_same_help_text(tmp_path: Path) -> None:
    """node_exporter's textfile collector merges the files into one family per metric name and
    drops every sample whose HELP differs from the first file's ("has help ... but should have
    ..."): on the MariaDB backup node (full, incremental, binlog, verify) BackupFailed would only
    ever see the binlog job."""
    module = backup_module()
    cfg = config(module, tmp_path)
    for index, kind in enumerate(sorted(set(module.KINDS.values()))):
        module.write_metrics(cfg, kind, success=index % 2 == 0, duration=1.0, size=10)
    helps: dict[str, set[str]] = defaultdict(set)
    types: dict[str, set[str]] = defaultdict(set)
    files = sorted(cfg.textfile_dir.glob("*.prom"))
    assert len(files) == len(set(module.KINDS.values()))
    for path in files:
        for line in path.read_text().splitlines():
            if line.startswith("# HELP "):
                name, text = line.removeprefix("# HELP ").split(" ", 1)
                helps[name].add(text)
            elif line.startswith("# TYPE "):
                name, kind = line.removeprefix("# TYPE ").split(" ", 1)
                types[name].add(kind)
    assert helps, "the success gauge should be described"
    assert {name: texts for name, texts in helps.items() if len(texts) > 1} == {}
    assert {name: kinds for name, kinds in types.items() if len(kinds) > 1} == {}


# Debian's /usr/sbin/rabbitmqctl runs the CLI as the rabbitmq user (rabbitmq-script-wrapper, su):
# it can write a file only where that user may, never into the root-only state directory.
FAKE_RABBITMQCTL = """#!/bin/sh
[ "$1" = "--quiet" ] || [ "$1" = "-q" ] && shift
[ "$1" = "export_definitions" ] || exit 64
if [ "$2" = "-" ]; then
    printf '%s' '{"rabbit_version": "3.10.8", "vhosts": [{"name": "/"}, {"name": "app"}]}'
    exit 0
fi
directory=$(dirname "$2")
case $(stat -c %a "$directory") in
    *[2367]) printf '{}' > "$2"; exit 0 ;;
esac
echo "Error:" >&2
echo "No permissions to write to file $2 or its parent directory" >&2
exit 65
"""


class FakeStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def upload_stream(self, stream: IO[bytes], key: str) -> tuple[str, int]:
        body = stream.read()
        self.objects[key] = body
        return "sha", len(body)


@pytest.fixture
def rabbitmqctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "rabbitmqctl"
    fake.write_text(FAKE_RABBITMQCTL)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")


@pytest.mark.usefixtures("rabbitmqctl")
def test_rabbitmq_definitions_come_from_rabbitmqctl_s_stdout_not_a_file_in_the_root_only_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = backup_module()
    monkeypatch.setattr(module, "ZSTD", ("cat",))  # the compressor: what is uploaded is the export itself
    cfg = config(module, tmp_path)
    cfg.state_dir.mkdir(mode=0o700)  # as the user data creates it (install -d -m 0700)
    assert stat.S_IMODE(cfg.state_dir.stat().st_mode) == 0o700
    store = FakeStore()
    size = module.rabbitmq_definitions(cfg, store)
    [(key, body)] = store.objects.items()
    assert key.startswith("staging/rabbitmq/rabbitmq/") and key.endswith(".json.zst")
    assert size == len(body)
    assert [v["name"] for v in json.loads(body)["vhosts"]] == ["/", "app"]
    assert not (cfg.state_dir / "rabbitmq-definitions.json").exists()  # the export is not left behind


@pytest.mark.usefixtures("rabbitmqctl")
def test_an_export_that_is_not_json_fails_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = backup_module()
    cfg = config(module, tmp_path)
    monkeypatch.setattr(module, "_run", lambda argv, timeout=600, env=None: "Exporting definitions ...\n")
    with pytest.raises(module.BackupError, match="no JSON"):
        module.rabbitmq_definitions(cfg, FakeStore())


def test_binlog_shipping_waits_for_a_galera_node_that_is_still_joining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in the system layer: a Galera joiner whose IST failed restarted past the timer's first
    run, and every statement but SHOW failed with WSREP not ready, so the unit failed."""
    module = backup_module()
    statements: list[str] = []

    def joining(_config: Any, statement: str) -> str:
        statements.append(statement)
        if statement == "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'":
            return "wsrep_on\tON\n"
        if statement == "SHOW GLOBAL STATUS LIKE 'wsrep_ready'":
            return "wsrep_ready\tOFF\n"
        raise module.BackupError("WSREP has not yet prepared node for application use")

    monkeypatch.setattr(module, "_sql", joining)
    assert module.binlog_ship(config(module, tmp_path), store=None) == 0
    assert statements == ["SHOW GLOBAL VARIABLES LIKE 'wsrep_on'", "SHOW GLOBAL STATUS LIKE 'wsrep_ready'"]


@pytest.mark.parametrize(
    ("wsrep_on", "wsrep_ready"),
    [("ON", "ON"), ("OFF", "OFF"), ("", "")],  # Galera synced; Galera installed but off; no Galera
)
def test_binlog_shipping_goes_on_when_galera_is_ready_or_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wsrep_on: str, wsrep_ready: str
) -> None:
    module = backup_module()
    statements: list[str] = []

    def server(_config: Any, statement: str) -> str:
        statements.append(statement)
        if statement == "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'":
            return f"wsrep_on\t{wsrep_on}\n" if wsrep_on else ""
        if statement == "SHOW GLOBAL STATUS LIKE 'wsrep_ready'":
            return f"wsrep_ready\t{wsrep_ready}\n" if wsrep_ready else ""
        return "NULL"

    monkeypatch.setattr(module, "_sql", server)
    with pytest.raises(module.BackupError, match="binary logging is off"):
        module.binlog_ship(config(module, tmp_path), store=None)
    assert statements[-1] == "SELECT @@log_bin_basename"
