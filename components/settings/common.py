"""Shared base for every settings model: strict, immutable, no unknown keys."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Config sections refuse unknown keys so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(Exception):
    """A stack config the program refuses; the message is what the operator reads.

    Every entry point (the program, the offline preview) stops on it with this one message and
    no traceback. Its lines have the shape `<key>: got <value>; allowed: <what is allowed>`.
    """


class KeyedError(ValueError):
    """A validator's error that names its own key, value and what is allowed.

    `key` is relative to the model that raises it (the loader prefixes the model's own place in
    the config, e.g. `kubernetes.` for KubernetesSettings); `value` is the offending value, shown
    with repr. The three parts are kept as attributes, never packed into one string, so a value
    or an allowed text with any character in it survives intact.
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"{key}: got {value!r}; {allowed}")
        self.key = key
        self.value = value
        self.allowed = allowed if allowed.startswith("allowed") else f"allowed: {allowed}"


class StackRequired:
    """Field metadata: a stack file must write this key even though the model has a default.

    The defaults keep the models easy to build in tests; a stack, though, never takes a size
    from code (a prod file without `kubernetes.pool` must not get dev's one small node). The
    loader walks the models for these markers. `unless` names a sibling key whose presence makes
    this one unnecessary (a pool's `count` when it has an `autoscaler`); `unless_false` names a
    sibling switch that, written as false, makes it unnecessary (`retention_days` of disabled
    backups).
    """

    def __init__(self, unless: str | None = None, unless_false: str | None = None) -> None:
        self.unless = unless
        self.unless_false = unless_false

    def exempt(self, section: dict[str, Any]) -> bool:
        if self.unless is not None and section.get(self.unless) is not None:
            return True
        return self.unless_false is not None and section.get(self.unless_false) is False
