"""Builds the data tier for __main__: internal CA (when TLS is on) and the three clusters.

Rolling out a configuration change to existing data VMs. The VMs are stateful: VmGroup ignores
changes to their user data (and image), so `pulumi up` after a change to a renderer, a password
or a certificate updates the state but never rebuilds a database VM (and prod VMs are protected).
Such a change reaches a running node like this, one node at a time, replicas/joiners first and
the primary (node 0) last, inside the stack's maintenance window:

1. `pulumi preview --diff` shows the new user data; render the node's new files locally with the
   same functions (`components/*_config.py`) or read them from the preview.
2. Over SSH through the bastion (`ssh -J ops@<bastion> ops@<vpc address>`), replace the files
   the change touches (e.g. /etc/mysql/mariadb.conf.d/60-platform.cnf, /etc/redis/redis.conf,
   /etc/rabbitmq/rabbitmq.conf, the TLS files) and restart that one service
   (`systemctl restart mariadb|redis-server|redis-sentinel|rabbitmq-server`).
3. Wait until the node is back in the cluster (Galera `wsrep_local_state_comment=Synced`, Redis
   `master_link_status:up`, `rabbitmqctl cluster_status` / `rabbitmq-queues check_if_node_is_quorum_critical`)
   before the next node.
A node can also be rebuilt from scratch (it rejoins from its peers: Galera SST, Redis full sync,
RabbitMQ join) with `pulumi up --replace <urn of that node>` after lifting `protect` for it; do
that for one node at a time and never for the last copy of the data (standalone dev nodes).
Rotating a password changes every node's files and the app's Secret together: run it as above,
then roll the application Deployments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.data.connections import DataConnections
from components.data.internal_ca import InternalCa, InternalCaArgs
from components.data.placement import DataCluster, DataClusterArgs, DataVmPlacement
from components.data.services import SERVICES
from components.foundation.address_plan import AddressPlan
from components.foundation.network import Network
from components.foundation.role_addon import RoleAddon
from components.settings import StackSettings


@dataclass(frozen=True)
class DataTier:
    connections: DataConnections
    clusters: dict[str, DataCluster]  # role -> cluster, in registry order
    ca: InternalCa | None

    @property
    def ca_certificate(self) -> pulumi.Output[str] | None:
        return self.ca.ca_certificate_pem if self.ca else None

    def instance_ids(self) -> dict[str, pulumi.Output[list[str]]]:
        """Per data role, the Linode ids of its VMs (operations: backup windows)."""
        return {role: cluster.vms.instance_ids for role, cluster in self.clusters.items()}

    def exports(self) -> dict[str, Any]:
        """Stack outputs: connection settings for the app tier, secret as a whole (they hold passwords)."""
        settings = {role: connection.exports() for role, connection in self.connections.services.items()}
        exports: dict[str, Any] = {"data_connections": pulumi.Output.secret(settings)}
        if self.connections.ca_certificate is not None:
            exports["data_ca_certificate"] = self.connections.ca_certificate
        return exports


def build_data_tier(
    settings: StackSettings,
    plan: AddressPlan,
    network: Network,
    bastion_address: str,
    base_cloud_config: Mapping[str, Any],
    app_sources: pulumi.Input[Sequence[str]],
    addons: Mapping[str, RoleAddon] | None = None,
    tags: Sequence[str] = (),
) -> DataTier:
    """`app_sources`: where the app tier connects from (foundation.reach.app_source_cidrs)."""
    data = settings.data
    addons = addons or {}
    unknown = set(addons) - set(SERVICES)
    if unknown:
        raise ValueError(f"addons for unknown data roles: {sorted(unknown)}; known: {', '.join(SERVICES)}")
    ca = (
        InternalCa("data-ca", InternalCaArgs(common_name=f"{settings.project} {settings.stack} data tier internal CA"))
        if data.tls
        else None
    )
    services = data.services
    clusters: dict[str, DataCluster] = {}
    for role, entry in SERVICES.items():
        service_settings = services[role]
        placement = DataVmPlacement(
            label_prefix=settings.label(role),
            region=settings.region,
            image=settings.image,
            vpc_subnet_id=network.subnet_ids["data"],
            addresses=plan.addresses(role, service_settings.nodes),
            app_sources=app_sources,
            bastion_address=bastion_address,
            base_cloud_config=base_cloud_config,
            tags=[*settings.tags(role), *tags],
            protect=settings.production,
            disk_encryption=data.disk_encryption,
            backups_enabled=data.backups_enabled,
            ca=ca,
            addon=addons.get(role),
            private_network=settings.kubernetes.data_path == "private-network",
            app_namespace=settings.kubernetes.namespace.name,
        )
        clusters[role] = entry.cluster(role, DataClusterArgs(role=role, settings=service_settings, placement=placement))
    connections = DataConnections(
        services={role: cluster.connection for role, cluster in clusters.items()},
        ca_certificate=ca.ca_certificate_pem if ca else None,
        # Clients use each node's name (hostname, certificate SAN); pods pin it to dial_addresses.
        node_names={address: name for cluster in clusters.values() for address, name in cluster.hostnames.items()},
        dial_addresses={name: dial for cluster in clusters.values() for name, dial in cluster.dial_addresses.items()},
    )
    return DataTier(connections=connections, clusters=clusters, ca=ca)
