"""Terraform values in Python: None is null, UNKNOWN is "known after apply"."""

from __future__ import annotations

from typing import Any


class _Unknown:
    """The single unknown value; it is not equal to any known value, itself aside."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        raise TypeError("an unknown value has no truth value; test `is UNKNOWN` first")

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


class MalformedValue(ValueError):
    """A value from Terraform that does not fit the schema it should follow."""


def is_wholly_known(value: Any) -> bool:
    """True when neither the value nor anything nested in it is unknown."""
    if value is UNKNOWN:
        return False
    if isinstance(value, dict):
        return all(is_wholly_known(v) for v in value.values())
    if isinstance(value, list):
        return all(is_wholly_known(v) for v in value)
    return True
