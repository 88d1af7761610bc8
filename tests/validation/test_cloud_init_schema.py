"""Every VM's user data, in every stack, passes cloud-init's own schema check."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import unwrap_secret
from tests.stacks.test_foundation_per_stack import instances, program

CLOUD_INIT = shutil.which("cloud-init")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_user_data_of_every_vm_passes_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    assert CLOUD_INIT, "cloud-init is installed by `make system-packages` (Debian package cloud-init)"
    vms = instances(program(stack))
    assert vms
    for vm in vms:
        metadatas, _ = unwrap_secret(vm.inputs["metadatas"])
        text = base64.b64decode(metadatas[0]["userData"]).decode()
        assert text.startswith("#cloud-config\n"), vm.name
        path = tmp_path / f"{vm.name}.yaml"
        path.write_text(text)
        result = subprocess.run(
            [CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{vm.name}: {result.stdout}{result.stderr}"
        assert "Valid cloud-config" in result.stdout
