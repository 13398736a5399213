"""The plain-Python faces of a provider: resources, data sources, functions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .capabilities import UNDECLARED, ClientCapabilities
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


class LogFunction(Protocol):
    def __call__(self, level: str, message: str, **fields: Any) -> None: ...


def no_log(level: str, message: str, **fields: Any) -> None:
    """The log of a context made outside a provider process (tests, tools)."""


@dataclass
class Context:
    """What one request carries besides its values."""

    diags: Diagnostics = field(default_factory=Diagnostics)
    private: bytes = b""
    config: Any = None  # the resource configuration (write-only values live only here)
    stop: StopSignal = field(default_factory=StopSignal)
    log: LogFunction = no_log  # debug lines for TF_LOG_PROVIDER; never values, never secrets
    client: ClientCapabilities = UNDECLARED  # what the Terraform asking said it supports

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Cancelled()


State = TypeVar("State")


class Resource(Generic[State]):
    """One resource type: its schema, its plan-time rules and the work of each operation.

    `State` is the resource's state as a TypedDict: every attribute and block of the schema,
    known (null where absent). The framework (see `lifecycle`) calls:

    - `validate(config, diags)`: rules across attributes; values may be UNKNOWN.
    - `modify_plan(prior, planned, config, ctx)`: after defaults, RequiresReplace and the
      other plan modifiers ran; adjust `planned` in place (computed values the apply will
      change become UNKNOWN). `prior` is None on create. No writes here.
    - `create(planned, ctx)` and `update(prior, planned, ctx)`: do the work and return the
      new state. `planned` may hold UNKNOWN for computed values; the framework keeps every
      value the plan knew and takes only the unknown ones from the result.
    - `read(state, ctx)`: the object as it is now. Return None only when it is gone for
      certain (Terraform then drops it from state and the next plan creates it again);
      when the answer cannot be had (server unreachable, credentials refused) raise, never
      return None.
    - `delete(state, ctx)`: remove it; something already gone is success.
    - `import_state(import_id, ctx)`: the state of an existing object; the next plan must be
      empty when the configuration matches it.

    Diagnostics: raise `ProviderError(summary, detail, path)` to stop with one error (the
    operation then changes nothing in Terraform's state); add warnings (or further errors)
    with `ctx.diags`. Private state: `ctx.private` holds bytes Terraform keeps beside the
    state and never shows (the previous value on entry); set it in `read`, `modify_plan`,
    `create` or `update` to remember what the state must not hold, such as a salted hash
    of a write-only secret. `ctx.config` is the configuration: write-only values exist only
    there.
    """

    type_name: str = ""
    schema: Schema
    # The oldest Terraform release that handles this resource (see framework.versions).
    minimum_terraform: str | None = None

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute rules; `config` may hold UNKNOWN values."""

    def modify_plan(
        self, prior: State | None, planned: dict[str, Any], config: dict[str, Any], ctx: Context
    ) -> None:
        """Adjust `planned` in place after the framework's rules ran."""

    def create(self, planned: dict[str, Any], ctx: Context) -> State:
        raise ProviderError(
            f"{self.type_name}: create is not implemented yet",
            "This version of the provider declares the resource but cannot create it yet; "
            "nothing was written.",
        )

    def read(self, state: State, ctx: Context) -> State | None:
        return state

    def update(self, prior: State, planned: dict[str, Any], ctx: Context) -> State:
        raise ProviderError(
            f"{self.type_name}: update is not implemented yet",
            "This version of the provider cannot update it yet; nothing was changed.",
        )

    def delete(self, state: State, ctx: Context) -> None:
        raise ProviderError(
            f"{self.type_name}: delete is not implemented yet",
            "This version of the provider cannot delete it yet; nothing was removed.",
        )

    def import_state(self, import_id: str, ctx: Context) -> State:
        raise ProviderError(f"{self.type_name} cannot be imported")

    def upgrade_state(self, version: int, state: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Bring a state written by schema `version` to the current schema."""
        return state


class Worker(Protocol[State]):
    """The work behind a resource, made for one request: the operations of `Resource`."""

    def create(self, planned: dict[str, Any]) -> State: ...

    def read(self, state: State) -> State | None: ...

    def update(self, prior: State, planned: dict[str, Any]) -> State: ...

    def delete(self, state: State) -> None: ...

    def import_state(self, import_id: str) -> State: ...


class WorkerResource(Resource[State]):
    """A resource whose operations are done by a `Worker` made for each request.

    `worker` imports the worker's module on first use, so what the work needs (a database
    driver, a cloud SDK) stays out of the processes that only validate and plan.
    """

    def worker(self, ctx: Context) -> Worker[State]:
        raise NotImplementedError

    def create(self, planned: dict[str, Any], ctx: Context) -> State:
        return self.worker(ctx).create(planned)

    def read(self, state: State, ctx: Context) -> State | None:
        return self.worker(ctx).read(state)

    def update(self, prior: State, planned: dict[str, Any], ctx: Context) -> State:
        return self.worker(ctx).update(prior, planned)

    def delete(self, state: State, ctx: Context) -> None:
        self.worker(ctx).delete(state)

    def import_state(self, import_id: str, ctx: Context) -> State:
        return self.worker(ctx).import_state(import_id)


class DataSource:
    """A data source: `read(config, ctx)` returns the configuration with computed values."""

    type_name: str = ""
    schema: Schema

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute rules; `config` may hold UNKNOWN values."""

    def read(self, config: dict[str, Any], ctx: Context) -> Any:
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
    resources: dict[str, Resource[Any]]
    data_sources: dict[str, DataSource]
    functions: dict[str, Function]

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Cross-attribute rules on the provider block."""

    def configure(self, config: dict[str, Any], diags: Diagnostics) -> None:
        """Keep the configuration; must not open connections."""
