"""Facts about the cloud: what Linode offers (catalog) and what it costs (pricing)."""

from components.linode.catalog import IMAGES, LINODE_PRIVATE_NETWORK, NODEBALANCER_RANGE, PLANS, VPC_REGIONS

__all__ = [
    "IMAGES",
    "LINODE_PRIVATE_NETWORK",
    "NODEBALANCER_RANGE",
    "PLANS",
    "VPC_REGIONS",
]
