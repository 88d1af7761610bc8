"""platform-infra: one complete environment per stack on Linode (Akamai Cloud).

A bill of materials: the settings, then each tier in dependency order, then the outputs. Every
size comes from Pulumi.<stack>.yaml; every decision lives in components/.
"""

from __future__ import annotations

import pulumi

from components.data import build_data_tier, stack_address_plan
from components.foundation import (
    BaseHardening,
    Bastion,
    BastionArgs,
    Network,
    NetworkArgs,
    app_source_cidrs,
    base_cloud_config,
    lke_node_private_sources,
)
from components.kubernetes import app_url, build_kubernetes_tier, build_lke_cluster, cluster_issuer_name
from components.operations import (
    BackupStorage,
    BackupStorageArgs,
    LogPushCredentials,
    ObservabilityArgs,
    VmAddonsArgs,
    backup_windows,
    build_observability,
    log_push_url,
    maintenance_cloud_config,
    vm_addons,
)
from components.settings.stack_config import load_stack_config

settings, secrets = load_stack_config()
ops = settings.operations
plan = stack_address_plan(settings.network)

# --- foundation: network and the admin jump host ------------------------------------------
network = Network(
    "network",
    NetworkArgs(label=f"{settings.project}-{settings.stack}", region=settings.region, plan=plan),
)
bastion = Bastion(
    "bastion",
    BastionArgs(
        label_prefix=settings.label("bastion"),
        plan=settings.bastion.plan,
        region=settings.region,
        image=settings.image,
        address=plan.addresses("bastion", 1)[0],
        vpc_subnet_id=network.subnet_ids["admin"],
        admin_cidrs=settings.admin_cidr_strings,
        ssh_keys=settings.ssh_keys,
        tags=settings.tags("bastion"),
        extra_cloud_config=maintenance_cloud_config(ops.maintenance.window),
        maintenance_policy=ops.maintenance.host_maintenance_policy,
    ),
)

# --- the LKE cluster first: the data firewalls admit exactly its nodes ------------------------
cluster = build_lke_cluster(settings, plan, network, settings.tags("lke"), secrets)
app_sources = app_source_cidrs(
    settings.kubernetes,
    plan,
    lke_node_private_sources(cluster.node_instance_ids) if settings.kubernetes.data_path != "vpc" else None,
)

# --- what operations puts on the data VMs: the backup bucket and the log-push password first --
backup_storage = (
    BackupStorage(
        "backups",
        BackupStorageArgs(label=settings.label("backups"), settings=ops.backups, protect=settings.production),
    )
    if ops.backups.enabled
    else None
)
log_push = LogPushCredentials("log-push") if log_push_url(settings) else None

# --- data tier ------------------------------------------------------------------------
data_tier = build_data_tier(
    settings,
    plan,
    network,
    bastion_address=bastion.address,
    base_cloud_config=base_cloud_config(BaseHardening(ssh_keys=settings.ssh_keys, hostname=settings.label("data"))),
    app_sources=app_sources,
    addons=vm_addons(
        VmAddonsArgs(
            settings=settings, plan=plan, backup_storage=backup_storage, log_push=log_push, app_sources=app_sources
        )
    ),
)
windows = backup_windows(
    ops.backups,
    data_tier.instance_ids(),
    settings.data.node_counts,
)

# --- kubernetes tier ------------------------------------------------------------------
kubernetes = build_kubernetes_tier(settings, plan, cluster, data_tier.connections, settings.tags("lke"), secrets)

# --- monitoring and logs in the cluster ----------------------------------------------------
observability = build_observability(
    ObservabilityArgs(
        settings=settings,
        secrets=secrets,
        plan=plan,
        kubernetes_provider=kubernetes.provider,
        ingress_class=kubernetes.ingress_class,
        cluster_issuer=cluster_issuer_name(settings.kubernetes),
        log_push=log_push,
        node_names=data_tier.connections.node_names,
        host_aliases=data_tier.connections.host_aliases(),
    )
)

# --- outputs -----------------------------------------------------------------------------
for _name, _value in {**data_tier.exports(), **observability.exports}.items():
    pulumi.export(_name, _value)
if backup_storage is not None:
    pulumi.export("backup_bucket", backup_storage.bucket_name)
    pulumi.export("backup_endpoint", backup_storage.endpoint)
pulumi.export("kubeconfig", kubernetes.kubeconfig)  # secret: admin credentials of the cluster
pulumi.export("kubernetes_cluster_id", kubernetes.cluster.cluster_id)
pulumi.export("app_namespace", kubernetes.namespace)
if kubernetes.load_balancer is not None:
    pulumi.export("ingress_ipv4", kubernetes.load_balancer.ipv4)  # point DNS here when Linode does not hold the zone
if kubernetes.dns is not None:
    pulumi.export("dns_records", list(kubernetes.dns.records))
if (url := app_url(settings.kubernetes)) is not None:
    pulumi.export("app_url", url)  # what the deployment's end-to-end smoke check calls
pulumi.export("stack", settings.stack)
pulumi.export("region", settings.region)
pulumi.export("vpc_id", network.vpc_id)
pulumi.export("subnets", {tier: subnet.cidr_str for tier, subnet in plan.subnets.items()})
pulumi.export("bastion_public_ipv4", bastion.public_ipv4)
pulumi.export("bastion_vpc_address", bastion.address)
pulumi.export("ssh_jump", bastion.public_ipv4.apply(lambda ip: f"ssh -J ops@{ip} ops@<vpc address>"))
