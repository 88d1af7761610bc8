"""Linode's label rules per kind of object: one validator for every label the program sets.

Where two sources differ, the stricter one is kept (the API refuses what the provider schema
would let through). Sources, read 2026-11-23:
- Linode API v4 reference (techdocs.akamai.com/linode-api): POST /linode/instances `label`
  ("3-64 characters; must begin and end with an alphanumeric character; may only consist of
  alphanumeric characters, hyphens (-), underscores (_) or periods (.); cannot have two
  hyphens, underscores or periods in a row"); POST /networking/firewalls `label` and each rule's
  `label` (the same characters, 3-32); POST /placement/groups `label` (3-32);
  POST /lke/clusters `label` (3-32, letters, digits and hyphens: Kubernetes refuses `_`);
  POST /vpcs and /vpcs/{id}/subnets `label` (1-64, ASCII letters, digits, hyphens, no `--`);
  POST /object-storage/keys `label` (3-50); Object Storage bucket names (3-63, lowercase
  letters, digits, hyphens, beginning and ending with a letter or digit: S3 naming, global per
  region).
- Cloud Manager's validation package, the same rules client-side (linode/manager
  packages/validation/src: linodes.schema.ts 3-64, firewalls.schema.ts 3-32,
  placement-groups.schema.ts 3-32, kubernetes.schema.ts `^[a-zA-Z0-9-]+$` 3-32,
  vpcs.schema.ts `^[a-zA-Z0-9-]*$` 1-64 and no `--`, buckets.schema.ts 3-63,
  objectStorageKeys.schema.ts 3-50).
- terraform-provider-linode (upstream of pulumi-linode) checks less: its firewall schema
  allows labels and rule labels of 3-64 (linode/firewall/framework_schema_resource.go), so a
  33-character firewall label passes `pulumi preview` and fails at `pulumi up`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

LabelKind = Literal[
    "instance",
    "firewall",
    "firewall_rule",
    "placement_group",
    "lke_cluster",
    "vpc",
    "vpc_subnet",
    "bucket",
    "object_storage_key",
    "nodebalancer",
]


@dataclass(frozen=True)
class LabelRule:
    kind: LabelKind
    min_length: int
    max_length: int
    characters: re.Pattern[str]
    characters_text: str
    source: str


# Letters, digits, -, _, . ; alphanumeric at both ends; no doubled -, _ or . (API reference).
_LINODE_STYLE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|[-_.](?=[A-Za-z0-9]))*$")
_LINODE_STYLE_TEXT = (
    "letters, digits, '-', '_' and '.', beginning and ending with a letter or digit, "
    "never two of '-', '_', '.' in a row"
)
_HYPHENATED = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*$")
_HYPHENATED_TEXT = "letters, digits and single '-', beginning and ending with a letter or digit"
_VPC = re.compile(r"^(?!.*--)[A-Za-z0-9-]+$")
_VPC_TEXT = "ASCII letters, digits and '-', never '--'"
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_BUCKET_TEXT = "lowercase letters, digits and single '-', beginning and ending with a letter or digit"
_ANY_VISIBLE = re.compile(r"^\S(?:.*\S)?$")
_ANY_VISIBLE_TEXT = "text without leading or trailing spaces"

RULES: dict[LabelKind, LabelRule] = {
    rule.kind: rule
    for rule in (
        LabelRule("instance", 3, 64, _LINODE_STYLE, _LINODE_STYLE_TEXT,
                  "API POST /linode/instances; manager linodes.schema.ts"),
        LabelRule("firewall", 3, 32, _LINODE_STYLE, _LINODE_STYLE_TEXT,
                  "API POST /networking/firewalls; manager firewalls.schema.ts"),
        LabelRule("firewall_rule", 3, 32, _LINODE_STYLE, _LINODE_STYLE_TEXT,
                  "API POST /networking/firewalls rules.inbound[].label"),
        LabelRule("placement_group", 3, 32, _LINODE_STYLE, _LINODE_STYLE_TEXT,
                  "API POST /placement/groups; manager placement-groups.schema.ts"),
        LabelRule("lke_cluster", 3, 32, _HYPHENATED, _HYPHENATED_TEXT,
                  "API POST /lke/clusters; manager kubernetes.schema.ts"),
        LabelRule("vpc", 1, 64, _VPC, _VPC_TEXT, "API POST /vpcs; manager vpcs.schema.ts"),
        LabelRule("vpc_subnet", 1, 64, _VPC, _VPC_TEXT, "API POST /vpcs/{id}/subnets; manager vpcs.schema.ts"),
        LabelRule("bucket", 3, 63, _BUCKET, _BUCKET_TEXT,
                  "API POST /object-storage/buckets (S3 names); manager buckets.schema.ts"),
        LabelRule("object_storage_key", 3, 50, _ANY_VISIBLE, _ANY_VISIBLE_TEXT,
                  "API POST /object-storage/keys; manager objectStorageKeys.schema.ts"),
        LabelRule("nodebalancer", 3, 32, _LINODE_STYLE, _LINODE_STYLE_TEXT, "API POST /nodebalancers"),
    )
}


class LabelError(ValueError):
    """A label Linode's API would refuse; the message names the kind, the label and the rule."""


def label_problems(kind: LabelKind, label: str) -> list[str]:
    """Why Linode would refuse `label` for this kind of object (empty when it accepts it)."""
    rule = RULES[kind]
    problems = []
    if not rule.min_length <= len(label) <= rule.max_length:
        problems.append(
            f"{kind} label {label!r} is {len(label)} characters; Linode allows "
            f"{rule.min_length}-{rule.max_length} ({rule.source})"
        )
    if not rule.characters.match(label):
        problems.append(f"{kind} label {label!r} must be {rule.characters_text} ({rule.source})")
    return problems


def check_label(kind: LabelKind, label: str) -> str:
    """The label, or a LabelError saying what Linode would refuse."""
    problems = label_problems(kind, label)
    if problems:
        raise LabelError("; ".join(problems))
    return label


# Where each resource type carries labels, in the engine's (camelCase) input names: a top-level
# `label`, and for firewalls the label of every rule.
LABELLED_TYPES: dict[str, LabelKind] = {
    "linode:index/instance:Instance": "instance",
    "linode:index/firewall:Firewall": "firewall",
    "linode:index/placementGroup:PlacementGroup": "placement_group",
    "linode:index/lkeCluster:LkeCluster": "lke_cluster",
    "linode:index/vpc:Vpc": "vpc",
    "linode:index/vpcSubnet:VpcSubnet": "vpc_subnet",
    "linode:index/objectStorageBucket:ObjectStorageBucket": "bucket",
    "linode:index/objectStorageKey:ObjectStorageKey": "object_storage_key",
    "linode:index/nodeBalancer:NodeBalancer": "nodebalancer",
}


def labels_of(type_: str, inputs: Mapping[str, Any]) -> Iterator[tuple[LabelKind, str]]:
    """Every (kind, label) a resource of this type sets; unknown values are skipped."""
    kind = LABELLED_TYPES.get(type_)
    if kind is None:
        return
    label = inputs.get("label")
    if isinstance(label, str):
        yield kind, label
    if kind == "firewall":
        for direction in ("inbounds", "outbounds"):
            for rule in inputs.get(direction) or []:
                if isinstance(rule, Mapping) and isinstance(rule.get("label"), str):
                    yield "firewall_rule", rule["label"]
