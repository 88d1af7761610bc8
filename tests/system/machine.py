"""VMs as systemd-nspawn system containers on a private bridge inside test-made network namespaces.

Topology per test network (`Lan`):

- a hub namespace `<prefix>-hub` holding the bridge `br0` (the VPC, plus Linode's private
  network when a VM asks for one). Nothing in it has a route off the machine: the namespaces are
  new and only ever get on-link routes for the VPC's own subnets;
- per VM a namespace `<prefix>-<n>` with a veth `eth1` in the bridge, the VM's planned VPC
  address on it (and its private-network address if it has one), and the Cloud Firewall as an
  nftables table in that namespace's input hook: policy DROP, one accept per inbound rule (the
  Cloud Firewall is stateful, so replies to the VM's own connections pass);
- a client namespace `<prefix>-client` that stands for "the rest of the world" the firewall
  sees: an address in the app subnet (or Linode's private network), the admins' address, and
  any source address a test needs.

The container joins its VM's namespace with `--network-namespace-path`, so it sees exactly one
interface with the VPC address. The host is not systemd-managed here, so nspawn runs with
`--register=no --keep-unit` (without them it asks the system bus for a scope and stops with
"Failed to open system bus: No such file or directory").
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.system.program import InboundRule, Vm

RUN_DIR = Path(os.environ.get("PLATFORM_INFRA_SYSTEM_RUN", "/var/tmp/platform-infra-system"))


def sh(*cmd: str, check: bool = True, timeout: float | None = 120, input: str | None = None) -> str:
    result = subprocess.run(list(cmd), text=True, capture_output=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- one cgroup subtree per container ---------------------------------------------------------
# nspawn builds the container's cgroups (`supervisor`, `payload`) under the cgroup it is started
# in. Started from the same cgroup, every container got the same `/payload`, so their systemds
# managed one shared `/payload/system.slice/<unit>.service` per unit name: a unit whose main
# process died by signal waited in stop-sigterm for an "empty" its namesakes in other containers
# never gave, and one container removing a unit's cgroup while another spawned into it failed
# that start ("Failed to spawn executor: No such file or directory"). Each container now starts
# in its own `platform-infra-system/<machine>` in every hierarchy systemd uses, as each VM has
# its own kernel's. On a cgroup v1 host the cgroup2 hierarchy (which the containers' systemd
# tracks processes in) is mounted once for the purpose.
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_MOUNT = Path("/run/platform-infra-system-cgroup2")
CGROUP_BASE = "platform-infra-system"


def _is_cgroup2(path: Path) -> bool:
    return sh("stat", "-f", "-c", "%T", str(path), check=False).strip() == "cgroup2fs"


@functools.cache
def cgroup_hierarchies() -> tuple[Path, ...]:
    """The roots of the hierarchies a container's systemd manages (cgroup2, and v1 name=systemd)."""
    if _is_cgroup2(CGROUP_ROOT):
        return (CGROUP_ROOT,)
    roots = (CGROUP_ROOT / "systemd",) if (CGROUP_ROOT / "systemd" / "cgroup.procs").exists() else ()
    unified = CGROUP_ROOT / "unified"
    if unified.exists() and _is_cgroup2(unified):
        return (unified, *roots)
    if not _is_cgroup2(CGROUP2_MOUNT):
        CGROUP2_MOUNT.mkdir(parents=True, exist_ok=True)
        sh("mount", "-t", "cgroup2", "cgroup2", str(CGROUP2_MOUNT))
    return (CGROUP2_MOUNT, *roots)


def private_cgroups(machine: str) -> list[Path]:
    """Fresh, empty cgroups for one container (one per hierarchy)."""
    groups = []
    for root in cgroup_hierarchies():
        group = root / CGROUP_BASE / machine
        remove_cgroup(group)
        group.mkdir(parents=True, exist_ok=True)
        groups.append(group)
    return groups


def remove_cgroup(group: Path) -> None:
    """rmdir a cgroup and what the container's systemd left below it (empty once it stopped)."""
    if not group.is_dir():
        return
    for child in sorted((d for d in group.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def ns(name: str, *cmd: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", name, *cmd, check=check)


# --- the Cloud Firewall as nftables -------------------------------------------------------------


def _ports(ports: str | None) -> str:
    if not ports:
        return ""
    items = [p.strip() for p in ports.split(",") if p.strip()]
    return " dport { " + ", ".join(items) + " }"


def firewall_ruleset(rules: Sequence[InboundRule], policy: str = "DROP") -> str:
    """The inbound rules of the VM's Cloud Firewall(s), as an nftables table for its namespace."""
    lines = [
        "table inet linode_cloud_firewall {",
        # Every dropped (source, port): the evidence when a port the firewall drops breaks something.
        "  set dropped_tcp {",
        "    type ipv4_addr . inet_service; flags dynamic, timeout; timeout 1h;",
        "  }",
        "  chain inbound {",
        f"    type filter hook input priority 0; policy {policy.lower()};",
        '    iifname "lo" accept',
        "    ct state established,related accept",
    ]
    for rule in rules:
        if rule.action.upper() != "ACCEPT" or not rule.ipv4:
            continue  # IPv6-only rules: the layer's network is IPv4 only
        sources = "ip saddr { " + ", ".join(rule.ipv4) + " }"
        protocol = rule.protocol.upper()
        if protocol == "ICMP":
            match = "ip protocol icmp"
        elif protocol in ("TCP", "UDP"):
            match = protocol.lower() + _ports(rule.ports) if rule.ports else f"meta l4proto {protocol.lower()}"
        else:
            raise ValueError(f"protocol {rule.protocol} of rule {rule.label}")
        lines.append(f'    {sources} {match} accept comment "{rule.label}"')
    lines += [
        "    meta l4proto tcp update @dropped_tcp { ip saddr . tcp dport }",
        '    counter comment "dropped-by-cloud-firewall"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def dropped_packets(netns: str) -> int:
    text = ns(netns, "nft", "-j", "list", "table", "inet", "linode_cloud_firewall")
    for item in json.loads(text)["nftables"]:
        rule = item.get("rule")
        if rule and rule.get("comment") == "dropped-by-cloud-firewall":
            for expr in rule["expr"]:
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
    return 0


def dropped_tcp(netns: str) -> set[tuple[str, int]]:
    """(source address, destination port) of every TCP packet the firewall dropped."""
    text = ns(netns, "nft", "-j", "list", "set", "inet", "linode_cloud_firewall", "dropped_tcp")
    found: set[tuple[str, int]] = set()
    for item in json.loads(text)["nftables"]:
        for element in (item.get("set") or {}).get("elem") or []:
            value = element.get("elem", {}).get("val", element) if isinstance(element, dict) else element
            concat = value.get("concat") if isinstance(value, dict) else None
            if concat:
                found.add((str(concat[0]), int(concat[1])))
    return found


# --- the network -----------------------------------------------------------------------------


@dataclass
class Lan:
    """The hub (bridge) and the client namespace of one test network."""

    prefix: str
    routes: list[str]  # on-link CIDRs: the VPC subnets (and the private network)
    namespaces: list[str] = field(default_factory=list)
    _veths: int = 0

    @property
    def hub(self) -> str:
        return f"{self.prefix}-hub"

    @property
    def client(self) -> str:
        return f"{self.prefix}-client"

    def _add_ns(self, name: str) -> None:
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def up(self, client_addresses: Sequence[str]) -> None:
        self._add_ns(self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        self._add_ns(self.client)
        self.attach(self.client, "eth0", [f"{a}/32" for a in client_addresses])

    def attach(self, netns: str, ifname: str, addresses: Sequence[str]) -> None:
        self._veths += 1
        hub_end = f"p{self._veths}"
        sh("ip", "link", "add", hub_end, "netns", self.hub, "type", "veth", "peer", ifname, "netns", netns)
        sh("ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
        for address in addresses:
            sh("ip", "-n", netns, "addr", "add", address, "dev", ifname)
        sh("ip", "-n", netns, "link", "set", ifname, "up")
        for cidr in self.routes:
            sh("ip", "-n", netns, "route", "replace", cidr, "dev", ifname, check=False)

    def down(self) -> None:
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


# --- the containers ------------------------------------------------------------------------------


@dataclass
class Container:
    vm: Vm
    netns: str
    root: Path  # the cached, read-only lower layer
    private_address: str | None = None
    # What a service on the layer's network (tests/system/object_storage.py) needs each VM to
    # know before boot: name -> address lines appended to /etc/hosts, and CA certificates
    # (file name -> PEM) trusted system-wide through update-ca-certificates.
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    extra_ca: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    cgroups: list[Path] = field(default_factory=list)
    workdir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = RUN_DIR / self.netns

    @property
    def merged(self) -> Path:
        return self.workdir / "merged"

    @property
    def machine(self) -> str:
        return self.netns

    def prepare(self) -> None:
        """Overlay of the cached root, with the VM's user data as the NoCloud seed."""
        with contextlib.suppress(Exception):
            self.cleanup()
        for sub in ("upper", "work", "merged"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        sh(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={self.root},upperdir={self.workdir / 'upper'},workdir={self.workdir / 'work'}",
            str(self.merged),
        )
        seed = self.merged / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True, exist_ok=True)
        (seed / "user-data").write_text(self.vm.user_data)  # byte for byte what Linode receives
        (seed / "meta-data").write_text(f"instance-id: {self.vm.label}\nlocal-hostname: {self.vm.label}\n")
        if self.extra_hosts:
            hosts = self.merged / "etc/hosts"
            lines = "".join(f"{address} {name}\n" for name, address in self.extra_hosts.items())
            hosts.write_text(hosts.read_text() + "# tests/system: services on the layer's network\n" + lines)
        if self.extra_ca:
            local = self.merged / "usr/local/share/ca-certificates"
            local.mkdir(parents=True, exist_ok=True)
            for name, pem in self.extra_ca.items():
                (local / name).write_text(pem)
            sh("chroot", str(self.merged), "update-ca-certificates")

    def start(self) -> None:
        self.started_at = time.monotonic()
        log = (self.workdir / "console.log").open("wb")
        self.cgroups = private_cgroups(self.machine)
        # The shell joins the container's own cgroups, then becomes nspawn (same pid).
        join = "; ".join(f"echo $$ > {shlex.quote(str(group / 'cgroup.procs'))}" for group in self.cgroups)
        self.process = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                f'{join}; exec "$@"',
                "nspawn",
                "systemd-nspawn",
                "--boot",
                "--quiet",
                "--register=no",
                "--keep-unit",
                f"--machine={self.machine}",
                f"--directory={self.merged}",
                f"--network-namespace-path=/run/netns/{self.netns}",
                "--console=read-only",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def leader(self) -> int:
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = sh("pgrep", "-P", str(self.process.pid), check=False).split()
            if children:
                return int(children[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.machine}: nspawn exited: {self.console()[-2000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.machine}: no container leader")

    def run(self, command: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A shell command inside the container (all its namespaces), as root."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.leader()), "-a", "--", "/bin/sh", "-c", command],
            text=True,
            capture_output=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.machine}: {command} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def finished(self) -> bool:
        """Has cloud-init finished (done or error)? Raises if the container stopped."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.machine}: container stopped: {self.console()[-3000:]}")
        try:
            return self.run("test -e /run/cloud-init/result.json", check=False, timeout=20).returncode == 0
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            return False

    def setup_started(self) -> bool:
        """Is a role setup script of the user data running (or cloud-init already finished)?"""
        probe = self.run(
            "pgrep -f '/usr/local/lib/platform/.*-setup.sh' >/dev/null || test -e /run/cloud-init/result.json",
            check=False,
        )
        return probe.returncode == 0

    def wait_for_cloud_init(self, timeout: float = 900) -> float:
        """Seconds from container start until cloud-init finished (done or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished():
                return time.monotonic() - self.started_at
            time.sleep(2)
        raise TimeoutError(f"{self.machine}: cloud-init not finished after {timeout}s")

    def console(self) -> str:
        path = self.workdir / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def poweroff(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.leader(), signal.SIGRTMIN + 4)  # systemd: poweroff

    def stop(self, timeout: float = 60) -> None:
        """Power off (as `linode shutdown` would): systemd stops the services, the container exits."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(Exception):
            os.kill(self.leader(), signal.SIGRTMIN + 4)  # systemd: poweroff
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        for group in self.cgroups:
            remove_cgroup(group)
        sh("umount", "-l", str(self.merged), check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def vpc_routes(vms: Sequence[Vm]) -> list[str]:
    return sorted({str(ipaddress.ip_interface(f"{v.address}/{v.prefix}").network) for v in vms})
