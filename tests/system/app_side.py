"""The application's side of a booted stack: the client namespace set up as an app pod sees the data tier.

- names: the namespace's hosts file (`/etc/netns/<client>/hosts`, which `ip netns exec` mounts
  over /etc/hosts) holds the app pods' `hostAliases` exactly as the program emits them, plus any
  in-cluster name a test stands in for (the database proxy's Service);
- source address: connections to the data networks leave from the app address the Cloud
  Firewalls admit (a route `src`), as a pod's traffic does;
- settings: the app Secret's values, handed to `tests.system.app_clients` unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.system.checks import Fleet
from tests.system.machine import RUN_DIR, sh
from tests.system.program import app_host_aliases, app_settings

PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class AppSide:
    fleet: Fleet
    stack: str
    extra_names: dict[str, str] = field(default_factory=dict)  # name -> address
    settings: dict[str, str] = field(init=False)
    workdir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.settings = app_settings(self.stack)
        self.workdir = RUN_DIR / f"{self.fleet.name}-app"
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "ca.crt").write_text(self.settings.get("ca.crt", ""))
        self.write_hosts()
        app = self.fleet.sources["app"]
        for cidr in self.fleet.lan.routes:
            sh("ip", "-n", self.fleet.lan.client, "route", "replace", cidr, "dev", "eth0", "src", app, check=False)

    @property
    def etc(self) -> Path:
        return Path("/etc/netns") / self.fleet.lan.client

    def write_hosts(self) -> None:
        names = {**app_host_aliases(self.stack), **self.extra_names}
        self.etc.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost"] + [f"{address} {name}" for name, address in names.items()]
        (self.etc / "hosts").write_text("\n".join(lines) + "\n")

    def add_name(self, name: str, address: str) -> None:
        self.extra_names[name] = address
        self.write_hosts()

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(PROJECT),
            "PLATFORM_APP_SETTINGS": json.dumps(self.settings),
            "PLATFORM_CA_FILE": str(self.workdir / "ca.crt"),
        }

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.fleet.lan.client, sys.executable, "-m", "tests.system.app_clients", *args]

    def run(self, *args: str, timeout: float = 120) -> Any:
        """Run one app client to completion; its JSON result."""
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, env=self._env(), cwd=PROJECT
        )
        if result.returncode != 0:
            raise RuntimeError(f"app client {args} -> {result.returncode}\n{result.stderr[-3000:]}")
        return json.loads(result.stdout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start an app client in the background (collect it with `collect`)."""
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env(),
            cwd=PROJECT,
        )

    @staticmethod
    def collect(process: subprocess.Popen[str], timeout: float = 180) -> Any:
        stdout, stderr = process.communicate(timeout=timeout)
        if process.returncode != 0:
            raise RuntimeError(f"app client -> {process.returncode}\n{stderr[-3000:]}")
        return json.loads(stdout)

    def background(self, argv: Sequence[str], log: str) -> subprocess.Popen[bytes]:
        """A server the app side runs (the database proxy), in the client namespace."""
        handle = (self.workdir / log).open("wb")
        return subprocess.Popen(
            ["ip", "netns", "exec", self.fleet.lan.client, *argv],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def close(self) -> None:
        shutil.rmtree(self.etc, ignore_errors=True)
