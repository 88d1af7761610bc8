"""Shared base for every settings model: strict, immutable, no unknown keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Config sections refuse unknown keys so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyedError(ValueError):
    """A cross-field error that names its own key, for validators that see several fields.

    The loader turns it into `<project>:<key>: got <value>; <allowed>`.
    """

    def __init__(self, key: str, value: str, allowed: str) -> None:
        super().__init__(f"{key}|{value}|{allowed}")
