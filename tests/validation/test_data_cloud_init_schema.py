"""cloud-init's own schema check over the user data of every data VM: every stack, every topology."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from components.data.cloud_init import TlsMaterial
from components.data.mariadb.config import MARIADB_TLS_FILES, MariaDbCredentials, MariaDbNodeArgs, mariadb_cloud_config
from components.data.rabbitmq.config import (
    RABBITMQ_TLS_FILES,
    RabbitMqCredentials,
    RabbitMqNodeArgs,
    node_names_for,
    rabbitmq_cloud_config,
)
from components.data.redis.config import REDIS_TLS_FILES, RedisNodeArgs, redis_cloud_config
from components.foundation.cloud_init import BaseHardening, base_cloud_config, merge_cloud_configs, render_cloud_config
from tests.helpers import STACKS, ProgramRuns, data_vms, settings_of
from tools.offline import assert_valid_cloud_config, unwrap_secret

ADDRESSES = [f"10.0.1.{10 + i}" for i in range(5)]
MATERIAL = TlsMaterial(
    ca_pem="-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    cert_pem="-----BEGIN CERTIFICATE-----\nNODE\n-----END CERTIFICATE-----\n",
    key_pem="-----BEGIN EC PRIVATE KEY-----\nKEY\n-----END EC PRIVATE KEY-----\n",
)
BASE = base_cloud_config(BaseHardening(ssh_keys=["ssh-ed25519 AAAAC3Nza test"], hostname="data"))


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_of_every_data_vm_is_secret_and_passes_cloud_init_schema(
    stack: str, tmp_path: Path, program_runs: ProgramRuns
) -> None:
    vms = data_vms(program_runs[stack])
    assert len(vms) == settings_of(stack).data.vm_count
    for vm in vms:
        metadatas, secret = unwrap_secret(vm.inputs["metadatas"])
        assert secret, f"{vm.name}: user data carries credentials and must be a secret"
        text = base64.b64decode(metadatas[0]["userData"]).decode()
        assert text.startswith("#cloud-config\n")
        assert_valid_cloud_config(text, tmp_path / f"{stack}-{vm.name}.yaml")


def topology_documents() -> list[tuple[str, dict[str, Any]]]:
    """Node 0 and the last node of each service at 1, 2, 3 and 5 nodes, with and without TLS."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for nodes in (1, 2, 3, 5):
        for index in sorted({0, nodes - 1}):
            for tls in (False, True):
                material = MATERIAL if tls else None
                label = f"{nodes}-{index}-{'tls' if tls else 'plain'}"
                args = MariaDbNodeArgs(
                    nodes=nodes,
                    index=index,
                    addresses=ADDRESSES[:nodes],
                    credentials=MariaDbCredentials("root", "app", "repl"),
                    tls=MARIADB_TLS_FILES if tls else None,
                )
                docs.append(
                    (f"mariadb-{label}", mariadb_cloud_config(args, database="app", app_user="app", tls=material))
                )
                redis = RedisNodeArgs(
                    nodes=nodes,
                    index=index,
                    addresses=ADDRESSES[:nodes],
                    password="pw",
                    tls=REDIS_TLS_FILES if tls else None,
                )
                docs.append((f"redis-{label}", redis_cloud_config(redis, material)))
                rabbit = RabbitMqNodeArgs(
                    index=index,
                    addresses=ADDRESSES[:nodes],
                    node_names=node_names_for([f"mq-{i}" for i in range(nodes)]),
                    credentials=RabbitMqCredentials("admin", "app", "COOKIE"),
                    tls=RABBITMQ_TLS_FILES if tls else None,
                )
                docs.append((f"rabbitmq-{label}", rabbitmq_cloud_config(rabbit, material)))
    return docs


def test_every_topology_document_merged_with_the_base_passes_cloud_init_schema(tmp_path: Path) -> None:
    documents = topology_documents()
    assert len(documents) == 42
    for name, doc in documents:
        assert_valid_cloud_config(render_cloud_config(merge_cloud_configs(BASE, doc)), tmp_path / f"{name}.yaml")
