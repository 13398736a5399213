"""Diagnostics: what the user reads, each with an optional attribute path."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """A map key or set element key step in an attribute path."""

    value: str


PathStep = str | int | Key
Path = tuple[PathStep, ...]

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    summary: str
    detail: str = ""
    path: Path | None = None
    function_argument: int | None = None


def path_text(path: Path) -> str:
    """A path as Terraform spells it in expressions: `members["alice"].postgres.mode`."""
    text = ""
    for step in path:
        if isinstance(step, str):
            text += f".{step}" if text else step
        elif isinstance(step, Key):
            text += "[" + json.dumps(step.value, ensure_ascii=False) + "]"
        else:
            text += f"[{step}]"
    return text


def located(detail: str, path: Path | None) -> str:
    """`detail`, led by the path when it goes into an element of a list, set or map.

    Terraform points a diagnostic at the configuration line of its attribute, but inside
    a nested attribute (`members = { "alice" = {...} }`) it can only point at the whole
    resource: the detail has to say which element is meant.
    """
    if not path or all(isinstance(step, str) for step in path):
        return detail
    where = path_text(path)
    return detail if where in detail else f"{where}: {detail}"


class Diagnostics(list[Diagnostic]):
    def error(self, summary: str, detail: str = "", path: Path | None = None) -> None:
        self.append(Diagnostic(ERROR, summary, located(detail, path), path))

    def warning(self, summary: str, detail: str = "", path: Path | None = None) -> None:
        self.append(Diagnostic(WARNING, summary, located(detail, path), path))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == ERROR for d in self)


class ProviderError(Exception):
    """Raise from resource code to stop with one error diagnostic."""

    def __init__(self, summary: str, detail: str = "", path: Path | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.path = path
