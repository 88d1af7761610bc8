"""The database proxy's configuration, as the whole program emits it, checked by HAProxy itself.

The ConfigMap `database-proxy` (key `haproxy.cfg`) of every stack that runs one goes through
`haproxy -c`; warnings count as failures. HAProxy missing skips locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.data.mariadb.config import render_database_proxy_config
from components.kubernetes.data_proxy import CHECKSUM_ANNOTATION, config_checksum
from tests.helpers import STACKS, ProgramRuns, settings_of
from tools.offline import ProgramRun, unwrap_secret

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def haproxy() -> str:
    path = shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin")
    if path is None:
        message = "haproxy is not installed (make system-packages installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def check(config: str, tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    result = subprocess.run([haproxy(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "[WARNING]" not in output and "[ALERT]" not in output, output


def proxy_configs(run: ProgramRun) -> dict[str, str]:
    configs = {}
    for record in run.of_type(CONFIG_MAP):
        data, _ = unwrap_secret(record.inputs.get("data") or {})
        if "haproxy.cfg" in data:
            configs[record.inputs["metadata"]["name"]] = data["haproxy.cfg"]
    return configs


@pytest.mark.parametrize("stack", STACKS)
def test_haproxy_accepts_the_configuration_each_stack_emits(
    stack: str, program_runs: ProgramRuns, tmp_path: Path
) -> None:
    configs = proxy_configs(program_runs[stack])
    galera = settings_of(stack).data.mariadb.nodes >= 3
    assert list(configs) == (["database-proxy"] if galera else [])
    for config in configs.values():
        check(config, tmp_path)


@pytest.mark.parametrize("stack", STACKS)
def test_the_proxy_pods_roll_when_the_configuration_changes(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    for name, config in proxy_configs(run).items():
        (deployment,) = [
            r for r in run.of_type("kubernetes:apps/v1:Deployment") if r.inputs["metadata"]["name"] == name
        ]
        annotations = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
        assert annotations[CHECKSUM_ANNOTATION] == config_checksum(config)


def test_haproxy_accepts_a_single_node_and_a_five_node_cluster(tmp_path: Path) -> None:
    check(render_database_proxy_config([("db-0", "192.168.140.7")]), tmp_path)
    check(render_database_proxy_config([(f"db-{i}", f"10.0.1.{10 + i}") for i in range(5)]), tmp_path)


def test_haproxy_refuses_what_it_should(tmp_path: Path) -> None:
    """The check is real: a broken file fails it."""
    broken = render_database_proxy_config([("db-0", "10.0.1.10")]).replace("http-check expect", "http-check expekt")
    with pytest.raises(AssertionError):
        check(broken, tmp_path)
