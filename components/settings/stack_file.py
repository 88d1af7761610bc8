"""A stack file as the operator wrote it: YAML syntax, duplicated keys, namespaces.

Pulumi hands the program its config already parsed, so a key written twice in
`Pulumi.<stack>.yaml` reaches the program once, with one of the two values, and nobody is told.
This module reads the file itself with a loader that refuses duplicates (PyYAML composes the
node tree first, so every mapping is checked with its line numbers), and checks that every key
sits in a namespace the program knows. Pure: no Pulumi, so the program and the offline engine
call the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from components.settings.common import ConfigError

# Config namespaces besides the project's own: the providers the program uses, and Pulumi's
# own settings (`pulumi:disable-default-providers`, ...).
PROVIDER_NAMESPACES = ("docker", "kubernetes", "linode", "pulumi", "random", "tls")


def _duplicates(node: yaml.Node, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            here = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append(
                    f"{here}: got a second value at line {line} (the first is at line {seen[key]}); "
                    "allowed: each key once (YAML keeps only one of the two, silently)"
                )
            else:
                seen[key] = line
            found += _duplicates(value_node, here)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _duplicates(item, f"{path}.{index}")
    return found


def parse_stack_text(text: str, name: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file's text, or one ConfigError naming what is wrong."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"{name}: not valid YAML{where} ({problem}); allowed: a YAML mapping with a config: key"
        ) from None
    duplicated = [line.removeprefix("config.") for line in _duplicates(root, "")] if root is not None else []
    if duplicated:
        raise ConfigError("\n".join(f"{name}: {line}" for line in duplicated))
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{name}: got a {type(doc).__name__}; allowed: a YAML mapping with a config: key")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{name}: config: got a {type(config).__name__}; allowed: a mapping of config keys")
    return config


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of `path` (secure values stay `{"secure": ...}`)."""
    if not path.is_file():
        raise ConfigError(
            f"{path.name}: missing; allowed: a stack file beside Pulumi.yaml "
            f"(`pulumi stack init {path.name.removeprefix('Pulumi.').removesuffix('.yaml')}` creates one)"
        )
    return parse_stack_text(path.read_text(), path.name)


def namespace_errors(project: str, keys: Iterable[str]) -> list[str]:
    """One line per config key outside the project's and the providers' namespaces."""
    lines: list[str] = []
    known = ", ".join(f"{ns}:" for ns in (project, *PROVIDER_NAMESPACES))
    for key in sorted(keys):
        namespace, colon, name = key.partition(":")
        if not colon:
            lines.append(
                f"{key}: got a key without a namespace; allowed: {project}:{key} "
                f"(every key is namespaced: {known})"
            )
        elif namespace != project and namespace not in PROVIDER_NAMESPACES:
            lines.append(f"{key}: got the namespace {namespace!r}; allowed: one of {known} (check the spelling)")
        elif not name:
            lines.append(f"{key}: got an empty key name; allowed: {namespace}:<name>")
    return lines
