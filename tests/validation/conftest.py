"""One `helm template` per release per test session, shared by the pytest-xdist workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.validation.helm_layer import STACKS, Release, parse_manifests, releases, render

RenderedStack = list[tuple[Release, list[dict]]]


@pytest.fixture(scope="session")
def helm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Workers' base temp directories share a parent per session (pytest-xdist's own recipe).
    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    return root / "helm-template"


@pytest.fixture(scope="session")
def render_stack(helm_cache: Path):  # type: ignore[no-untyped-def]
    """stack -> [(release, rendered objects)]; raises on the first release Helm refuses."""
    done: dict[str, RenderedStack] = {}

    def rendered(stack: str) -> RenderedStack:
        assert stack in STACKS
        if stack not in done:
            done[stack] = [(release, parse_manifests(render(release, helm_cache))) for release in releases(stack)]
        return done[stack]

    return rendered
