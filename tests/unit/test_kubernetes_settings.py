"""KubernetesSettings: bad workload and cluster config is refused with a message naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import SettingsError, load_settings
from components.settings.kubernetes import (
    KubernetesSettings,
    kubernetes_minor,
    offered_minors,
)
from tools.offline import stack_values

API: dict[str, Any] = {
    "name": "api",
    "image": "registry.example.com/loopi-api:1.0.0",
    "port": 8080,
    "replicas": 2,
    "readiness_path": "/ready",
    "liveness_path": "/health",
}


def _load_with_kubernetes(section: dict[str, Any]) -> None:
    """Validate the dev stack's real config with these keys of its kubernetes section replaced."""
    values: dict[str, Any] = stack_values("dev")
    values["kubernetes"] = {**json.loads(values["kubernetes"]), **section}
    load_settings("platform-infra", "dev", values)


def _error_for(section: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as caught:
        _load_with_kubernetes(section)
    return str(caught.value)


def test_defaults_are_an_api_and_a_queue_worker() -> None:
    settings = KubernetesSettings()
    api, worker = settings.workloads
    assert (api.name, api.port, api.cpu_request, api.memory_request) == ("api", 8080, "100m", "128Mi")
    assert (api.cpu_limit, api.memory_limit) == ("500m", "512Mi")
    assert worker.port is None and worker.health_command
    assert settings.ingress.rate_limit.requests_per_second == 10
    assert settings.ingress.rate_limit.burst == 20


def test_untagged_image_is_refused_naming_the_key() -> None:
    message = _error_for({"workloads": [{**API, "image": "registry.example.com/loopi-api"}]})
    assert "platform-infra:kubernetes.workloads.0.image" in message
    assert "tag or digest" in message


def test_latest_tag_is_refused() -> None:
    message = _error_for({"workloads": [{**API, "image": "registry.example.com/loopi-api:latest"}]})
    assert "platform-infra:kubernetes.workloads.0.image" in message
    assert "not 'latest'" in message


def test_digest_pinned_image_is_accepted() -> None:
    settings = KubernetesSettings.model_validate(
        {"workloads": [{**API, "image": "registry.example.com/loopi-api@sha256:" + "a" * 64}]}
    )
    assert settings.workloads[0].image is not None and "@sha256:" in settings.workloads[0].image


def test_zero_replicas_is_refused() -> None:
    message = _error_for({"workloads": [{**API, "replicas": 0}]})
    assert "platform-infra:kubernetes.workloads.0.replicas" in message


def test_min_above_max_is_refused() -> None:
    workload = {**API, "min_replicas": 5, "max_replicas": 3}
    del workload["replicas"]
    message = _error_for({"workloads": [workload]})
    assert message == "platform-infra:kubernetes.workloads.0.min_replicas: got 5; allowed: at most max_replicas (3)"


def test_invalid_ingress_host_is_refused() -> None:
    message = _error_for({"workloads": [{**API, "ingress": {"host": "Not A Host!"}}]})
    assert "platform-infra:kubernetes.workloads.0.ingress.host" in message
    assert "fully qualified" in message


def test_unknown_kubernetes_version_is_refused_listing_the_offered_ones() -> None:
    message = _error_for({"version": "1.99"})
    assert "platform-infra:kubernetes.version: got '1.99'" in message
    assert ", ".join(offered_minors("standard")) in message


def test_version_must_be_offered_by_the_chosen_tier() -> None:
    message = _error_for({"tier": "enterprise", "version": "v1.31.9+lke7"})  # a build, not a minor
    assert "platform-infra:kubernetes.version" in message
    assert offered_minors("enterprise")[-1] in message


def test_standard_tier_refuses_the_autoscaler_because_the_data_firewalls_admit_deployed_nodes() -> None:
    message = _error_for({"tier": "standard", "pool": {"autoscaler": {"min": 3, "max": 6}}})
    assert "platform-infra:kubernetes.pool.autoscaler" in message
    assert "private address as of the last deploy" in message


def test_data_path_follows_the_tier() -> None:
    assert KubernetesSettings(tier="standard").data_path == "private-network"
    enterprise = KubernetesSettings(tier="enterprise", version=offered_minors("enterprise")[-1])
    assert enterprise.data_path == "vpc"


def test_pool_autoscaler_min_above_max_is_refused() -> None:
    message = _error_for(
        {"tier": "enterprise", "version": "1.36", "pool": {"autoscaler": {"min": 5, "max": 3}}}
    )
    assert "platform-infra:kubernetes.pool.autoscaler" in message


def test_ha_load_balancer_needs_two_controller_replicas() -> None:
    message = _error_for({"ingress": {"load_balancer": "ha", "replicas": 1}})
    assert message == (
        "platform-infra:kubernetes.ingress.replicas: got 1; "
        "allowed: 2 or more when load_balancer is ha (one node can fail)"
    )


def test_tls_without_acme_email_is_refused() -> None:
    message = _error_for({"tls": {"mode": "letsencrypt-production"}})
    assert "platform-infra:kubernetes.tls" in message and "acme_email" in message


def test_workload_env_cannot_shadow_the_connection_secret() -> None:
    message = _error_for({"workloads": [{**API, "env": {"DATABASE_URL": "mysql://x"}}]})
    assert "platform-infra:kubernetes.workloads.0.env" in message


def test_build_without_registry_is_refused() -> None:
    workload = {**API, "build": {"context": "./app", "repository": "loopi-api", "tag": "1.0.0"}}
    del workload["image"]
    message = _error_for({"workloads": [workload]})
    assert "registry" in message


def test_autoscaled_pool_counts_its_maximum_against_the_instance_limit() -> None:
    settings = KubernetesSettings.model_validate(
        {
            "tier": "enterprise",
            "version": offered_minors("enterprise")[-1],
            "pool": {"plan": "g6-dedicated-4", "autoscaler": {"min": 3, "max": 6}},
        }
    )
    assert settings.instance_count() == 6
    assert settings.pool.initial_count == 3


def test_kubernetes_minor_is_taken_from_lke_version_strings() -> None:
    assert kubernetes_minor("v1.31.9+lke7") == "1.31"
    assert kubernetes_minor("1.34") == "1.34"
