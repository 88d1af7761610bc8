"""CrossGuard policy pack: `pulumi preview --policy-pack policy`. The rules live in rules.py."""

from __future__ import annotations

import sys
from pathlib import Path

# The rules share the cost estimate and the budget model with the program: import from the repo.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
from pulumi_policy import EnforcementLevel, PolicyPack

from policy.rules import StackContext, build_policies, stack_context_from_engine


def current_context() -> StackContext:
    # The CLI hands the analyzer the stack name and the stack's config (PULUMI_CONFIG); the
    # config's environment kind, not the name, decides what the rules expect.
    config = pulumi.Config("platform-infra")
    return stack_context_from_engine(config.get("environment"), config.get_object("budget"), pulumi.get_stack())


PolicyPack(
    name="platform-infra-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(current_context),
)
