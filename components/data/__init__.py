"""The data tier: the registry of data services, their clusters, and the data -> app contract."""

from components.data.connections import DataConnections, ServiceConnection
from components.data.placement import DataCluster, DataClusterArgs, DataVmPlacement
from components.data.plugin import DataService
from components.data.services import SERVICES, stack_address_plan
from components.data.tier import DataTier, build_data_tier

__all__ = [
    "SERVICES",
    "DataCluster",
    "DataClusterArgs",
    "DataConnections",
    "DataService",
    "DataTier",
    "DataVmPlacement",
    "ServiceConnection",
    "build_data_tier",
    "stack_address_plan",
]
