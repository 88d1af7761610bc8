"""What Linode offers, kept in one place so settings can refuse what does not exist.

Source: Linode API v4 `GET /regions` (capabilities "VPCs", "Disk Encryption") and
`GET /linode/types`, and Akamai's "VPC availability" page; read 2026-11-23. When Akamai adds a
region or a plan, add it here (one line) and the settings accept it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Linode's regional private network, where every private IPv4 lives (LKE nodes included; Akamai,
# "LKE network and firewall details": the control plane reaches nodes from here). A VPC subnet
# may not overlap it.
LINODE_PRIVATE_NETWORK = "192.168.128.0/17"
# Where a NodeBalancer's traffic to its backends comes from (Akamai, "NodeBalancer reference").
NODEBALANCER_RANGE = "192.168.255.0/24"

# Core compute regions whose capabilities include "VPCs". Distributed (edge) regions are left
# out on purpose: they have no VPCs, no LKE and no Object Storage.
VPC_REGIONS: frozenset[str] = frozenset(
    {
        "ap-northeast",
        "ap-south",
        "ap-southeast",
        "ap-west",
        "au-mel",
        "br-gru",
        "ca-central",
        "de-fra-2",
        "es-mad",
        "eu-central",
        "eu-west",
        "fr-par",
        "gb-lon",
        "id-cgk",
        "in-bom-2",
        "in-maa",
        "it-mil",
        "jp-osa",
        "jp-tyo-3",
        "nl-ams",
        "se-sto",
        "sg-sin-2",
        "us-central",
        "us-east",
        "us-iad",
        "us-lax",
        "us-mia",
        "us-ord",
        "us-sea",
        "us-southeast",
        "us-west",
    }
)

# Regions whose capabilities include "Object Storage" (Akamai, "Object Storage: availability";
# the API's region ids, not the deprecated `<region>-1` cluster ids). Legacy regions without it:
# ap-northeast, ap-southeast, ap-west, ca-central, eu-west, us-central, us-west.
OBJECT_STORAGE_REGIONS: frozenset[str] = VPC_REGIONS - frozenset(
    {"ap-northeast", "ap-southeast", "ap-west", "ca-central", "eu-west", "us-central", "us-west"}
)

# Regions whose capabilities include "Disk Encryption" (local disk encryption at rest).
# The legacy regions gained it later; the newer core regions had it from the start.
DISK_ENCRYPTION_REGIONS: frozenset[str] = VPC_REGIONS


@dataclass(frozen=True)
class Plan:
    """One Linode type: the sizes the sizing table speaks in."""

    id: str
    vcpus: int
    memory_gb: int
    dedicated: bool


_PLANS = [
    Plan("g6-nanode-1", 1, 1, False),
    Plan("g6-standard-1", 1, 2, False),
    Plan("g6-standard-2", 2, 4, False),
    Plan("g6-standard-4", 4, 8, False),
    Plan("g6-standard-6", 6, 16, False),
    Plan("g6-standard-8", 8, 32, False),
    Plan("g6-standard-16", 16, 64, False),
    Plan("g6-dedicated-2", 2, 4, True),
    Plan("g6-dedicated-4", 4, 8, True),
    Plan("g6-dedicated-8", 8, 16, True),
    Plan("g6-dedicated-16", 16, 32, True),
    Plan("g6-dedicated-32", 32, 64, True),
    Plan("g7-highmem-1", 2, 24, False),
    Plan("g7-highmem-2", 2, 48, False),
    Plan("g7-premium-2", 2, 4, True),
    Plan("g7-premium-4", 4, 8, True),
    Plan("g7-premium-8", 8, 16, True),
]
PLANS: dict[str, Plan] = {plan.id: plan for plan in _PLANS}

# Debian images Linode publishes; cloud-init user data needs a cloud-init aware image.
IMAGES: frozenset[str] = frozenset({"linode/debian12", "linode/debian13", "linode/ubuntu24.04"})


# --- what the program relies on in a region, per region it deploys to -------------------------
# Capability names as `GET /v4/regions/{id}` spells them. Source: Linode API v4 `GET /regions`
# (`linode-cli regions view eu-central`), Akamai's "LKE Enterprise" availability list and
# "Metadata service" availability list; recorded 2026-11-23, not re-checked from this machine
# (no network). README "Before a first deploy" says how to re-check them.
CAPABILITY_VPC = "VPCs"
CAPABILITY_LKE = "Kubernetes"
CAPABILITY_LKE_ENTERPRISE = "Kubernetes Enterprise"
CAPABILITY_DISK_ENCRYPTION = "Disk Encryption"
CAPABILITY_METADATA = "Metadata"
CAPABILITY_PLACEMENT_GROUPS = "Placement Group"
CAPABILITY_OBJECT_STORAGE = "Object Storage"


@dataclass(frozen=True)
class RegionFacts:
    region: str
    capabilities: frozenset[str]
    source: str
    checked: str  # ISO date the capabilities were read


REGION_FACTS: dict[str, RegionFacts] = {
    facts.region: facts
    for facts in (
        RegionFacts(
            "eu-central",
            frozenset({
                CAPABILITY_VPC, CAPABILITY_LKE, CAPABILITY_LKE_ENTERPRISE, CAPABILITY_DISK_ENCRYPTION,
                CAPABILITY_METADATA, CAPABILITY_PLACEMENT_GROUPS, CAPABILITY_OBJECT_STORAGE,
            }),
            "GET /v4/regions/eu-central capabilities; Akamai LKE Enterprise and Metadata availability pages",
            "2026-11-23",
        ),
    )
}

# --- Kubernetes versions LKE offers, per tier ---------------------------------------------------
# In the API's `id` format (GET /v4beta/lke/tiers/{tier}/versions, `linode-cli lke
# tiered-versions-list <tier>`): a minor on standard, the newest build of each minor on
# enterprise. The program resolves the version at deploy time from the API
# (components/kubernetes/lke.py); this list feeds the offline run and lets settings refuse a
# minor LKE does not offer. Recorded 2026-11-23: upstream 1.34 reached end of life on 2026-10-27,
# 1.35 ends 2027-02-28 and 1.36 ends 2027-06-28 (kubernetes.io/releases); the enterprise build
# suffixes (+lkeN) are the shape of the API's answer and change without notice, which is why the
# stacks name a minor and never a build.
LKE_VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("1.35", "1.36"),
    "enterprise": ("v1.35.8+lke1", "v1.36.3+lke1"),
}
