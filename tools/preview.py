"""Offline preview of a stack: no credentials, no Pulumi CLI, no cloud.

Runs the real program under Pulumi mocks with the stack's real config and prints the resource
tree with each resource's type, name and key sizing.

    python -m tools.preview --stack prod
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pulumi
from rich.console import Console
from rich.tree import Tree

from tests.harness import ProgramRun, ResourceRecord, run_program

STACKS = ("dev", "staging", "prod")

# The inputs that say how big or how exposed a resource is, per type (engine's camelCase names).
SIZING_KEYS: dict[str, tuple[str, ...]] = {
    "linode:index/instance:Instance": ("label", "type", "region", "backupsEnabled", "diskEncryption"),
    "linode:index/vpc:Vpc": ("label", "region"),
    "linode:index/vpcSubnet:VpcSubnet": ("label", "ipv4"),
    "linode:index/firewall:Firewall": ("label", "inboundPolicy"),
    "linode:index/placementGroup:PlacementGroup": ("label", "placementGroupType"),
    "linode:index/lkeCluster:LkeCluster": ("label", "k8sVersion", "tier", "region"),
    "linode:index/nodeBalancer:NodeBalancer": ("label", "region"),
    "linode:index/objectStorageBucket:ObjectStorageBucket": ("label", "region"),
    "kubernetes:helm.sh/v3:Release": ("chart", "version", "namespace"),
}


def short_type(type_: str) -> str:
    """`linode:index/instance:Instance` -> `linode:Instance`; components keep their own token."""
    if type_.startswith("platform:"):
        return type_
    package, _, rest = type_.partition(":")
    return f"{package}:{rest.rsplit(':', 1)[-1]}" if rest else type_


def sizing(record: ResourceRecord) -> str:
    inputs = record.inputs
    parts: list[str] = []
    for key in SIZING_KEYS.get(record.type, ()):
        if inputs.get(key) not in (None, "", []):
            parts.append(f"{key}={inputs[key]}")
    if record.type == "linode:index/firewall:Firewall":
        parts.append(f"rules={len(inputs.get('inbounds') or [])}")
    if record.type == "linode:index/lkeCluster:LkeCluster":
        for pool in inputs.get("pools") or []:
            scale = pool.get("autoscaler")
            count = f"{scale['min']}-{scale['max']}" if scale else pool.get("count")
            parts.append(f"pool={pool.get('type')}x{count}")
        if (inputs.get("controlPlane") or {}).get("highAvailability"):
            parts.append("ha-control-plane")
    if record.type.startswith("kubernetes:") and record.type != "kubernetes:helm.sh/v3:Release":
        meta = inputs.get("metadata") or {}
        if meta.get("namespace"):
            parts.append(f"ns={meta['namespace']}")
        replicas = (inputs.get("spec") or {}).get("replicas")
        if replicas is not None:
            parts.append(f"replicas={replicas}")
    if record.protect:
        parts.append("protected")
    return " ".join(parts)


def build_tree(run: ProgramRun) -> Tree:
    tree = Tree(f"[bold]platform-infra-{run.stack}[/] ({len(run.resources)} resources)")
    nodes: dict[str | None, Tree] = {}
    by_urn = run.by_urn()

    def node_for(record: ResourceRecord) -> Tree:
        if record.urn in nodes:
            return nodes[record.urn]
        parent_record = by_urn.get(record.parent or "")
        parent = node_for(parent_record) if parent_record else tree
        label = f"[cyan]{short_type(record.type)}[/] [bold]{record.name}[/]"
        detail = sizing(record)
        nodes[record.urn] = parent.add(f"{label} {detail}".rstrip())
        return nodes[record.urn]

    for record in run.resources:
        node_for(record)
    return tree


def counts_by_type(run: ProgramRun) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in run.resources:
        if record.custom:
            counts[record.type] = counts.get(record.type, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", choices=STACKS, required=True)
    args = parser.parse_args(argv)
    console = Console()
    started = time.perf_counter()
    try:
        run = run_program(args.stack)
    except pulumi.RunError as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    console.print(build_tree(run))
    summary: dict[str, Any] = counts_by_type(run)
    console.print(f"\n[bold]{sum(summary.values())} cloud resources[/] in {time.perf_counter() - started:.2f}s")
    for type_, count in summary.items():
        console.print(f"  {count:4d}  {type_}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
