"""A stack is a file: a new Pulumi.<stack>.yaml previews with no code change.

The test copies the program into a temporary directory, writes a stack file there (a `qa`
stack of kind staging, a personal scratch stack of kind development) and runs the offline
preview of the copy in a fresh interpreter, as an operator would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.offline import ROOT

# What the program is made of; tests, docs and virtualenvs stay behind.
PROGRAM = ("__main__.py", "Pulumi.yaml", "components", "policy", "tools", "vendor")


def copy_of_the_program(into: Path) -> Path:
    for name in PROGRAM:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    return into


def write_stack(root: Path, stack: str, like: str, environment: str, vpc_cidr: str) -> None:
    """A stack file modelled on an existing one, with its own kind and address space."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{like}.yaml").read_text())
    config = doc["config"]
    config["platform-infra:environment"] = environment
    prefix = vpc_cidr.rsplit(".", 2)[0]
    config["platform-infra:network"] = {
        "vpc_cidr": vpc_cidr,
        "subnets": {"admin": f"{prefix}.0.0/24", "data": f"{prefix}.1.0/24", "app": f"{prefix}.2.0/24"},
    }
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def preview(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.preview", *args], cwd=root, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    ("stack", "like", "environment", "protected"),
    [("qa", "staging", "staging", False), ("alice", "dev", "development", False)],
)
def test_a_new_stack_file_previews_with_no_code_change(
    tmp_path: Path, stack: str, like: str, environment: str, protected: bool
) -> None:
    root = copy_of_the_program(tmp_path)
    write_stack(root, stack, like, environment, "10.90.0.0/16")
    out = root / "preview.json"
    result = preview(root, "--stack", stack, "--format", "json", "--output", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    (report,) = json.loads(out.read_text())["stacks"]
    assert report["stack"] == stack and report["failed"] is False and report["findings"] == []
    labels = [r["sizing"] for r in report["resources"] if r["type"] == "linode:index/instance:Instance"]
    assert labels and all(f"label=platform-infra-{stack}-" in sizing for sizing in labels)
    assert all(r["protect"] is protected for r in report["resources"])


def test_the_policy_pack_judges_a_new_stack_by_its_kind(tmp_path: Path) -> None:
    """A `qa` stack that says it is production gets production's guardrails: protection included."""
    root = copy_of_the_program(tmp_path)
    write_stack(root, "qa", "prod", "production", "10.32.0.0/12")
    config = yaml.safe_load((root / "Pulumi.qa.yaml").read_text())
    config["config"]["platform-infra:network"] = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())[
        "config"]["platform-infra:network"]
    (root / "Pulumi.qa.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = root / "preview.json"
    assert preview(root, "--all", "--format", "json", "--output", str(out)).returncode == 0
    reports = {report["stack"]: report for report in json.loads(out.read_text())["stacks"]}
    assert set(reports) == {"qa"}  # the copy holds this one stack file; --all finds it
    assert any(r["protect"] for r in reports["qa"]["resources"])


def test_a_stack_file_without_an_environment_is_refused_by_name(tmp_path: Path) -> None:
    root = copy_of_the_program(tmp_path)
    write_stack(root, "qa", "staging", "staging", "10.90.0.0/16")
    doc = yaml.safe_load((root / "Pulumi.qa.yaml").read_text())
    del doc["config"]["platform-infra:environment"]
    (root / "Pulumi.qa.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = preview(root, "--stack", "qa", "--format", "json")
    assert result.returncode == 2
    said = " ".join((result.stdout + result.stderr).split())  # the console wraps long lines
    assert "invalid stack config for qa: platform-infra:environment: missing; " in said
    assert "allowed: one of development, staging, production" in said
