"""The vendored chart archives: the path a release installs, refused when missing or altered."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.kubernetes import charts


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the project's vendor/charts under a fresh root (the caches cleared around it)."""
    (tmp_path / "Pulumi.yaml").write_text("name: platform-infra\n")
    shutil.copytree(charts.project_root() / charts.VENDOR_DIRECTORY, tmp_path / charts.VENDOR_DIRECTORY)
    monkeypatch.setattr(charts, "project_root", lambda: tmp_path)
    charts.vendored_chart.cache_clear()
    charts._checksums.cache_clear()
    yield tmp_path
    charts.vendored_chart.cache_clear()
    charts._checksums.cache_clear()


def test_a_release_gets_the_archive_path_relative_to_the_project_root() -> None:
    assert charts.vendored_chart("traefik", "40.3.0") == "vendor/charts/traefik-40.3.0.tgz"
    assert (charts.project_root() / charts.vendored_chart("cert-manager", "v1.19.1")).is_file()


def test_a_version_that_is_not_vendored_stops_the_program_with_the_command_that_vendors_it(project: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"make chart-refresh CHART=traefik VERSION=41\.0\.0"):
        charts.vendored_chart("traefik", "41.0.0")


def test_an_archive_that_does_not_match_its_checksum_is_refused(project: Path) -> None:
    archive = project / charts.VENDOR_DIRECTORY / "loki-6.29.0.tgz"
    archive.write_bytes(archive.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="not the one in SHA256SUMS"):
        charts.vendored_chart("loki", "6.29.0")
