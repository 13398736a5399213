"""Diagnostics: what the user reads, each with an optional attribute path."""

from __future__ import annotations

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


class Diagnostics(list[Diagnostic]):
    def error(self, summary: str, detail: str = "", path: Path | None = None) -> None:
        self.append(Diagnostic(ERROR, summary, detail, path))

    def warning(self, summary: str, detail: str = "", path: Path | None = None) -> None:
        self.append(Diagnostic(WARNING, summary, detail, path))

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
