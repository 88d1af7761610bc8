"""What kind of environment a stack is, and what that kind expects of it.

A stack's name is only a label (`Pulumi.<stack>.yaml`, `<project>-<stack>-<role>`); what the
program and the guardrails decide comes from `platform-infra:environment` in the stack's
config. So a `qa` stack or a personal scratch stack needs a stack file and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

Environment = Literal["development", "staging", "production"]
ENVIRONMENTS: tuple[Environment, ...] = get_args(Environment)
ENVIRONMENT_ALLOWED = f"allowed: one of {', '.join(ENVIRONMENTS)}"


@dataclass(frozen=True)
class Expectations:
    """What the guardrails demand of one kind of environment."""

    # Data VMs, volumes and the backup bucket are protected against deletion and replacement.
    protect_stateful: bool
    # Every Ingress terminates TLS for every host.
    tls: bool
    # Data VMs have Linode's Backup Service enabled.
    backups: bool
    # Admin access from 0.0.0.0/0 or ::/0 is refused.
    narrow_admin_access: bool


EXPECTATIONS: dict[Environment, Expectations] = {
    "development": Expectations(protect_stateful=False, tls=False, backups=False, narrow_admin_access=False),
    "staging": Expectations(protect_stateful=False, tls=True, backups=True, narrow_admin_access=False),
    "production": Expectations(protect_stateful=True, tls=True, backups=True, narrow_admin_access=True),
}


def parse_environment(value: object) -> Environment:
    """The environment kind, or a ValueError whose text is what is allowed."""
    for environment in ENVIRONMENTS:
        if value == environment:
            return environment
    raise ValueError(ENVIRONMENT_ALLOWED)


# A stack name becomes part of Linode labels (`<project>-<stack>-<role>-<n>`, 3-64 characters),
# Object Storage bucket names (lowercase letters, digits and hyphens) and Kubernetes label values,
# so it is held to what all three accept, short enough to leave room for the rest of the label.
STACK_NAME = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,19}$")
STACK_NAME_ALLOWED = (
    "allowed: 1-20 lowercase letters, digits and single hyphens, starting with a letter and not "
    "ending with a hyphen (it becomes part of Linode labels and bucket names)"
)


def check_stack_name(stack: str) -> str:
    if not STACK_NAME.match(stack):
        raise ValueError(STACK_NAME_ALLOWED)
    return stack
