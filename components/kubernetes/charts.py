"""The Helm chart archives the program installs: vendored in vendor/charts/, checksummed.

Every `helm.v3.Release` installs from a local archive (`chart=<path>`, no repository), so what
the tests render with `helm template` is byte for byte what `pulumi up` installs, and no chart
repository is needed at deploy time. The path handed to the provider is relative to the project
root: Pulumi runs the program and its resource providers there, and a relative path keeps the
release's inputs identical on every machine (an absolute path would show a diff per checkout).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

VENDOR_DIRECTORY = "vendor/charts"


def project_root() -> Path:
    """The directory holding Pulumi.yaml (found upwards from this file, wherever it moves)."""
    for directory in Path(__file__).resolve().parents:
        if (directory / "Pulumi.yaml").is_file():
            return directory
    raise FileNotFoundError("Pulumi.yaml not found above components/")


@cache
def _checksums() -> dict[str, str]:
    sums = project_root() / VENDOR_DIRECTORY / "SHA256SUMS"
    result = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            result[name.lstrip("*")] = digest
    return result


def archive_name(chart: str, version: str) -> str:
    """The file name `helm package`/`helm pull` give a chart version: <chart>-<version>.tgz."""
    return f"{chart}-{version}.tgz"


@cache
def vendored_chart(chart: str, version: str) -> str:
    """Path (relative to the project root) of the vendored archive of `chart` at `version`.

    Refuses a version that is not vendored or an archive that does not match SHA256SUMS, before
    any resource is registered: `make chart-refresh CHART=... VERSION=...` vendors a new one.
    """
    name = archive_name(chart, version)
    path = project_root() / VENDOR_DIRECTORY / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{VENDOR_DIRECTORY}/{name}: chart {chart} {version} is not vendored; "
            f"run `make chart-refresh CHART={chart} VERSION={version}` where a network exists"
        )
    expected = _checksums().get(name)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if expected != actual:
        raise ValueError(f"{VENDOR_DIRECTORY}/{name}: SHA-256 {actual} is not the one in SHA256SUMS ({expected})")
    return f"{VENDOR_DIRECTORY}/{name}"
