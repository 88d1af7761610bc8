"""Application secrets travel from `secure:` config to a workload's own Secret, and nowhere in clear.

The whole program runs per stack with a `secret_env` on its first workload and every secret
config key set to a recognisable fake. Then every record of the run (each resource's inputs and
outputs), every stack output and every log line is searched: each occurrence of a fake value
must sit inside Pulumi's secret wrapper (or a secret stack output); base64 strings (user data)
are decoded and searched too.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from components.kubernetes.manifests import workload_secret_name
from policy.cost import SECRET_SIG, SECRET_SIG_KEY
from tests.helpers import STACKS
from tools.offline import FAKE_SECRETS, ROOT, ProgramRun, run_program

APP_SECRETS = {"api_session_key": "fake-app-session-5b1f0c2e", "api_payment_token": "fake-app-payment-93d7aa10"}
PLATFORM_SECRETS = {
    "alert_webhook_url": "https://hooks.invalid/fake-webhook-e61c2d",
    "alert_smtp_password": "fake-smtp-password-77aa01",
    "linode:token": FAKE_SECRETS["linode:token"],
}
SECRET_ENV = {"SESSION_KEY": "api_session_key", "PAYMENT_TOKEN": "api_payment_token"}
_BASE64 = re.compile(r"^[A-Za-z0-9+/]{24,}={0,2}$")


def run_with_secrets(stack: str, caplog: pytest.LogCaptureFixture) -> ProgramRun:
    kubernetes = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["platform-infra:kubernetes"]
    kubernetes["workloads"][0]["secret_env"] = dict(SECRET_ENV)
    with caplog.at_level(logging.DEBUG):
        return run_program(stack, overrides={"kubernetes": kubernetes}, secrets={**APP_SECRETS, **PLATFORM_SECRETS})


def plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string outside a secret wrapper, with where it is (wrapped values are skipped)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return
        for key, item in value.items():
            yield from plain_strings(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from plain_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value
        if _BASE64.match(value):
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                return
            yield f"{path}(base64)", decoded


def wrapped_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            yield json.dumps(value.get("value"))
            return
        for item in value.values():
            yield from wrapped_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from wrapped_strings(item)


def leaks(run: ProgramRun, log_text: str) -> list[str]:
    fakes = [*APP_SECRETS.values(), *PLATFORM_SECRETS.values()]
    found: list[str] = []
    for record in run.resources:
        for part, value in (("inputs", record.inputs), ("outputs", record.outputs)):
            for where, text in plain_strings(value):
                found += [f"{record.type} {record.name} {part}{where}" for fake in fakes if fake in text]
    for name, value in run.outputs.items():
        if name not in run.secret_outputs and any(fake in json.dumps(value) for fake in fakes):
            found.append(f"stack output {name}")
    found += [f"log: {fake}" for fake in fakes if fake in log_text]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_in_plain_text_anywhere(stack: str, caplog: pytest.LogCaptureFixture,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    run = run_with_secrets(stack, caplog)
    captured = capfd.readouterr()
    assert leaks(run, caplog.text + captured.out + captured.err) == []
    # ...and the values did travel: each app secret sits, wrapped, in the workload's own Secret.
    (secret,) = [r for r in run.resources if r.type == "kubernetes:core/v1:Secret"
                 and r.inputs["metadata"]["name"] == "api-secrets"]
    assert "stringData" in secret.secret_inputs
    wrapped = " ".join(wrapped_strings(secret.inputs))
    assert all(value in wrapped for value in APP_SECRETS.values())


@pytest.mark.parametrize("stack", STACKS)
def test_the_workload_reads_its_secrets_through_secret_key_refs_only(
    stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = run_with_secrets(stack, caplog)
    (deployment,) = [r for r in run.resources if r.type == "kubernetes:apps/v1:Deployment"
                     and r.inputs["metadata"]["name"] == "api"]
    env = {e["name"]: e for e in deployment.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in SECRET_ENV:
        assert "value" not in env[name]
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "api-secrets", "key": name}}
    assert workload_secret_name_for("api") == "api-secrets"


def workload_secret_name_for(name: str) -> str:
    from components.settings.kubernetes import WorkloadSettings

    workload = WorkloadSettings(name=name, image="r.invalid/a:1", replicas=1, health_command=("x",))
    return workload_secret_name(workload)
