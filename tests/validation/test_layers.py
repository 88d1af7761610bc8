"""The tiers are floors: import-linter's `layers` contract (pyproject.toml) is what keeps them so.

The contract is proven to bite: a copy of the tree with one upward import must fail it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tools.offline import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_its_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "components", tree / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    # The foundation reaching up into operations is exactly the sideways tie the layers forbid.
    reach = tree / "components" / "foundation" / "reach.py"
    reach.write_text(reach.read_text() + "\nfrom components.operations import exporters  # noqa: E402,F401\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "components.foundation.reach -> components.operations.exporters" in result.stdout
