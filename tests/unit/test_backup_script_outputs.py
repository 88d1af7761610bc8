"""What `platform-backup` leaves for node_exporter, as a Debian VM runs it.

Found by the system layer (tests/system, local S3): on the MariaDB backup node only the binlog
job's `platform_backup_last_run_success` reached Prometheus.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

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
