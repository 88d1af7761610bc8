"""The system layer needs root, systemd-nspawn, debootstrap, nftables and overlayfs.

Locally a missing tool skips the layer; in CI (CI=true) it fails, like the integration tests.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.checks import EVIDENCE, TIMINGS
from tests.system.machine import RUN_DIR

TOOLS = ("systemd-nspawn", "debootstrap", "nft", "ip", "nsenter", "dpkg-scanpackages", "chroot")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session", autouse=True)
def system_layer_ready() -> Iterator[None]:
    problems = [f"{tool} is not installed" for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("the system layer needs root (network namespaces, overlay mounts, nspawn)")
    if problems:
        message = "; ".join(problems) + " (make system-packages, run as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    raise_inotify_limits()
    yield
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (RUN_DIR / f"timings-{worker}.json").write_text(json.dumps(TIMINGS, indent=2, sort_keys=True))
    (RUN_DIR / f"evidence-{worker}.json").write_text(json.dumps(EVIDENCE, indent=2, sort_keys=True, default=str))


# Every container's systemd and journald hold inotify instances of the host's root user; Debian's
# default of 128 runs out at about 15 containers ("Failed to enter waiting state: Too many open
# files" on .path units). A VM has its own kernel, so this is a host limit, not the VM's.
INOTIFY_LIMITS = {"max_user_instances": 4096, "max_user_watches": 1048576}


def raise_inotify_limits() -> None:
    for key, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys/fs/inotify") / key
        if int(path.read_text()) < wanted:
            path.write_text(str(wanted))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("system layer timings (seconds)")
        for name, seconds in sorted(TIMINGS.items()):
            terminalreporter.write_line(f"{seconds:8.1f}  {name}")
