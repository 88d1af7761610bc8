"""A cached Debian root of the release the stack's image names, the way a fresh Linode boots it.

What the root holds (decided here, documented in tests/system/README.md):

- the base system of the image: `debootstrap --variant=minbase` plus systemd, cloud-init,
  openssh-server, sudo and the few tools Linode's Debian image ships (BASE_PACKAGES);
- the packages the user data asks for, preinstalled from a local flat apt repository inside the
  root (/srv/platform-infra-apt, the release's packages and their dependencies, recommends
  included as cloud-init's `apt-get install` takes them). On a VM cloud-init installs them in its
  final stage, under the user data's policy-rc.d: enabled, not started, after write_files. So the
  units the packages enable are disabled again in the root (nothing starts before cloud-init, as
  on a VM), and `platform-infra-package-units.service` enables them after cloud-final, leaving
  the enabled state a VM has. cloud-init's own `package_update`, `package_upgrade` and `packages:`
  still run against the local repository (they find everything installed). Preinstalling saves
  each of about 20 containers its own dpkg run on two cores, which is what makes the boot-order
  matrix fit CI's budget;
- a stand-in `alloy` package: Grafana Alloy comes from apt.grafana.com, which this sandbox and
  CI cannot reach. The stand-in only provides `alloy.service` (a process that sleeps), so the
  user data's drop-in and `systemctl enable --now alloy` have a unit to act on. It proves
  nothing about the Alloy configuration;
- /etc/cloud/cloud.cfg.d/90-system-layer.cfg: NoCloud as the only data source (the seed replaces
  Linode's metadata service), network configuration left alone (Linode's Network Helper sets
  the addresses; here the test sets them in the VM's network namespace) and the `apt-configure`
  module dropped, because the user data's third-party source needs keyserver.ubuntu.com and
  apt.grafana.com on the internet.

The root is cached under ROOTFS_CACHE keyed by release, the package list and LAYER_VERSION; a
file lock makes parallel workers build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOTFS_CACHE = Path(os.environ.get("PLATFORM_INFRA_ROOTFS_CACHE", "/var/cache/platform-infra"))
MIRROR = os.environ.get("PLATFORM_INFRA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
LAYER_VERSION = "8"  # bump when the way the root is built changes
REPO_IN_ROOT = "/srv/platform-infra-apt"

# What a fresh Linode Debian image has and cloud-init needs (Linode's image is a standard
# install; these are the parts the user data relies on).
BASE_PACKAGES = (
    "systemd-sysv",
    "dbus",
    "cloud-init",
    "openssh-server",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
    "gnupg",
    "tzdata",
    "curl",
    "less",
    "netbase",
    "python3",
    "cron",
    "logrotate",
    # cloud-init's locale module runs update-locale LANG=en_US.UTF-8 (it fails without these).
    "locales",
)
# Not in Debian: installed from the local repository as a stand-in (see the module docstring).
THIRD_PARTY = frozenset({"alloy"})

CLOUD_CFG = """\
# platform-infra system layer: the differences from a Linode VM (tests/system/README.md).
datasource_list: [NoCloud, None]
network:
  config: disabled
"""

ALLOY_SERVICE = """\
[Unit]
Description=Stand-in for Grafana Alloy (platform-infra system layer; apt.grafana.com unreachable)
After=network-online.target

[Service]
ExecStart=/usr/bin/alloy run /etc/alloy/config.alloy
Restart=always

[Install]
WantedBy=multi-user.target
"""

ALLOY_BIN = """\
#!/bin/sh
# Stand-in for Grafana Alloy: the system layer cannot download the real package.
[ "$1" = run ] && [ -r "$2" ] || { echo "alloy stand-in: usage: alloy run CONFIG" >&2; exit 2; }
exec sleep infinity
"""


# The kernel is the host's: a container cannot set sysctls that are not per namespace, and
# `sysctl --system` (Debian's own defaults, and user data that adds /etc/sysctl.d files) fails with
# "permission denied". Early in boot, each such key gets a container-local file over it that
# starts with the host's value, so writes succeed and tests can read what the VM asked for.
SHIMMED_SYSCTLS = (
    "kernel/pid_max",
    # Debian 13's systemd ships /usr/lib/sysctl.d/10-coredump-debian.conf (kernel.core_pattern=core).
    "kernel/core_pattern",
    "vm/overcommit_memory",
    "fs/protected_fifos",
    "fs/protected_hardlinks",
    "fs/protected_regular",
    "fs/protected_symlinks",
)
SYSCTL_SHIM_SERVICE = """\
[Unit]
Description=platform-infra system layer: container-local files over host-wide sysctls
DefaultDependencies=no
Before=systemd-sysctl.service sysinit.target
ConditionVirtualization=container

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/platform-infra-sysctl-shim

[Install]
WantedBy=sysinit.target
"""
SYSCTL_SHIM = (
    "#!/bin/sh\n"
    "# platform-infra system layer (tests/system/rootfs.py): see SHIMMED_SYSCTLS.\n"
    "set -e\n"
    "mkdir -p /run/sysctl-shim\n"
    "for key in " + " ".join(SHIMMED_SYSCTLS) + "; do\n"
    '  file=/run/sysctl-shim/$(echo "$key" | tr / .)\n'
    '  cat "/proc/sys/$key" > "$file"\n'
    '  mount --bind "$file" "/proc/sys/$key"\n'
    "done\n"
)


def _run(*cmd: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def _chroot(root: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(["chroot", str(root), *cmd], check=True, text=True, capture_output=True, env=env)


def cache_key(release: str, packages: Iterable[str]) -> str:
    # The files the root is given are part of the key: two branches that both bump LAYER_VERSION
    # for different changes would otherwise share (and mix up) one cached root.
    built_in = [CLOUD_CFG, ALLOY_SERVICE, ALLOY_BIN, SYSCTL_SHIM_SERVICE, SYSCTL_SHIM, PACKAGE_UNITS_SERVICE]
    text = "\n".join(
        [LAYER_VERSION, release, MIRROR, *sorted(BASE_PACKAGES), "--", *sorted(set(packages)), "--", *built_in]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_alloy_standin(work: Path) -> Path:
    pkg = work / "alloy-standin"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "usr/bin").mkdir(parents=True)
    (pkg / "lib/systemd/system").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text(
        "Package: alloy\nVersion: 0~platform-infra-standin\nArchitecture: all\n"
        "Maintainer: platform-infra <ops@example.com>\n"
        "Description: stand-in for Grafana Alloy in the platform-infra system layer\n"
    )
    (pkg / "usr/bin/alloy").write_text(ALLOY_BIN)
    (pkg / "usr/bin/alloy").chmod(0o755)
    (pkg / "lib/systemd/system/alloy.service").write_text(ALLOY_SERVICE)
    deb = work / "alloy_0~platform-infra-standin_all.deb"
    _run("dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb))
    return deb


PACKAGE_UNITS_FILE = "/etc/platform-infra-system/package-units"
PACKAGE_UNITS_SERVICE = """\
[Unit]
Description=platform-infra system layer: enable what the role packages enable, as cloud-init's install does
After=cloud-final.service
Wants=cloud-final.service
ConditionPathExists=/etc/platform-infra-system/package-units

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'xargs -r systemctl enable < /etc/platform-infra-system/package-units'

[Install]
# cloud-final runs after multi-user.target; cloud-init.target comes after both.
WantedBy=cloud-init.target
"""


def _enabled_unit_files(root: Path) -> set[str]:
    """Units enabled in the root: unit files, and SysV init scripts with a start link (openipmi)."""
    out = _chroot(root, "systemctl", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager").stdout
    units = {line.split()[0] for line in out.splitlines() if line.strip()}
    units |= {f"{link.name[3:]}.service" for link in root.glob("etc/rc[2-5].d/S[0-9][0-9]*")}
    return units


def _preinstall(target: Path, packages: list[str]) -> None:
    """Install the user data's packages as cloud-init would, but leave nothing to start at boot."""
    before = _enabled_unit_files(target)
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    try:
        _chroot(target, "apt-get", "install", "-y", "-qq", *packages)
    finally:
        policy.unlink()
    units = sorted(_enabled_unit_files(target) - before)
    if units:
        _chroot(target, "systemctl", "disable", *units)
    listing = target / PACKAGE_UNITS_FILE.lstrip("/")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{unit}\n" for unit in units))
    (target / "etc/systemd/system/platform-infra-package-units.service").write_text(PACKAGE_UNITS_SERVICE)
    _chroot(target, "systemctl", "enable", "platform-infra-package-units.service")


def _build(target: Path, release: str, packages: list[str]) -> None:
    debian = sorted(p for p in set(packages) if p not in THIRD_PARTY)
    # debootstrap's own resolver does not follow virtual packages (cloud-init needs
    # python3-cffi-backend-api-*), so it lays down minbase and apt installs the image's packages.
    _run("debootstrap", "--variant=minbase", release, str(target), MIRROR)
    _chroot(target, "apt-get", "update", "-qq")
    _chroot(target, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *BASE_PACKAGES)
    (target / "etc/locale.gen").write_text("en_US.UTF-8 UTF-8\n")
    _chroot(target, "locale-gen")
    _chroot(target, "apt-get", "clean")
    # The role packages and their dependencies, into a local repository (cloud-init's `packages:`
    # resolves against it at boot) and preinstalled from it.
    _chroot(target, "apt-get", "install", "-y", "-qq", "--download-only", *debian)
    repo = target / REPO_IN_ROOT.lstrip("/")
    repo.mkdir(parents=True)
    for deb in (target / "var/cache/apt/archives").glob("*.deb"):
        shutil.move(str(deb), repo / deb.name)
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(_build_alloy_standin(Path(work)), repo)
    index = _run("dpkg-scanpackages", "--multiversion", ".", "/dev/null", cwd=repo).stdout
    (repo / "Packages").write_text(index)
    (target / "etc/apt/sources.list").write_text(f"deb [trusted=yes] file:{REPO_IN_ROOT} ./\n")
    for extra in (target / "etc/apt/sources.list.d").glob("*"):
        extra.unlink()
    _chroot(target, "apt-get", "update", "-qq")
    _preinstall(target, sorted(set(packages)))
    _chroot(target, "apt-get", "clean")
    # cloud-init: NoCloud only, network left to the host (as Linode's Network Helper does), and no
    # apt-configure (its only job here would be the unreachable third-party source).
    modules = _chroot(
        target,
        "python3",
        "-c",
        "import yaml;print('\\n'.join(m if isinstance(m, str) else m[0] for m in "
        "yaml.safe_load(open('/etc/cloud/cloud.cfg'))['cloud_config_modules']))",
    ).stdout.split()
    kept = [m for m in modules if m.replace("-", "_") != "apt_configure"]
    cfg = CLOUD_CFG + "cloud_config_modules:\n" + "".join(f"  - {m}\n" for m in kept)
    (target / "etc/cloud/cloud.cfg.d/90-system-layer.cfg").write_text(cfg)
    # An image: no machine id, no host keys (cloud-init makes them), no hostname of the builder.
    (target / "etc/machine-id").write_text("")
    for key in (target / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (target / "etc/hostname").write_text("localhost\n")
    shim = target / "usr/local/sbin/platform-infra-sysctl-shim"
    shim.write_text(SYSCTL_SHIM)
    shim.chmod(0o755)
    (target / "etc/systemd/system/platform-infra-sysctl-shim.service").write_text(SYSCTL_SHIM_SERVICE)
    _chroot(target, "systemctl", "enable", "platform-infra-sysctl-shim.service")
    # The console getty only adds noise to a container that nobody logs into on its console.
    _chroot(target, "systemctl", "mask", "console-getty.service")


def debian_root(release: str, packages: Iterable[str]) -> Path:
    """The cached root for `release` with `packages` in its local repository (built once)."""
    packages = sorted(set(packages))
    key = cache_key(release, packages)
    target = ROOTFS_CACHE / f"rootfs-{release}-{key}"
    with _lock(ROOTFS_CACHE / f".rootfs-{release}-{key}.lock"):
        if (target / ".platform-infra-complete").exists():
            return target
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        started = time.monotonic()
        _build(partial, release, packages)
        (partial / ".platform-infra-complete").write_text(
            f"release={release}\npackages={' '.join(packages)}\nseconds={time.monotonic() - started:.0f}\n"
        )
        partial.rename(target)
    return target
