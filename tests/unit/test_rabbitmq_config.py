"""The RabbitMQ renderers: clustering by node name, quorum default, VPC-only listeners, TLS-only."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import pytest

from components.data.connections import TlsFiles
from components.data.rabbitmq.config import (
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    node_names_for,
    rabbit_password_hash,
    render_definitions,
    render_hosts_entries,
    render_inter_node_tls_config,
    render_rabbitmq_conf,
    render_rabbitmq_env,
)

ADDRESSES = ["10.0.1.30", "10.0.1.31", "10.0.1.32"]
LABELS = ["p-prod-rabbitmq-0", "p-prod-rabbitmq-1", "p-prod-rabbitmq-2"]
CREDS = RabbitMqCredentials(admin_password="adminpw", app_password="apppw", erlang_cookie="COOKIE")
TLS = TlsFiles("/etc/rabbitmq/tls/ca.pem", "/etc/rabbitmq/tls/server.crt", "/etc/rabbitmq/tls/server.key")


def node(index: int, tls: TlsFiles | None = None, count: int = 3) -> RabbitMqNodeArgs:
    return RabbitMqNodeArgs(
        index=index, addresses=ADDRESSES[:count], node_names=node_names_for(LABELS[:count]), credentials=CREDS, tls=tls
    )


def conf(args: RabbitMqNodeArgs) -> dict[str, str]:
    lines = [line for line in render_rabbitmq_conf(args).splitlines() if line and not line.startswith("#")]
    return dict(line.split(" = ", 1) for line in lines)


def test_every_listener_is_bound_to_the_vpc_address() -> None:
    settings = conf(node(1))
    assert settings["listeners.tcp.default"] == "10.0.1.31:5672"
    assert settings["management.tcp.ip"] == "10.0.1.31"
    assert settings["prometheus.tcp.ip"] == "10.0.1.31"
    assert settings["distribution.listener.interface"] == "10.0.1.31"


def test_joiners_discover_every_node_name_from_the_labels() -> None:
    settings = conf(node(1))
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = [settings[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)]
    assert listed == [f"rabbit@{label}" for label in LABELS]
    assert settings["cluster_partition_handling"] == "pause_minority"


def test_the_seed_discovers_only_itself_unless_told_to_join() -> None:
    seed = conf(node(0))
    assert [k for k in seed if k.startswith("cluster_formation.classic_config.nodes.")] == [
        "cluster_formation.classic_config.nodes.1"
    ]
    assert seed["cluster_formation.classic_config.nodes.1"] == "rabbit@p-prod-rabbitmq-0"
    joining = conf(dataclasses.replace(node(0), seed=False))
    assert joining["cluster_formation.classic_config.nodes.3"] == "rabbit@p-prod-rabbitmq-2"


def test_only_node_zero_may_seed_a_fresh_cluster() -> None:
    assert "cluster_formation.discovery_retry_limit" not in conf(node(0))
    joiner = conf(node(2))
    retry_seconds = (
        int(joiner["cluster_formation.discovery_retry_limit"])
        * int(joiner["cluster_formation.discovery_retry_interval"])
        / 1000
    )
    assert retry_seconds >= 120


def test_tls_turns_off_plain_amqp_and_listens_on_5671() -> None:
    settings = conf(node(0, TLS))
    assert settings["listeners.tcp"] == "none"
    assert settings["listeners.ssl.default"] == "10.0.1.30:5671"
    assert settings["ssl_options.certfile"] == TLS.cert_file
    assert node(0, TLS).port == 5671 and node(0).port == 5672


def test_env_names_the_node_after_its_label() -> None:
    assert "NODENAME=rabbit@p-prod-rabbitmq-2\n" in render_rabbitmq_env(node(2))


def test_definitions_make_quorum_the_default_queue_type_and_have_no_guest() -> None:
    definitions = json.loads(render_definitions(node(0)))
    app_vhost = next(v for v in definitions["vhosts"] if v["name"] == "app")
    assert app_vhost["metadata"]["default_queue_type"] == "quorum"
    assert {u["name"] for u in definitions["users"]} == {"admin", "app"}
    app_permissions = [p for p in definitions["permissions"] if p["user"] == "app"]
    assert [p["vhost"] for p in app_permissions] == ["app"]


def test_password_hash_follows_rabbitmq_sha256_scheme_and_is_stable() -> None:
    encoded = rabbit_password_hash("apppw", "app")
    raw = base64.b64decode(encoded)
    salt, digest = raw[:4], raw[4:]
    assert digest == hashlib.sha256(salt + b"apppw").digest()
    assert encoded == rabbit_password_hash("apppw", "app")
    assert encoded != rabbit_password_hash("apppw", "admin")


def test_hosts_entries_resolve_every_node_name_to_its_vpc_address() -> None:
    assert render_hosts_entries(node(0)).splitlines() == [
        f"{address} {label}" for address, label in zip(ADDRESSES, LABELS, strict=True)
    ]


def test_node_names_must_be_distinct_and_qualified() -> None:
    with pytest.raises(ValueError, match="distinct"):
        RabbitMqNodeArgs(index=0, addresses=ADDRESSES[:2], node_names=["rabbit@a", "rabbit@a"], credentials=CREDS)
    with pytest.raises(ValueError, match="one node name per node"):
        RabbitMqNodeArgs(index=0, addresses=ADDRESSES, node_names=["rabbit@a"], credentials=CREDS)


def test_tls_runs_erlang_distribution_and_the_cli_over_tls_with_peer_verification() -> None:
    env = render_rabbitmq_env(node(0, TLS))
    dist = "-proto_dist inet_tls -ssl_dist_optfile /etc/rabbitmq/inter_node_tls.config"
    assert f'SERVER_ADDITIONAL_ERL_ARGS="{dist}"' in env and f'CTL_ERL_ARGS="{dist}"' in env
    assert "proto_dist" not in render_rabbitmq_env(node(0))
    options = render_inter_node_tls_config(node(0, TLS))
    assert options.count("{verify, verify_peer}") == 2 and "{fail_if_no_peer_cert, true}" in options
    assert f'{{keyfile, "{TLS.key_file}"}}' in options
    with pytest.raises(ValueError):
        render_inter_node_tls_config(node(0))


def test_metrics_listener_opens_to_every_address_only_when_asked() -> None:
    import dataclasses

    settings = conf(dataclasses.replace(node(1), metrics_interface="0.0.0.0"))
    assert settings["prometheus.tcp.ip"] == "0.0.0.0"
    # Management and Erlang distribution stay on the VPC address.
    assert settings["management.tcp.ip"] == "10.0.1.31"
    assert settings["distribution.listener.interface"] == "10.0.1.31"
