"""What each resource operation means, between the wire and a resource's own code.

The protocol layer decodes a request, calls one of these functions and encodes what it
returns; these functions hold Terraform's rules for plan, apply, read and import, so they
can be read and tested with plain Python values:

- a failure of the resource's code becomes an error diagnostic, never an exception on the
  wire; a Python traceback goes to the debug log only;
- a read or apply that fails keeps the state (and private data) Terraform already had;
- apply returns every value the plan knew exactly as planned, and fills only what the plan
  left unknown (Terraform rejects anything else as an inconsistent result);
- import and data-source reads return every attribute of the schema (null when not given);
- a write-only attribute set in the configuration is refused, at validation and again at
  plan, when the client did not say it supports write-only attributes (see `capabilities`);
  an import that such a client could never plan says so in a warning.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .capabilities import ClientCapabilities, refuse_write_only, warn_unplannable_import
from .diagnostics import Diagnostics, Path, ProviderError
from .plan import plan_change, validate_values
from .provider import Context, DataSource, LogFunction, Provider, Resource, no_log
from .schema import Schema
from .values import UNKNOWN, MalformedValue, is_wholly_known

T = TypeVar("T")


def guarded(
    operation: str, diags: Diagnostics, body: Callable[[], T], log: LogFunction = no_log
) -> T | None:
    """Run `body`; any failure becomes a diagnostic (and None), a traceback only a log line."""
    try:
        return body()
    except ProviderError as exc:
        diags.error(exc.summary, exc.detail, exc.path)
    except MalformedValue as exc:
        diags.error("Malformed value from Terraform", f"{operation}: {exc}")
    except Exception as exc:
        log("debug", f"{operation} failed", traceback=traceback.format_exc())
        diags.error(
            f"Unexpected provider error during {operation}",
            f"{type(exc).__name__}: {exc}\n\nThis is a bug in the provider; the debug log "
            "(TF_LOG_PROVIDER=DEBUG) has the details.",
        )
    return None


def validate(owner: Provider | Resource[Any] | DataSource, config: Any, diags: Diagnostics) -> None:
    """Attribute validators, then the owner's cross-attribute rules."""
    validate_values(owner.schema, config, diags)
    owner.validate(config, diags)


def validate_resource(
    resource: Resource[Any], config: Any, client: ClientCapabilities, diags: Diagnostics
) -> None:
    """What `client` cannot carry is refused first (and nothing else checked), then as
    `validate`."""
    if not refuse_write_only(resource.type_name, resource.schema, config, client, diags):
        validate(resource, config, diags)


def configure(provider: Provider, config: Any, diags: Diagnostics) -> None:
    """The provider block, validated, then kept (no connection is opened here)."""
    validate(provider, config, diags)
    if not diags.has_errors:
        provider.configure(config, diags)


def upgrade_state(resource: Resource[Any], version: int, raw: Any, ctx: Context) -> Any:
    """A state written by schema `version`, brought to the current schema."""
    current = resource.schema.version
    if version > current:
        raise ProviderError(
            f"{resource.type_name} state was written by a newer provider",
            f"State schema version {version} is newer than this provider's {current}; "
            "upgrade the provider.",
        )
    if version < current:
        return resource.upgrade_state(version, raw, ctx)
    return raw


@dataclass
class Outcome:
    """A new state and the private data Terraform keeps beside it."""

    state: Any
    private: bytes


def read(resource: Resource[Any], state: Any, ctx: Context) -> Outcome:
    """Refresh: the resource's view now (None: gone); on failure, the state as it was."""
    if state is None:
        return Outcome(None, ctx.private)
    kept = ctx.private
    outcome = guarded(
        f"read of {resource.type_name}",
        ctx.diags,
        lambda: Outcome(resource.read(state, ctx), ctx.private),
        ctx.log,
    )
    return outcome if outcome is not None else Outcome(state, kept)


@dataclass
class Planned:
    state: Any
    requires_replace: list[Path]
    private: bytes


# What a request handler may pass as `proposed` when it only knows the proposed new state
# is not null: planning merges configuration and prior state itself (see plan.plan_change).
PROPOSED = object()


def plan(resource: Resource[Any], prior: Any, proposed: Any, config: Any, ctx: Context) -> Planned:
    """The framework's planning rules, then the resource's own `modify_plan`.

    Of `proposed` (Terraform's proposed new state) only whether it is null (a destroy)
    matters; PROPOSED stands for any value that is not. A configuration the client cannot
    carry is refused with no planned state at all, so a refused write-only value never
    travels back to Terraform.
    """
    if proposed is not None and refuse_write_only(
        resource.type_name, resource.schema, config, ctx.client, ctx.diags
    ):
        return Planned(None, [], ctx.private)
    planned, replace = plan_change(resource.schema, prior, proposed, config)
    if planned is not None:
        resource.modify_plan(prior, planned, config, ctx)
    return Planned(planned, replace, ctx.private)


def apply(resource: Resource[Any], prior: Any, planned: Any, ctx: Context) -> Outcome:
    """Create, update or delete (a null plan), and the state Terraform records after it.

    When the resource fails, the diagnostics say why and the prior state and private data
    are handed back unchanged.
    """
    kept = ctx.private
    started = time.monotonic()
    operation = f"apply of {resource.type_name}"

    def change() -> Outcome:
        if planned is None:
            resource.delete(prior, ctx)
            new_state = None
        elif prior is None:
            new_state = settle(planned, resource.create(planned, ctx), ctx.diags)
        else:
            new_state = settle(planned, resource.update(prior, planned, ctx), ctx.diags)
        ctx.log("debug", f"{operation} done", seconds=round(time.monotonic() - started, 4))
        return Outcome(new_state, ctx.private)

    outcome = guarded(operation, ctx.diags, change, ctx.log)
    return outcome if outcome is not None else Outcome(prior, kept)


def import_state(resource: Resource[Any], import_id: str, ctx: Context) -> Outcome:
    """The imported object's state, every attribute present (null when the import left it)."""
    partial = resource.import_state(import_id, ctx)
    warn_unplannable_import(resource.type_name, resource.schema, ctx.client, ctx.diags)
    return Outcome(complete(resource.schema, partial), ctx.private)


def read_data_source(source: DataSource, config: Any, ctx: Context) -> Any:
    return complete(source.schema, source.read(config, ctx))


def complete(schema: Schema, values: Any) -> dict[str, Any]:
    return {name: values.get(name) for name in schema.value_type.attributes}


def settle(planned: Any, result: Any, diags: Diagnostics) -> Any:
    """The new state: planned known values kept as planned, unknowns filled from `result`.

    Terraform rejects an apply whose result contradicts a known planned value; keeping the
    plan's values is what the resource promised (write-only values are null in every plan,
    so they stay null here). Anything still unknown is a provider bug, reported rather
    than sent.
    """
    merged = _merge(planned, result)
    if not is_wholly_known(merged):
        diags.error(
            "Provider left values unknown after apply",
            "This is a bug in the provider: some computed attributes were not filled in.",
        )
        merged = _strip_unknown(merged)
    return merged


def _merge(planned: Any, result: Any) -> Any:
    if planned is UNKNOWN:
        return result
    if isinstance(planned, dict) and isinstance(result, dict):
        return {k: _merge(v, result.get(k, UNKNOWN)) for k, v in planned.items()}
    if isinstance(planned, list) and isinstance(result, list) and len(planned) == len(result):
        return [_merge(p, r) for p, r in zip(planned, result, strict=False)]
    return planned


def _strip_unknown(value: Any) -> Any:
    if value is UNKNOWN:
        return None
    if isinstance(value, dict):
        return {k: _strip_unknown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_unknown(v) for v in value]
    return value
