"""What the system layer asserts about a booted VM, and the boot driver the tests share."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from tests.system.machine import Container, Lan, dropped_tcp, firewall_ruleset, sh
from tests.system.program import STACKS, Vm, stack_vms
from tests.system.rootfs import debian_root

# Timings measured by this run (printed at the end of the session and written to RUN_DIR).
TIMINGS: dict[str, float] = {}
# Evidence behind failures and xfails (dropped peer traffic, ...), written next to the timings.
EVIDENCE: dict[str, object] = {}


def enabled_units(user_data: str) -> list[str]:
    """Units the user data enables or (re)starts in runcmd: each must be active after boot."""
    doc = yaml.safe_load(user_data)
    units: list[str] = []
    for command in doc.get("runcmd") or []:
        if not isinstance(command, list) or not command or command[0] != "systemctl":
            continue
        verb, *rest = command[1:]
        if verb in ("enable", "start", "restart"):
            if verb == "enable" and "--now" not in rest:
                continue  # enabled for the next boot only
            units += [u for u in rest if not u.startswith("-")]
    for script in _setup_scripts(doc):
        for _verb, unit in re.findall(r"^\s*systemctl (start|restart) ([\w@.-]+)\s*$", script, re.M):
            units.append(unit)
    return list(dict.fromkeys(units))


def _setup_scripts(doc: dict[str, Any]) -> list[str]:
    return [
        f["content"]
        for f in doc.get("write_files") or []
        if str(f.get("path", "")).startswith("/usr/local/lib/platform/") and f["path"].endswith("-setup.sh")
    ]


@dataclass
class CloudInitReport:
    status: str
    errors: list[str]
    warnings: list[str]
    long: str


def cloud_init_report(container: Container) -> CloudInitReport:
    long = container.run("cloud-init status --long", check=False).stdout
    status = re.search(r"^status: (\S+)", long, re.M)
    result = json.loads(container.run("cat /run/cloud-init/result.json").stdout)
    errors = list(result.get("v1", {}).get("errors", []))
    state = json.loads(container.run("cat /run/cloud-init/status.json").stdout)
    for stage, info in (state.get("v1") or {}).items():
        if isinstance(info, dict):
            errors += [f"{stage}: {e}" for e in info.get("errors") or []]
    log = container.run("cat /var/log/cloud-init.log", check=False).stdout
    warnings = [line for line in log.splitlines() if " - WARNING" in line or "[WARNING]" in line]
    output = container.run("cat /var/log/cloud-init-output.log", check=False).stdout
    failed_scripts = [line for line in output.splitlines() if "Failed to run module" in line]
    return CloudInitReport(status.group(1) if status else "unknown", errors + failed_scripts, warnings, long)


def inactive_units(container: Container, units: Sequence[str]) -> dict[str, str]:
    states = {}
    for unit in units:
        state = container.run(f"systemctl is-active {unit}", check=False).stdout.strip()
        if state != "active":
            states[unit] = state
    return states


def failed_units(container: Container) -> dict[str, str]:
    """Failed units with the last lines of their journal (the evidence)."""
    out = container.run("systemctl --failed --no-legend --plain", check=False).stdout
    failed: dict[str, str] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        unit = line.split()[0]
        journal = container.run(f"journalctl -u {unit} --no-pager -n 12 -o cat", check=False).stdout
        state = container.run(f"systemctl show -p Result -p ExecMainStatus {unit}", check=False).stdout
        failed[unit] = (journal[-1500:] + "\n" + state).strip()
    return failed


_CONNECT = """
import socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[4]))
if sys.argv[1]:
    s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
except OSError:
    sys.exit(1)
"""


def tcp_open(netns: str, host: str, port: int, timeout: float = 3, source: str = "") -> bool:
    """Does a TCP connection from `netns` (from `source`, if given) to host:port complete?"""
    code = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", _CONNECT, source, host, str(port), str(timeout)],
        capture_output=True,
        timeout=timeout + 10,
    ).returncode
    return code == 0


def scrape(netns: str, host: str, port: int, source: str, path: str = "/metrics") -> str:
    """An exporter's metrics as Prometheus in the app subnet would fetch them."""
    return sh(
        "ip",
        "netns",
        "exec",
        netns,
        "curl",
        "-sS",
        "--max-time",
        "10",
        "--interface",
        source,
        f"http://{host}:{port}{path}",
    )


# --- the boot driver -----------------------------------------------------------------------------


def _first_host(cidr: str, offset: int = 100) -> str:
    network = ipaddress.ip_network(cidr)
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network.network_address + min(offset, network.num_addresses - 2))


def client_sources(vms: Sequence[Vm]) -> dict[str, str]:
    """Addresses the client namespace takes: one per kind of source the firewalls admit."""
    sources: dict[str, str] = {}
    for vm in vms:
        for rule in vm.inbound:
            for cidr in rule.ipv4:
                if rule.label.endswith("-from-app") or rule.label.endswith("-metrics"):
                    sources.setdefault("app", _first_host(cidr))
                elif rule.label.endswith("-from-admins"):
                    sources.setdefault("admin", _first_host(cidr, 10))
    return sources


def _external_routes(vms: Sequence[Vm]) -> list[str]:
    cidrs = {f"{v.address}/{v.prefix}" for v in vms}
    cidrs = {str(ipaddress.ip_interface(c).network) for c in cidrs}
    for vm in vms:
        if vm.private_address:
            cidrs.add("192.168.128.0/17")
        for rule in vm.inbound:
            cidrs.update(rule.ipv4)
    # Only networks: a rule that names a VM's own /32 is covered by its subnet already.
    nets = sorted({ipaddress.ip_network(c) for c in cidrs}, key=lambda n: n.prefixlen)
    kept: list[ipaddress.IPv4Network] = []
    for net in nets:
        if not any(net.subnet_of(k) for k in kept):  # type: ignore[arg-type]
            kept.append(net)  # type: ignore[arg-type]
    return [str(n) for n in kept]


class LanService(Protocol):
    """Something on the fleet's network besides the VMs (the local S3 of object_storage.py).

    `configure` runs before the namespaces exist: it adds on-link routes (`group.lan.routes`),
    names (`group.extra_hosts`) and CAs (`group.extra_ca`) the VMs get before boot. `start` runs
    once the hub exists (attach a namespace with `group.lan`), `stop` when the fleet goes down.
    """

    def configure(self, group: Fleet) -> None: ...

    def start(self, group: Fleet) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Fleet:
    """Some VMs of one stack, booted as containers on one private network."""

    name: str
    vms: list[Vm]
    root: Path
    # Written into every VM's root before boot (machine.Container.prepare): name -> address for
    # /etc/hosts, file name -> PEM for /usr/local/share/ca-certificates.
    extra_hosts: dict[str, str] = field(default_factory=dict)
    extra_ca: dict[str, str] = field(default_factory=dict)
    services: list[LanService] = field(default_factory=list)
    lan: Lan = field(init=False)
    containers: dict[str, Container] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cloud_init_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lan = Lan(prefix=self.name, routes=_external_routes(self.vms))

    def up(self) -> None:
        self.sources = client_sources(self.vms)
        self.lan.up(list(self.sources.values()))
        for index, vm in enumerate(self.vms):
            netns = f"{self.name}-{index}"
            self.lan._add_ns(netns)
            addresses = [f"{vm.address}/{vm.prefix}"]
            if vm.private_address:
                addresses.append(f"{vm.private_address}/17")
            self.lan.attach(netns, "eth1", addresses)
            sh("ip", "netns", "exec", netns, "nft", "-f", "-", input=firewall_ruleset(vm.inbound, vm.inbound_policy))
            container = Container(
                vm=vm,
                netns=netns,
                root=self.root,
                private_address=vm.private_address,
                extra_hosts=self.extra_hosts,
                extra_ca=self.extra_ca,
            )
            container.prepare()
            self.containers[vm.label] = container

    def start(self, labels: Sequence[str]) -> None:
        for label in labels:
            self.containers[label].start()

    def wait(self, labels: Sequence[str], deadline: float, give_up_after: float = 90) -> dict[str, float | None]:
        """Seconds from start to cloud-init finished per VM; None if not by `deadline` (monotonic)
        or if its peers' traffic has been dropped by its cluster's firewalls for `give_up_after`
        seconds (the evidence is then in `peer_drops`, no need to sit out a 15-minute retry loop)."""
        pending = list(labels)
        first_drop: dict[str, float] = {}
        while pending and time.monotonic() < deadline:
            for label in list(pending):
                container = self.containers[label]
                if container.finished():
                    seconds = time.monotonic() - container.started_at
                    self.cloud_init_seconds[label] = seconds
                    TIMINGS[f"{self.name}: {label} start -> cloud-init finished"] = seconds
                    pending.remove(label)
                elif self.peer_drops(label):
                    first_drop.setdefault(label, time.monotonic())
                    if time.monotonic() - first_drop[label] > give_up_after:
                        pending.remove(label)
            time.sleep(3)
        return {label: self.cloud_init_seconds.get(label) for label in labels}

    def boot(self, labels: Sequence[str], timeout: float = 900) -> dict[str, float | None]:
        """Start these VMs at once and wait for their cloud-init."""
        self.start(labels)
        return self.wait(labels, time.monotonic() + timeout)

    def cluster_of(self, label: str) -> list[Vm]:
        role = self.containers[label].vm.role
        return [c.vm for c in self.containers.values() if c.vm.role == role]

    def peer_drops(self, label: str) -> set[tuple[str, str, int]]:
        """(peer, this VM, port) of traffic between this VM's cluster peers its firewall dropped."""
        peers = {vm.address: vm.label for vm in self.cluster_of(label)}
        for vm in self.cluster_of(label):
            if vm.private_address:
                peers[vm.private_address] = vm.label
        container = self.containers[label]
        return {(peers[source], label, port) for source, port in dropped_tcp(container.netns) if source in peers}

    def down(self) -> None:
        for container in self.containers.values():  # power them all off at once, then wait
            with contextlib.suppress(Exception):
                container.poweroff()
        for container in self.containers.values():
            with contextlib.suppress(Exception):
                container.cleanup()
        self.lan.down()

    def __getitem__(self, label: str) -> Container:
        return self.containers[label]


def packages_of_release(release: str) -> set[str]:
    """Every package any stack's user data asks for on this release: one cached root for all."""
    return {
        package
        for stack in STACKS
        for vm in stack_vms(stack).values()
        if vm.release == release
        for package in yaml.safe_load(vm.user_data).get("packages") or []
    }


@contextlib.contextmanager
def fleet(name: str, vms: Sequence[Vm], services: Sequence[LanService] = ()) -> Iterator[Fleet]:
    releases = {vm.release for vm in vms}
    assert len(releases) == 1, releases
    release = releases.pop()
    started = time.monotonic()
    root = debian_root(release, packages_of_release(release))
    TIMINGS.setdefault("root (build or cache hit)", time.monotonic() - started)
    group = Fleet(name=name, vms=list(vms), root=root, services=list(services))
    for service in services:
        service.configure(group)
    try:
        group.up()
        for service in services:
            service.start(group)
        yield group
    finally:
        for service in services:
            with contextlib.suppress(Exception):
                service.stop()
        group.down()
