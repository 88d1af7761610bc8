"""platform-infra: one complete environment per stack (dev, staging, prod) on Linode.

Thin on purpose: read the settings, build the tiers in dependency order, export outputs.
Every size comes from Pulumi.<stack>.yaml; every decision lives in components/.
"""

from __future__ import annotations

import pulumi

from components.data.tier import build_data_tier
from components.foundation.address_plan import plan_addresses
from components.foundation.bastion import Bastion, BastionArgs
from components.foundation.cloud_init import BaseHardening, base_cloud_config
from components.foundation.network import Network, NetworkArgs
from components.kubernetes.manifests import app_url, cluster_issuer_name
from components.kubernetes.tier import build_kubernetes_tier
from components.operations.maintenance import maintenance_cloud_config
from components.operations.tier import build_operations_tier
from components.settings.stack_config import load_stack_config

settings, secrets = load_stack_config()
plan = plan_addresses(settings.network)

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
        extra_cloud_config=maintenance_cloud_config(settings.operations.maintenance.window),
        maintenance_policy=settings.operations.maintenance.host_maintenance_policy,
    ),
)

# --- data tier ------------------------------------------------------------------------
# Operations step 1 first: its RoleAddons (exporters, backup timers, log shipping) go onto the data VMs.
operations = build_operations_tier(settings, secrets, plan)
data_tier = build_data_tier(
    settings,
    plan,
    network,
    bastion_address=bastion.address,
    base_cloud_config=base_cloud_config(BaseHardening(ssh_keys=settings.ssh_keys, hostname=settings.label("data"))),
    addons=operations.addons,
)
for _name, _value in data_tier.exports().items():
    pulumi.export(_name, _value)

# --- kubernetes tier ------------------------------------------------------------------
kubernetes = build_kubernetes_tier(settings, plan, network, data_tier.connections, settings.tags("lke"), secrets)
pulumi.export("kubeconfig", kubernetes.kubeconfig)  # secret: admin credentials of the cluster
pulumi.export("kubernetes_cluster_id", kubernetes.cluster.cluster_id)
pulumi.export("app_namespace", kubernetes.namespace)
if (url := app_url(settings.kubernetes)) is not None:
    pulumi.export("app_url", url)  # what the deployment's end-to-end smoke check calls

# --- operations -----------------------------------------------------------------------
# Step 2: backup windows on the data VMs, monitoring and logs in the cluster.
operations.attach(
    data_instance_ids=data_tier.instance_ids(),
    kubernetes_provider=kubernetes.provider,
    ingress_class=kubernetes.ingress_class,
    cluster_issuer=cluster_issuer_name(settings.kubernetes),
    node_names=data_tier.connections.node_names,
    host_aliases=data_tier.connections.host_aliases(),
)
for _name, _value in operations.exports.items():
    pulumi.export(_name, _value)

# --- outputs -----------------------------------------------------------------------------
pulumi.export("stack", settings.stack)
pulumi.export("region", settings.region)
pulumi.export("vpc_id", network.vpc_id)
pulumi.export("subnets", {tier: subnet.cidr_str for tier, subnet in plan.subnets.items()})
pulumi.export("bastion_public_ipv4", bastion.public_ipv4)
pulumi.export("bastion_vpc_address", bastion.address)
pulumi.export("ssh_jump", bastion.public_ipv4.apply(lambda ip: f"ssh -J ops@{ip} ops@<vpc address>"))
