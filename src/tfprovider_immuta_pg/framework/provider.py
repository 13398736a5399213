"""The plain-Python faces of a provider: resources, data sources, functions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostics, ProviderError
from .schema import Schema
from .types import CtyType


class Cancelled(ProviderError):
    def __init__(self) -> None:
        super().__init__(
            "Operation cancelled",
            "Terraform asked the provider to stop (interrupt or timeout); the operation was "
            "abandoned before it finished. Run the command again to converge.",
        )


class StopSignal:
    """Set once Terraform calls StopProvider; work in flight is told through callbacks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def stop(self) -> None:
        with self._lock:
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            with suppress(Exception):  # a cancel that fails must not stop the others
                callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    @contextmanager
    def cancelling(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run `callback` if a stop arrives while the block runs."""
        with self._lock:
            self._callbacks.append(callback)
            stopped = self._event.is_set()
        try:
            if stopped:
                raise Cancelled()
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)


@dataclass
class Context:
    """What one request carries besides its values."""

    diags: Diagnostics = field(default_factory=Diagnostics)
    private: bytes = b""
    config: Any = None  # the resource configuration (write-only values live only here)
    stop: StopSignal = field(default_factory=StopSignal)

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Cancelled()


class Resource:
    type_name: str = ""
    schema: Schema

    def validate(self, config: dict, diags: Diagnostics) -> None:
        """Cross-attribute rules; `config` may hold UNKNOWN values."""

    def modify_plan(self, prior: dict | None, planned: dict, config: dict, ctx: Context) -> None:
        """Adjust `planned` in place after the framework's rules ran."""

    def create(self, planned: dict, ctx: Context) -> dict:
        raise ProviderError(
            f"{self.type_name}: create is not implemented yet",
            "This version of the provider declares the resource but cannot create it yet; "
            "nothing was written.",
        )

    def read(self, state: dict, ctx: Context) -> dict | None:
        return state

    def update(self, prior: dict, planned: dict, ctx: Context) -> dict:
        raise ProviderError(
            f"{self.type_name}: update is not implemented yet",
            "This version of the provider cannot update it yet; nothing was changed.",
        )

    def delete(self, state: dict, ctx: Context) -> None:
        raise ProviderError(
            f"{self.type_name}: delete is not implemented yet",
            "This version of the provider cannot delete it yet; nothing was removed.",
        )

    def import_state(self, import_id: str, ctx: Context) -> dict:
        raise ProviderError(f"{self.type_name} cannot be imported")

    def upgrade_state(self, version: int, state: dict, ctx: Context) -> dict:
        """Bring a state written by schema `version` to the current schema."""
        return state


class DataSource:
    type_name: str = ""
    schema: Schema

    def validate(self, config: dict, diags: Diagnostics) -> None:
        """Cross-attribute rules; `config` may hold UNKNOWN values."""

    def read(self, config: dict, ctx: Context) -> dict:
        raise NotImplementedError


@dataclass
class Parameter:
    name: str
    type: CtyType
    description: str = ""
    allow_null: bool = False


class FunctionError(Exception):
    def __init__(self, text: str, argument: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.argument = argument


class Function:
    name: str = ""
    summary: str = ""
    description: str = ""
    parameters: Sequence[Parameter] = ()
    returns: CtyType

    def call(self, *args: Any) -> Any:
        raise NotImplementedError


class Provider:
    """A provider: its own schema, what it configures, and what it offers."""

    schema: Schema
    resources: dict[str, Resource]
    data_sources: dict[str, DataSource]
    functions: dict[str, Function]

    def validate(self, config: dict, diags: Diagnostics) -> None:
        """Cross-attribute rules on the provider block."""

    def configure(self, config: dict, diags: Diagnostics) -> None:
        """Keep the configuration; must not open connections."""
