"""The tfplugin6.Provider service: every RPC Terraform 1.11 calls."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..framework.diagnostics import Diagnostics, ProviderError
from ..framework.plan import plan_change, validate_values
from ..framework.provider import Context, DataSource, FunctionError, Provider, Resource, StopSignal
from ..framework.schema import Schema
from ..framework.values import UNKNOWN, is_wholly_known
from . import logs
from .codec import CodecError, json_to_value
from .convert import (
    diagnostics_to_proto,
    function_to_proto,
    path_to_proto,
    schema_to_proto,
    value_from_proto,
    value_to_proto,
)
from .gen import tfplugin6_pb2 as pb

CAPABILITIES = pb.ServerCapabilities(
    plan_destroy=True, get_provider_schema_optional=True, move_resource_state=False
)


def guarded(operation: str, diags: Diagnostics, body: Callable[[], Any]) -> Any:
    """Run `body`; any failure becomes a diagnostic, a traceback only a debug log line."""
    try:
        return body()
    except ProviderError as exc:
        diags.error(exc.summary, exc.detail, exc.path)
    except CodecError as exc:
        diags.error("Malformed value from Terraform", f"{operation}: {exc}")
    except Exception as exc:
        logs.log("debug", f"{operation} failed", traceback=traceback.format_exc())
        diags.error(
            f"Unexpected provider error during {operation}",
            f"{type(exc).__name__}: {exc}\n\nThis is a bug in the provider; the debug log "
            "(TF_LOG_PROVIDER=DEBUG) has the details.",
        )
    return None


class ProviderService:
    """Each method takes the request message and a context it ignores (gRPC's signature)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.stop_signal = StopSignal()
        self._schema_response: pb.GetProviderSchema.Response | None = None

    # ------------------------------------------------------------ metadata

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(
            server_capabilities=CAPABILITIES,
            resources=[
                pb.GetMetadata.ResourceMetadata(type_name=n) for n in self.provider.resources
            ],
            data_sources=[
                pb.GetMetadata.DataSourceMetadata(type_name=n) for n in self.provider.data_sources
            ],
            functions=[pb.GetMetadata.FunctionMetadata(name=n) for n in self.provider.functions],
        )

    def GetProviderSchema(self, request, context):
        if self._schema_response is None:
            p = self.provider
            self._schema_response = pb.GetProviderSchema.Response(
                provider=schema_to_proto(p.schema),
                resource_schemas={n: schema_to_proto(r.schema) for n, r in p.resources.items()},
                data_source_schemas={
                    n: schema_to_proto(d.schema) for n, d in p.data_sources.items()
                },
                functions={n: function_to_proto(f) for n, f in p.functions.items()},
                server_capabilities=CAPABILITIES,
            )
        return self._schema_response

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response(
            functions={n: function_to_proto(f) for n, f in self.provider.functions.items()}
        )

    # ------------------------------------------------------------ provider

    def ValidateProviderConfig(self, request, context):
        diags = Diagnostics()

        def body() -> None:
            config = value_from_proto(request.config, self.provider.schema.value_type)
            validate_values(self.provider.schema, config, diags)
            self.provider.validate(config, diags)

        guarded("provider validation", diags, body)
        return pb.ValidateProviderConfig.Response(diagnostics=diagnostics_to_proto(diags))

    def ConfigureProvider(self, request, context):
        diags = Diagnostics()

        def body() -> None:
            config = value_from_proto(request.config, self.provider.schema.value_type)
            validate_values(self.provider.schema, config, diags)
            self.provider.validate(config, diags)
            if not diags.has_errors:
                self.provider.configure(config, diags)

        guarded("provider configuration", diags, body)
        return pb.ConfigureProvider.Response(diagnostics=diagnostics_to_proto(diags))

    def StopProvider(self, request, context):
        logs.log("info", "StopProvider: cancelling operations in flight")
        self.stop_signal.stop()
        return pb.StopProvider.Response()

    # ------------------------------------------------------------ resources

    def _resource(self, type_name: str) -> Resource:
        resource = self.provider.resources.get(type_name)
        if resource is None:
            raise ProviderError(
                f"Unknown resource type {type_name!r}",
                "This provider offers: " + ", ".join(sorted(self.provider.resources)),
            )
        return resource

    def _context(self, diags: Diagnostics, private: bytes = b"", config: Any = None) -> Context:
        return Context(diags=diags, private=private, config=config, stop=self.stop_signal)

    @staticmethod
    def _validate(owner: Resource | DataSource, raw: pb.DynamicValue, diags: Diagnostics) -> None:
        config = value_from_proto(raw, owner.schema.value_type)
        validate_values(owner.schema, config, diags)
        owner.validate(config, diags)

    def ValidateResourceConfig(self, request, context):
        diags = Diagnostics()
        guarded(
            f"validation of {request.type_name}",
            diags,
            lambda: self._validate(self._resource(request.type_name), request.config, diags),
        )
        return pb.ValidateResourceConfig.Response(diagnostics=diagnostics_to_proto(diags))

    def UpgradeResourceState(self, request, context):
        diags = Diagnostics()

        def body() -> pb.DynamicValue:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            if not request.raw_state.json:
                raise ProviderError(
                    f"Cannot upgrade {request.type_name} state",
                    "The stored state is in the legacy flatmap format, which this provider "
                    "never wrote. Remove the resource from state and import it again.",
                )
            raw = json.loads(request.raw_state.json)
            if request.version > resource.schema.version:
                raise ProviderError(
                    f"{request.type_name} state was written by a newer provider",
                    f"State schema version {request.version} is newer than this provider's "
                    f"{resource.schema.version}; upgrade the provider.",
                )
            if request.version < resource.schema.version:
                raw = resource.upgrade_state(request.version, raw, self._context(diags))
            return value_to_proto(json_to_value(raw, ty), ty)

        state = guarded(f"state upgrade of {request.type_name}", diags, body)
        return pb.UpgradeResourceState.Response(
            upgraded_state=state, diagnostics=diagnostics_to_proto(diags)
        )

    def ReadResource(self, request, context):
        diags = Diagnostics()
        private = request.private

        def body() -> pb.DynamicValue:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            state = value_from_proto(request.current_state, ty)
            if state is None:
                return value_to_proto(None, ty)
            ctx = self._context(diags, request.private)
            new_state = resource.read(state, ctx)
            nonlocal private
            private = ctx.private
            return value_to_proto(new_state, ty)

        state = guarded(f"read of {request.type_name}", diags, body)
        if state is None:  # keep the state as it was when the read failed
            state = request.current_state
        return pb.ReadResource.Response(
            new_state=state, private=private, diagnostics=diagnostics_to_proto(diags)
        )

    def PlanResourceChange(self, request, context):
        diags = Diagnostics()
        response = pb.PlanResourceChange.Response()

        def body() -> None:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            prior = value_from_proto(request.prior_state, ty)
            proposed = value_from_proto(request.proposed_new_state, ty)
            config = value_from_proto(request.config, ty)
            planned, replace = plan_change(resource.schema, prior, proposed, config)
            ctx = self._context(diags, request.prior_private, config)
            if planned is not None:
                resource.modify_plan(prior, planned, config, ctx)
            response.planned_state.CopyFrom(value_to_proto(planned, ty))
            response.requires_replace.extend(path_to_proto(p) for p in replace)
            response.planned_private = ctx.private

        guarded(f"plan of {request.type_name}", diags, body)
        response.diagnostics.extend(diagnostics_to_proto(diags))
        return response

    def ApplyResourceChange(self, request, context):
        diags = Diagnostics()
        response = pb.ApplyResourceChange.Response()

        def body() -> None:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            prior = value_from_proto(request.prior_state, ty)
            planned = value_from_proto(request.planned_state, ty)
            config = value_from_proto(request.config, ty)
            ctx = self._context(diags, request.planned_private, config)
            started = time.monotonic()
            if planned is None:
                resource.delete(prior, ctx)
                new_state = None
            elif prior is None:
                new_state = settle(planned, resource.create(planned, ctx), resource.schema, diags)
            else:
                new_state = settle(
                    planned, resource.update(prior, planned, ctx), resource.schema, diags
                )
            logs.log(
                "debug",
                f"apply of {request.type_name} done",
                seconds=round(time.monotonic() - started, 4),
            )
            response.new_state.CopyFrom(value_to_proto(new_state, ty))
            response.private = ctx.private

        guarded(f"apply of {request.type_name}", diags, body)
        if diags.has_errors and not response.HasField("new_state"):
            # Nothing changed: hand back the prior state (and its private data) to keep.
            response.new_state.CopyFrom(request.prior_state)
            response.private = request.planned_private
        response.diagnostics.extend(diagnostics_to_proto(diags))
        return response

    def ImportResourceState(self, request, context):
        diags = Diagnostics()
        imported = []

        def body() -> None:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            ctx = self._context(diags)
            partial = resource.import_state(request.id, ctx)
            state = {name: partial.get(name) for name in ty.attributes}
            imported.append(
                pb.ImportResourceState.ImportedResource(
                    type_name=request.type_name,
                    state=value_to_proto(state, ty),
                    private=ctx.private,
                )
            )

        guarded(f"import of {request.type_name}", diags, body)
        return pb.ImportResourceState.Response(
            imported_resources=imported, diagnostics=diagnostics_to_proto(diags)
        )

    def MoveResourceState(self, request, context):
        diags = Diagnostics()
        diags.error(
            "Moving resource state is not supported",
            f"{request.source_type_name} cannot be moved to {request.target_type_name} by this "
            "provider; remove the old resource from state and import the new one.",
        )
        return pb.MoveResourceState.Response(diagnostics=diagnostics_to_proto(diags))

    # ------------------------------------------------------------ data sources

    def _data_source(self, type_name: str) -> DataSource:
        source = self.provider.data_sources.get(type_name)
        if source is None:
            raise ProviderError(f"Unknown data source {type_name!r}")
        return source

    def ValidateDataResourceConfig(self, request, context):
        diags = Diagnostics()
        guarded(
            f"validation of data source {request.type_name}",
            diags,
            lambda: self._validate(self._data_source(request.type_name), request.config, diags),
        )
        return pb.ValidateDataResourceConfig.Response(diagnostics=diagnostics_to_proto(diags))

    def ReadDataSource(self, request, context):
        diags = Diagnostics()

        def body() -> pb.DynamicValue:
            source = self._data_source(request.type_name)
            ty = source.schema.value_type
            config = value_from_proto(request.config, ty)
            state = source.read(config, self._context(diags, config=config))
            return value_to_proto({name: state.get(name) for name in ty.attributes}, ty)

        state = guarded(f"read of data source {request.type_name}", diags, body)
        return pb.ReadDataSource.Response(state=state, diagnostics=diagnostics_to_proto(diags))

    # ------------------------------------------------------------ ephemeral resources (none)

    def _no_ephemeral(self, type_name: str) -> list[pb.Diagnostic]:
        diags = Diagnostics()
        diags.error(
            f"Unknown ephemeral resource type {type_name!r}",
            "This provider offers no ephemeral resources.",
        )
        return diagnostics_to_proto(diags)

    def ValidateEphemeralResourceConfig(self, request, context):
        return pb.ValidateEphemeralResourceConfig.Response(
            diagnostics=self._no_ephemeral(request.type_name)
        )

    def OpenEphemeralResource(self, request, context):
        return pb.OpenEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    def RenewEphemeralResource(self, request, context):
        return pb.RenewEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    def CloseEphemeralResource(self, request, context):
        return pb.CloseEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    # ------------------------------------------------------------ functions

    def CallFunction(self, request, context):
        function = self.provider.functions.get(request.name)
        if function is None:
            return pb.CallFunction.Response(
                error=pb.FunctionError(text=f"Unknown function {request.name!r}")
            )
        if len(request.arguments) != len(function.parameters):
            return pb.CallFunction.Response(
                error=pb.FunctionError(
                    text=f"{request.name} takes {len(function.parameters)} arguments, "
                    f"got {len(request.arguments)}"
                )
            )
        args = []
        pairs = zip(request.arguments, function.parameters, strict=True)
        for index, (raw, param) in enumerate(pairs):
            try:
                args.append(value_from_proto(raw, param.type))
            except CodecError as exc:
                return _function_error(str(exc), index)
            if args[-1] is None and not param.allow_null:
                return _function_error(f"argument {param.name} must not be null", index)
        try:
            result = function.call(*args)
        except FunctionError as exc:
            return _function_error(exc.text, exc.argument)
        except Exception as exc:
            logs.log("debug", f"function {request.name} failed", traceback=traceback.format_exc())
            return _function_error(f"unexpected error in {request.name}: {exc}", None)
        return pb.CallFunction.Response(result=value_to_proto(result, function.returns))


def _function_error(text: str, argument: int | None) -> pb.CallFunction.Response:
    error = pb.FunctionError(text=text)
    if argument is not None:
        error.function_argument = argument
    return pb.CallFunction.Response(error=error)


def settle(planned: Any, result: Any, schema: Schema, diags: Diagnostics) -> Any:
    """The new state: planned known values kept as planned, unknowns filled from `result`.

    Terraform rejects an apply whose result contradicts a known planned value;
    keeping the plan's values is what the resource promised. Anything still
    unknown is a provider bug, reported rather than sent.
    """
    merged = _merge(planned, result)
    if not is_wholly_known(merged):
        diags.error(
            "Provider left values unknown after apply",
            "This is a bug in the provider: some computed attributes were not filled in.",
        )
        merged = _strip_unknown(merged)
    for path, attr, _, parent in schema.block.walk(merged):
        if attr.write_only:
            parent[path[-1]] = None
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
