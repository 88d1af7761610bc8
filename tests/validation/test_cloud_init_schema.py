"""The user data of the VMs outside the data tier, in every stack, passes cloud-init's own schema check.

Data VMs are checked the same way, with their secret user data, in test_data_cloud_init_schema.py.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.helpers import DATA_ROLES, STACKS, ProgramRuns, instances, role_of
from tools.offline import assert_valid_cloud_config, unwrap_secret


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_of_every_other_vm_passes_cloud_init_schema(
    stack: str, tmp_path: Path, program_runs: ProgramRuns
) -> None:
    vms = [vm for vm in instances(program_runs[stack]) if role_of(vm) not in DATA_ROLES]
    assert vms, "the bastion at least"
    for vm in vms:
        metadatas, _ = unwrap_secret(vm.inputs["metadatas"])
        text = base64.b64decode(metadatas[0]["userData"]).decode()
        assert text.startswith("#cloud-config\n"), vm.name
        assert_valid_cloud_config(text, tmp_path / f"{vm.name}.yaml")
