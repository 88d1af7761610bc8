"""The Kubernetes tier: LKE, the ingress controller, cert-manager, and the application workloads."""

from components.kubernetes.manifests import app_url, cluster_issuer_name
from components.kubernetes.tier import KubernetesTier, build_kubernetes_tier, build_lke_cluster

__all__ = ["KubernetesTier", "app_url", "build_kubernetes_tier", "build_lke_cluster", "cluster_issuer_name"]
