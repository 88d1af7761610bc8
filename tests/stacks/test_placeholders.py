"""Placeholders: the real program refuses them by key; the offline preview lists them and passes."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.settings.placeholders import find_placeholders
from tests.helpers import STACKS, settings_of
from tools import preview
from tools.offline import ROOT, run_program, run_program_expecting_error

REAL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3kq8Qz0y1m7Yd2nVw6JcRr5t9UfXo4hLpGa1sEeW2K alice@laptop"


def filled_in(stack: str) -> dict[str, Any]:
    """The stack's config with every placeholder replaced by a plausible real value."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    text = json.dumps(config)
    replacements = (
        ("example.com", "loopi-platform.eu"),
        ("198.51.100.", "85.10.20."),
        ("203.0.113.0/24", "85.10.21.0/24"),
        ("203.0.113.", "85.10.22."),
    )
    for old, new in replacements:
        text = text.replace(old, new)
    config = json.loads(text)
    config["platform-infra:ssh_keys"] = [REAL_KEY]
    prefix = "platform-infra:"
    return {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_refuses_each_placeholder_by_key_before_any_resource(stack: str) -> None:
    found = find_placeholders(settings_of(stack))
    assert found, f"the committed {stack} stack is an example and has placeholders"
    error, registered = run_program_expecting_error(stack, {}, require_ready=True)
    assert isinstance(error, pulumi.RunError) and registered == []
    message = str(error)
    for placeholder in found:
        assert f"platform-infra:{placeholder.key}: got {placeholder.value!r}; allowed: a real value" in message
    assert {"admin_cidrs.0", "ssh_keys.0"} <= {p.key for p in found}
    assert any(p.key.endswith(".image") and "registry.example.com" in p.value for p in found)


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_with_real_values_is_ready(stack: str) -> None:
    run = run_program(stack, overrides=filled_in(stack), require_ready=True)
    assert run.resources


def test_kinds_of_placeholder_and_what_is_not_one() -> None:
    settings = settings_of("prod")
    keys = {p.key: p.reason for p in find_placeholders(settings)}
    assert "RFC 5737" in keys["admin_cidrs.0"]
    assert "sample SSH key" in keys["ssh_keys.0"]
    assert "example.com" in keys["kubernetes.tls.acme_email"]
    assert "example.com" in keys["operations.monitoring.receivers.smtp_smarthost"]
    assert "kubernetes.ingress.public_cidrs.0" not in keys  # 0.0.0.0/0 is a real choice, not a placeholder
    ipv6 = settings.model_copy(update={"admin_cidrs": [*settings.admin_cidrs, ipaddress.ip_network("2001:db8::/48")]})
    assert any("RFC 3849" in p.reason for p in find_placeholders(ipv6))


def test_the_preview_lists_placeholders_and_fails_only_when_ready_is_required(tmp_path: Path) -> None:
    out = tmp_path / "preview.json"
    assert preview.main(["--stack", "dev", "--format", "json", "--output", str(out)]) == 0
    (report,) = json.loads(out.read_text())["stacks"]
    assert report["ready"] is False and report["placeholders"]
    assert report["placeholders"] == sorted(report["placeholders"], key=lambda p: p["key"])
    assert preview.main(["--stack", "dev", "--format", "markdown", "--output", str(tmp_path / "p.md")]) == 0
    assert "Placeholders to fill in before `pulumi up`" in (tmp_path / "p.md").read_text()
    assert preview.main(["--stack", "dev", "--require-ready", "--format", "json", "--output", str(out)]) == 1
