"""What Linode's API and the provider would refuse, checked on what every stack really registers.

Mocks accept any value; these tests hold each stack's resources to Linode's own rules:
labels, the v4beta provider of the LKE cluster, the version LKE offers, the API ACL, user-data
size with real-size keys and certificates, the bucket's unique name and the destroy order.
"""

from __future__ import annotations

import base64

import pytest

from components.linode.catalog import (
    CAPABILITY_DISK_ENCRYPTION,
    CAPABILITY_LKE,
    CAPABILITY_LKE_ENTERPRISE,
    CAPABILITY_METADATA,
    CAPABILITY_OBJECT_STORAGE,
    CAPABILITY_PLACEMENT_GROUPS,
    CAPABILITY_VPC,
    LKE_VERSIONS,
    REGION_FACTS,
)
from components.linode.labels import label_problems, labels_of
from components.settings.kubernetes import LATEST
from policy.rules import USER_DATA_LIMIT_BYTES
from tests.helpers import INSTANCE, STACKS, ProgramRuns, settings_of, stacks_of_kind
from tools.offline import FAKE_SECRETS, unwrap_secret

LKE = "linode:index/lkeCluster:LkeCluster"
LINODE_PROVIDER = "pulumi:providers:linode"
BUCKET = "linode:index/objectStorageBucket:ObjectStorageBucket"
RANDOM_ID = "random:index/randomId:RandomId"


@pytest.mark.parametrize("stack", STACKS)
def test_every_linode_label_of_every_resource_is_one_the_api_accepts(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    checked = [(r.name, kind, label) for r in run.resources for kind, label in labels_of(r.type, r.inputs)]
    assert {kind for _, kind, _ in checked} >= {"instance", "firewall", "firewall_rule", "vpc", "vpc_subnet",
                                                "lke_cluster"}
    problems = [f"{name}: {p}" for name, kind, label in checked for p in label_problems(kind, label)]
    assert problems == []


@pytest.mark.parametrize("stack", STACKS)
def test_labels_of_one_kind_are_unique_in_the_stack(stack: str, program_runs: ProgramRuns) -> None:
    seen: dict[tuple[str, str], str] = {}
    for record in program_runs[stack].resources:
        for kind, label in labels_of(record.type, record.inputs):
            if kind == "firewall_rule":
                continue
            assert (kind, label) not in seen, f"{kind} label {label} used by {seen[(kind, label)]} and {record.name}"
            seen[(kind, label)] = record.name


@pytest.mark.parametrize("stack", STACKS)
def test_the_lke_cluster_is_managed_by_a_v4beta_provider_with_the_stack_s_secret_token(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    (cluster,) = run.of_type(LKE)
    assert cluster.provider is not None, "the cluster must have an explicit provider"
    provider = run.by_urn()[cluster.provider.rsplit("::", 1)[0]]
    assert provider.type == LINODE_PROVIDER
    assert provider.inputs["apiVersion"] == "v4beta"
    token, secret = unwrap_secret(provider.inputs["token"])
    assert secret and "token" in provider.secret_inputs
    assert token == FAKE_SECRETS["linode:token"]  # the stack's linode:token config, nothing else


@pytest.mark.parametrize("stack", stacks_of_kind("production"))
def test_production_s_enterprise_cluster_sends_its_beta_fields_through_v4beta(
    stack: str, program_runs: ProgramRuns
) -> None:
    run = program_runs[stack]
    (cluster,) = run.of_type(LKE)
    assert cluster.inputs["tier"] == "enterprise" and cluster.inputs.get("vpcId")
    assert cluster.provider is not None
    assert run.by_urn()[cluster.provider.rsplit("::", 1)[0]].inputs["apiVersion"] == "v4beta"


@pytest.mark.parametrize("stack", STACKS)
def test_the_cluster_version_is_resolved_from_what_lke_offers_and_never_pushed_back(
    stack: str, program_runs: ProgramRuns
) -> None:
    (cluster,) = program_runs[stack].of_type(LKE)
    settings = settings_of(stack).kubernetes
    offered = LKE_VERSIONS[settings.tier]  # what the mocked get_lke_versions answers offline
    assert cluster.inputs["k8sVersion"] in offered
    if settings.version != LATEST:
        assert cluster.inputs["k8sVersion"].lstrip("v").startswith(settings.version + ".") or (
            cluster.inputs["k8sVersion"] == settings.version
        )
    # LKE upgrades clusters itself; a refresh must not turn that into a downgrade.
    assert "k8sVersion" in cluster.ignore_changes


@pytest.mark.parametrize("stack", STACKS)
def test_the_kubernetes_api_admits_operators_and_the_ci_runner(stack: str, program_runs: ProgramRuns) -> None:
    (cluster,) = program_runs[stack].of_type(LKE)
    acl = cluster.inputs["controlPlane"]["acl"]
    assert acl["enabled"] is True
    admitted = set(acl["addresses"][0]["ipv4s"]) | set(acl["addresses"][0].get("ipv6s") or [])
    settings = settings_of(stack)
    assert admitted == {str(c) for c in (*settings.admin_cidrs, *settings.ci_cidrs)}


@pytest.mark.parametrize("stack", stacks_of_kind("staging", "production"))
def test_pipeline_stacks_name_the_ci_runner_s_egress(stack: str) -> None:
    assert settings_of(stack).ci_cidrs, f"Pulumi.{stack}.yaml: the deploy pipeline needs ci_cidrs"


@pytest.mark.parametrize("stack", STACKS)
def test_every_vm_s_user_data_fits_linode_s_limit_with_real_size_keys(stack: str, program_runs: ProgramRuns) -> None:
    sizes = {}
    for vm in program_runs[stack].of_type(INSTANCE):
        metadatas, _ = unwrap_secret(vm.inputs["metadatas"])
        encoded = metadatas[0]["userData"]
        text = base64.b64decode(encoded).decode()
        if "BEGIN CERTIFICATE" in text:  # the mocks hand out real-size PEMs (tools/mock_pki)
            assert "MIIG" in text or "MIIF" in text, "user data carries a toy certificate"
        sizes[vm.name] = len(encoded)
    over = {name: size for name, size in sizes.items() if size > USER_DATA_LIMIT_BYTES}
    assert over == {}, f"user data over {USER_DATA_LIMIT_BYTES} bytes (base64): {over}"


@pytest.mark.parametrize("stack", [s for s in STACKS if settings_of(s).operations.backups.enabled])
def test_the_backup_bucket_name_has_a_stable_random_suffix(stack: str, program_runs: ProgramRuns) -> None:
    run = program_runs[stack]
    (bucket,) = run.of_type(BUCKET)
    suffix = next(r for r in run.of_type(RANDOM_ID) if r.name.endswith("-suffix"))
    base = settings_of(stack).label("backups")
    assert bucket.inputs["label"] == f"{base}-{suffix.outputs['hex']}"
    assert suffix.inputs["keepers"] == {"label": base, "region": settings_of(stack).operations.backups.bucket_region}
    assert suffix.protect == bucket.protect == settings_of(stack).production


@pytest.mark.parametrize("stack", STACKS)
def test_the_ingress_release_is_destroyed_before_the_cluster(stack: str, program_runs: ProgramRuns) -> None:
    """Pulumi deletes dependents first: the release (and its LoadBalancer Service, whose
    NodeBalancer the cloud controller removes) goes while the cluster still runs."""
    run = program_runs[stack]
    (cluster,) = run.of_type(LKE)
    release = run.named("ingress-traefik")
    assert cluster.urn in release.depends_on and release.provider is not None
    provider = run.by_urn()[release.provider.rsplit("::", 1)[0]]
    assert provider.type == "pulumi:providers:kubernetes" and cluster.urn in provider.depends_on


@pytest.mark.parametrize("stack", STACKS)
def test_the_region_has_every_capability_the_stack_relies_on(stack: str) -> None:
    settings = settings_of(stack)
    facts = REGION_FACTS.get(settings.region)
    assert facts is not None, f"components/linode/catalog.py has no REGION_FACTS for {settings.region}"
    needed = {CAPABILITY_VPC, CAPABILITY_LKE, CAPABILITY_METADATA, CAPABILITY_DISK_ENCRYPTION}
    if settings.kubernetes.tier == "enterprise":
        needed.add(CAPABILITY_LKE_ENTERPRISE)
    if any(service.nodes > 1 for service in settings.data.services.values()):
        needed.add(CAPABILITY_PLACEMENT_GROUPS)
    if settings.operations.backups.enabled:
        needed.add(CAPABILITY_OBJECT_STORAGE)
    assert needed <= facts.capabilities
    assert facts.source and facts.checked
