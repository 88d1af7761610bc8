"""Offline preview of a stack: no credentials, no Pulumi CLI, no cloud.

Runs the real program under Pulumi mocks with the stack's real config and reports what a
reviewer needs: the resource tree with each resource's type, name and key sizing, counts per
type, the estimated monthly cost per resource and in total against the stack's budget
(components/linode/pricing.py), and the findings of the policy pack (policy/rules.py) evaluated on
the mocked program, and the placeholders still to fill in before `pulumi up` (documentation
addresses, the sample SSH key, example.com). Exits 2 on a bad config (one message on stderr, no
traceback), 1 on a mandatory violation or a budget overrun (and, with --require-ready, on a
placeholder), 0 otherwise.

    python -m tools.preview --stack prod
    python -m tools.preview --all --format markdown      # every Pulumi.<stack>.yaml

Stacks are whatever `Pulumi.<stack>.yaml` files sit beside `Pulumi.yaml`; each file's
`platform-infra:environment` says which guardrails apply to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from components.linode import pricing
from components.settings.budget import BudgetSettings
from components.settings.common import ConfigError
from components.settings.environment import Environment, parse_environment
from components.settings.placeholders import Placeholder, find_placeholders
from policy import cost, rules
from tools.offline import (
    PROJECT,
    ProgramRun,
    ResourceRecord,
    discover_stacks,
    load_stack_settings,
    run_program,
    stack_config,
)

FORMATS = ("text", "markdown", "json")
# The PR workflow finds its comment by this marker and updates it instead of adding another.
COMMENT_MARKER = "<!-- platform-infra-offline-preview -->"

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
    inputs, _ = cost.unwrap_secrets(record.inputs)
    parts: list[str] = []
    for key in SIZING_KEYS.get(record.type, ()):
        if inputs.get(key) not in (None, "", []):
            parts.append(f"{key}={inputs[key]}")
    if record.type == "linode:index/firewall:Firewall":
        parts.append(f"rules={len(inputs.get('inbounds') or [])}")
    if record.type == "linode:index/lkeCluster:LkeCluster":
        for pool in inputs.get("pools") or []:
            scale = pool.get("autoscaler")
            count = f"{scale['min']:g}-{scale['max']:g}" if scale else pool.get("count")
            parts.append(f"pool={pool.get('type')}x{count}")
        if (inputs.get("controlPlane") or {}).get("highAvailability"):
            parts.append("ha-control-plane")
    if record.type.startswith("kubernetes:") and record.type != "kubernetes:helm.sh/v3:Release":
        meta = inputs.get("metadata") or {}
        if meta.get("namespace"):
            parts.append(f"ns={meta['namespace']}")
        replicas = (inputs.get("spec") or {}).get("replicas")
        if replicas is not None:
            parts.append(f"replicas={replicas:g}" if isinstance(replicas, float) else f"replicas={replicas}")
    if record.protect:
        parts.append("protected")
    return " ".join(parts)


def counts_by_type(run: ProgramRun) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in run.resources:
        if record.custom:
            counts[record.type] = counts.get(record.type, 0) + 1
    return dict(sorted(counts.items()))


def sizing_summary(run: ProgramRun) -> list[tuple[str, str]]:
    """What the stack is made of, in the sizing table's terms (README): VMs per role, cluster nodes,
    load balancers, storage; with the total vCPU and memory it pays for."""
    rows: list[tuple[str, str]] = []
    paid = {"vcpus": 0, "memory_gb": 0}

    def pay_for(plan: str, count: int) -> None:
        price = pricing.PLANS.get(plan)
        if price:
            paid["vcpus"] += price.vcpus * count
            paid["memory_gb"] += price.memory_gb * count

    views = rules.views_from_records(run.resources)
    by_role: dict[str, list[rules.ResourceView]] = {}
    for view in views:
        if view.type == cost.INSTANCE:
            by_role.setdefault(view.role or view.name, []).append(view)
    for role, instances in sorted(by_role.items()):
        plans = sorted({str(i.inputs.get("type")) for i in instances})
        backups = sum(1 for i in instances if i.inputs.get("backupsEnabled"))
        described = ", ".join(_plan_text(plan) for plan in plans)
        rows.append((f"VMs {role}", f"{len(instances)} x {described}; backups {backups}/{len(instances)}"))
        for instance in instances:
            pay_for(str(instance.inputs.get("type")), 1)
    for view in views:
        if view.type != cost.LKE_CLUSTER:
            continue
        tier = view.inputs.get("tier") or "standard"
        ha = (view.inputs.get("controlPlane") or {}).get("highAvailability") or tier == "enterprise"
        for pool in view.inputs.get("pools") or []:
            scale = pool.get("autoscaler")
            count = f"{scale['min']:g}-{scale['max']:g}" if scale else f"{pool.get('count', 0):g}"
            rows.append((f"LKE {tier}{' HA' if ha else ''}", f"{count} x {_plan_text(str(pool.get('type')))}"))
            pay_for(str(pool.get("type")), int(scale["min"]) if scale else int(pool.get("count", 0)))
    items: list[cost.CostItem] = []
    for view in views:
        try:
            line = cost.estimate_resource(view)
        except pricing.UnknownPlanError:
            continue  # the cost section names it
        items += list(line.items) if line else []
    balancers = sum(i.quantity for i in items if i.price_key == pricing.NODEBALANCER.key)
    block_gb = sum(i.quantity for i in items if i.price_key == pricing.BLOCK_STORAGE_GB.key)
    rows += [
        ("NodeBalancers", f"{balancers:g}"),
        ("Block Storage", f"{block_gb:g} GB"),
        ("Object Storage buckets", str(len(run.of_type(cost.OBJECT_STORAGE_BUCKET)))),
        ("Compute paid for", f"{paid['vcpus']} vCPU, {paid['memory_gb']} GB RAM (cluster at its minimum size)"),
    ]
    return rows


def _plan_text(plan: str) -> str:
    price = pricing.PLANS.get(plan)
    return f"{plan} ({price.vcpus} vCPU/{price.memory_gb} GB)" if price else plan


def stack_budget(stack: str) -> BudgetSettings | None:
    """The stack's platform-infra:budget section, read from Pulumi.<stack>.yaml."""
    config, _ = stack_config(stack)
    raw = config.get(f"{PROJECT}:budget")
    return None if raw is None else BudgetSettings.model_validate(json.loads(raw))


def stack_environment(stack: str) -> Environment:
    """The stack's platform-infra:environment (the program has refused the stack if it is bad)."""
    config, _ = stack_config(stack)
    return parse_environment(config.get(f"{PROJECT}:environment"))


@dataclass(frozen=True)
class StackReport:
    stack: str
    run: ProgramRun
    estimate: cost.StackCost | None
    cost_error: str | None
    evaluation: rules.Evaluation
    seconds: float
    placeholders: tuple[Placeholder, ...] = ()
    require_ready: bool = False

    @property
    def over_budget(self) -> bool:
        return self.estimate is None or not self.estimate.within_budget

    @property
    def failed(self) -> bool:
        return bool(self.evaluation.mandatory) or self.over_budget or (self.require_ready and bool(self.placeholders))

    def sorted_resources(self) -> list[ResourceRecord]:
        """Resources in a stable order (type, then name), whatever order the program registered them."""
        return sorted(self.run.resources, key=lambda r: (r.type, r.name, r.urn))

    def line_for(self, record: ResourceRecord) -> cost.CostLine | None:
        if self.estimate is None:
            return None
        return next((line for line in self.estimate.lines
                     if line.type == record.type and line.name == record.name), None)


def build_report(stack: str, require_ready: bool = False) -> StackReport:
    started = time.perf_counter()
    run = run_program(stack)
    placeholders = tuple(find_placeholders(load_stack_settings(stack)))
    budget = stack_budget(stack)
    views = rules.views_from_records(run.resources)
    estimate: cost.StackCost | None = None
    cost_error: str | None = None
    try:
        estimate = cost.estimate_stack(views, budget or BudgetSettings(monthly_eur=1))
        if budget is None:
            estimate, cost_error = None, f"{PROJECT}:budget is not set"
    except pricing.UnknownPlanError as error:
        cost_error = str(error)
    context = rules.StackContext(stack=stack, environment=stack_environment(stack), budget=budget)
    evaluation = rules.evaluate(views, context)
    return StackReport(
        stack, run, estimate, cost_error, evaluation, time.perf_counter() - started, placeholders, require_ready
    )


# --- text (rich) ---------------------------------------------------------------------------

def build_tree(report: StackReport) -> Tree:
    run = report.run
    tree = Tree(f"[bold]{PROJECT}-{run.stack}[/] ({len(run.resources)} resources)")
    nodes: dict[str | None, Tree] = {}
    by_urn = run.by_urn()

    def node_for(record: ResourceRecord) -> Tree:
        if record.urn in nodes:
            return nodes[record.urn]
        parent_record = by_urn.get(record.parent or "")
        parent = node_for(parent_record) if parent_record else tree
        label = f"[cyan]{short_type(record.type)}[/] [bold]{record.name}[/]"
        detail = sizing(record)
        line = report.line_for(record)
        price = f" [green]${line.monthly_usd:.2f}/mo[/]" if line else ""
        nodes[record.urn] = parent.add(f"{label} {detail}".rstrip() + price)
        return nodes[record.urn]

    for record in report.sorted_resources():
        node_for(record)
    return tree


def render_text(reports: Sequence[StackReport], console: Console) -> None:
    for report in reports:
        console.rule(f"[bold]{report.stack}")
        console.print(build_tree(report))
        counts = Table(title="Cloud resources per type", show_edge=False)
        counts.add_column("count", justify="right")
        counts.add_column("type")
        for type_, count in counts_by_type(report.run).items():
            counts.add_row(str(count), type_)
        console.print(counts)
        sizes = Table(title="Sizing", show_edge=False)
        sizes.add_column("what")
        sizes.add_column("size")
        for what, size in sizing_summary(report.run):
            sizes.add_row(what, size)
        console.print(sizes)
        console.print(_cost_table(report))
        console.print(_budget_line(report))
        if report.evaluation.findings:
            findings = Table(title="Policy findings", show_edge=False)
            for column in ("rule", "enforcement", "resource", "message"):
                findings.add_column(column)
            for finding in report.evaluation.findings:
                findings.add_row(finding.rule, finding.enforcement, finding.resource, finding.message)
            console.print(findings)
        else:
            console.print(f"[green]policy: all {_rule_count()} rules pass[/]")
        if report.placeholders:
            table = Table(title=f"Placeholders to fill in before `pulumi up` ({len(report.placeholders)})",
                          show_edge=False)
            for column in ("key", "value", "why"):
                table.add_column(column)
            for placeholder in report.placeholders:
                table.add_row(f"{PROJECT}:{placeholder.key}", placeholder.value, placeholder.reason)
            console.print(table)
        else:
            console.print("[green]placeholders: none, ready for `pulumi up`[/]")
        console.print(f"preview of {report.stack} took {report.seconds:.2f}s")


def _cost_table(report: StackReport) -> Table:
    table = Table(title="Estimated monthly cost (USD)", show_edge=False)
    for column in ("resource", "type", "detail", "USD/month"):
        table.add_column(column, justify="right" if column == "USD/month" else "left")
    for line in report.estimate.lines if report.estimate else ():
        table.add_row(line.name, short_type(line.type), line.detail, f"{line.monthly_usd:.2f}")
    return table


def _budget_line(report: StackReport) -> str:
    estimate = report.estimate
    if estimate is None:
        return f"[red]cost: cannot estimate ({report.cost_error})[/]"
    verdict = "[green]within budget[/]" if estimate.within_budget else "[red]OVER BUDGET[/]"
    return (f"total ${estimate.total_usd:.2f} = {estimate.total_eur:.2f} EUR/month "
            f"(autoscaling ceiling {estimate.max_total_eur:.2f} EUR) vs budget "
            f"{estimate.budget.monthly_eur:.2f} EUR: {verdict}, headroom {estimate.headroom_eur:.2f} EUR")


def _rule_count() -> int:
    return len(rules.RESOURCE_RULES) + len(rules.STACK_RULES)


# --- markdown (pull-request comment) --------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Sequence[StackReport]) -> str:
    lines = [COMMENT_MARKER, "## Offline preview (mocked program, no cloud calls)", ""]
    lines += ["| stack | resources | est. EUR/month | budget EUR | mandatory findings | placeholders | result |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for report in reports:
        estimate = report.estimate
        total = f"{estimate.total_eur:.2f}" if estimate else "n/a"
        budget = f"{estimate.budget.monthly_eur:.2f}" if estimate else "n/a"
        result = ":x: fails" if report.failed else ":white_check_mark: passes"
        lines.append(f"| {report.stack} | {sum(counts_by_type(report.run).values())} | {total} | {budget} | "
                     f"{len(report.evaluation.mandatory)} | {len(report.placeholders)} | {result} |")
    for report in reports:
        lines += ["", f"### {report.stack}", ""]
        lines += [_budget_line(report).replace("[green]", "").replace("[red]", "").replace("[/]", ""), ""]
        lines += ["| sizing | |", "|---|---|"]
        lines += [f"| {_md(what)} | {_md(size)} |" for what, size in sizing_summary(report.run)]
        lines += ["", "<details><summary>Estimated monthly cost per resource</summary>", "",
                  "| resource | type | detail | USD/month |", "|---|---|---|---:|"]
        for line in report.estimate.lines if report.estimate else ():
            lines.append(f"| {_md(line.name)} | `{short_type(line.type)}` | {_md(line.detail)} | "
                         f"{line.monthly_usd:.2f} |")
        lines += ["", "</details>", "", "<details><summary>Resources per type</summary>", "",
                  "| count | type |", "|---:|---|"]
        lines += [f"| {count} | `{type_}` |" for type_, count in counts_by_type(report.run).items()]
        lines += ["", "</details>", "", "<details><summary>Resource tree and sizing</summary>", "", "```"]
        lines += _plain_tree(report)
        lines += ["```", "", "</details>", ""]
        if report.evaluation.findings:
            lines += ["**Policy findings**", "", "| rule | enforcement | resource | message |", "|---|---|---|---|"]
            lines += [f"| {f.rule} | {f.enforcement} | `{_md(f.resource)}` | {_md(f.message)} |"
                      for f in report.evaluation.findings]
        else:
            lines.append(f"Policy: all {_rule_count()} rules pass.")
        if report.placeholders:
            lines += ["", f"**Placeholders to fill in before `pulumi up`** ({len(report.placeholders)}; "
                      "the real program refuses them)", "", "| key | value | why |", "|---|---|---|"]
            lines += [f"| `{PROJECT}:{p.key}` | `{_md(p.value)}` | {_md(p.reason)} |" for p in report.placeholders]
        lines.append(f"\n_Preview took {report.seconds:.2f}s._")
    lines += ["", f"Prices: `components/linode/pricing.py` (read {pricing.READ_ON.isoformat()}); "
              "rules: `policy/rules.py`."]
    return "\n".join(lines) + "\n"


def _plain_tree(report: StackReport) -> list[str]:
    children: dict[str | None, list[ResourceRecord]] = {}
    urns = {record.urn for record in report.run.resources}
    for record in report.sorted_resources():
        parent = record.parent if record.parent in urns else None
        children.setdefault(parent, []).append(record)
    out: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for record in children.get(parent, []):
            line = report.line_for(record)
            price = f"  ${line.monthly_usd:.2f}/mo" if line else ""
            out.append(f"{'  ' * depth}{short_type(record.type)} {record.name} {sizing(record)}".rstrip() + price)
            walk(record.urn, depth + 1)

    walk(None, 0)
    return out


# --- json ------------------------------------------------------------------------------------

def report_dict(report: StackReport) -> dict[str, Any]:
    estimate = report.estimate
    return {
        "stack": report.stack,
        "failed": report.failed,
        "seconds": round(report.seconds, 3),
        "counts": counts_by_type(report.run),
        "sizing": dict(sizing_summary(report.run)),
        "resources": [
            {"type": r.type, "name": r.name, "parent": r.parent, "protect": r.protect, "sizing": sizing(r),
             "monthly_usd": (line.monthly_usd if (line := report.line_for(r)) else 0.0)}
            for r in report.sorted_resources()
        ],
        "cost": None if estimate is None else {
            "total_usd": estimate.total_usd, "total_eur": estimate.total_eur,
            "max_total_eur": estimate.max_total_eur, "budget_eur": estimate.budget.monthly_eur,
            "allowed_overrun_eur": estimate.budget.allowed_overrun_eur,
            "eur_per_usd": estimate.budget.usd_to_eur.eur_per_usd, "within_budget": estimate.within_budget,
            "lines": [{"type": line.type, "name": line.name, "monthly_usd": line.monthly_usd,
                       "max_monthly_usd": line.max_monthly_usd, "detail": line.detail}
                      for line in sorted(estimate.lines, key=lambda line: (line.type, line.name))],
        },
        "cost_error": report.cost_error,
        "findings": sorted(
            ({"rule": f.rule, "enforcement": f.enforcement, "resource": f.resource, "message": f.message}
             for f in report.evaluation.findings),
            key=lambda f: (f["rule"], f["resource"], f["message"]),
        ),
        "placeholders": [{"key": f"{PROJECT}:{p.key}", "value": p.value, "why": p.reason}
                         for p in report.placeholders],
        "ready": not report.placeholders,
    }


def render_json(reports: Sequence[StackReport]) -> str:
    return json.dumps({"stacks": [report_dict(report) for report in reports]}, indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stacks = discover_stacks()
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", action="append",
                       help=f"stack to preview ({', '.join(stacks)}); repeat for several (one report)")
    which.add_argument("--all", action="store_true", help=f"every stack: {', '.join(stacks)}")
    parser.add_argument("--format", choices=FORMATS, default="text")
    parser.add_argument("--output", help="write the report to this file instead of stdout")
    parser.add_argument("--require-ready", action="store_true",
                        help="exit 1 while a placeholder is left (what `pulumi up` would refuse)")
    args = parser.parse_args(argv)
    console = Console(stderr=args.format != "text")
    reports: list[StackReport] = []
    for stack in dict.fromkeys(stacks if args.all else args.stack):
        try:
            reports.append(build_report(stack, require_ready=args.require_ready))
        except (ConfigError, pulumi.RunError) as error:
            # A config error is the operator's to fix: one message, no traceback, exit 2.
            message = str(error)
            if not message.startswith("invalid stack config"):
                message = f"invalid stack config for {stack}:\n{message}"
            print(f"error: {message}", file=sys.stderr)
            return 2
    if args.format == "text":
        if args.output:
            with open(args.output, "w") as handle:
                render_text(reports, Console(file=handle, width=160, no_color=True))
        else:
            render_text(reports, console)
    else:
        rendered = render_markdown(reports) if args.format == "markdown" else render_json(reports)
        if args.output:
            with open(args.output, "w") as handle:
                handle.write(rendered)
        else:
            sys.stdout.write(rendered)
    return 1 if any(report.failed for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
