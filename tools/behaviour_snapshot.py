"""A canonical snapshot of what the whole program registers per stack, for refactors that must
not change behaviour: every resource (URN, inputs, parent, protect, ignore_changes, secret
inputs, dependencies) and the stack outputs, with mock ids derived from each resource's type and
name so two runs of an unchanged program produce byte-identical files.

    python -m tools.behaviour_snapshot before.json     # on the old commit
    python -m tools.behaviour_snapshot after.json      # on the new one
    cmp before.json after.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pulumi

from tools import offline


class StableIdMocks(offline.RecordingMocks):
    """Ids from a hash of type and name, not from registration order (which is concurrent)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        digest = int(hashlib.sha256(f"{args.typ}/{args.name}".encode()).hexdigest(), 16)
        rid = str(10_000_000 + digest % 9_000_000)
        return rid, offline.realistic_outputs(args.typ, args.name, dict(args.inputs), rid)


def snapshot(stack: str) -> dict[str, Any]:
    run = offline.run_program(stack, mocks_factory=StableIdMocks)
    resources = [
        {
            "urn": r.urn,
            "inputs": r.inputs,
            "parent": r.parent,
            "protect": r.protect,
            "ignore_changes": sorted(r.ignore_changes),
            "secret_inputs": sorted(r.secret_inputs),
            "provider": (r.provider or "").split("::")[0:4],
            "depends_on": sorted(r.depends_on),
        }
        for r in sorted(run.resources, key=lambda r: r.urn)
    ]
    return {"resources": resources, "outputs": run.outputs, "secret_outputs": sorted(run.secret_outputs)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    data = {stack: snapshot(stack) for stack in offline.discover_stacks()}
    Path(argv[0]).write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
