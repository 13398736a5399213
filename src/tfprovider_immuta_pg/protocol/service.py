"""The tfplugin6.Provider service: every RPC Terraform 1.11 calls.

Each method decodes its request, calls the framework (`framework.lifecycle` holds what plan,
apply, read and import mean) and encodes the answer; nothing here knows a rule of Terraform's
beyond the messages.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from ..framework import lifecycle
from ..framework.diagnostics import Diagnostics, ProviderError
from ..framework.lifecycle import guarded
from ..framework.provider import Context, DataSource, FunctionError, Provider, Resource, StopSignal
from ..framework.versions import refuse_older
from . import logs
from .codec import CodecError, json_to_value
from .convert import (
    client_from_proto,
    diagnostics_to_proto,
    function_to_proto,
    is_null,
    path_to_proto,
    schema_to_proto,
    value_from_proto,
    value_to_proto,
)
from .gen import tfplugin6_pb2 as pb

T = TypeVar("T")

CAPABILITIES = pb.ServerCapabilities(
    plan_destroy=True, get_provider_schema_optional=True, move_resource_state=False
)


class ProviderService:
    """Each method takes the request message and a context it ignores (gRPC's signature)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.stop_signal = StopSignal()
        self._schema_response: pb.GetProviderSchema.Response | None = None
        self.terraform_version = ""  # from ConfigureProvider: the release running this process

    # ------------------------------------------------------------ metadata

    def GetMetadata(
        self, request: pb.GetMetadata.Request, context: object
    ) -> pb.GetMetadata.Response:
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

    def GetProviderSchema(
        self, request: pb.GetProviderSchema.Request, context: object
    ) -> pb.GetProviderSchema.Response:
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

    def GetFunctions(
        self, request: pb.GetFunctions.Request, context: object
    ) -> pb.GetFunctions.Response:
        return pb.GetFunctions.Response(
            functions={n: function_to_proto(f) for n, f in self.provider.functions.items()}
        )

    # ------------------------------------------------------------ provider

    @staticmethod
    def _guarded(operation: str, diags: Diagnostics, body: Callable[[], T]) -> T | None:
        return guarded(operation, diags, body, logs.log)

    def _validation(
        self,
        operation: str,
        owner: Callable[[], Provider | DataSource],
        raw: pb.DynamicValue,
    ) -> list[pb.Diagnostic]:
        """The diagnostics of validating `raw` against the schema of whatever `owner` finds."""
        diags = Diagnostics()

        def body() -> None:
            found = owner()
            lifecycle.validate(found, value_from_proto(raw, found.schema.value_type), diags)

        self._guarded(operation, diags, body)
        return diagnostics_to_proto(diags)

    def ValidateProviderConfig(
        self, request: pb.ValidateProviderConfig.Request, context: object
    ) -> pb.ValidateProviderConfig.Response:
        diagnostics = self._validation("provider validation", lambda: self.provider, request.config)
        return pb.ValidateProviderConfig.Response(diagnostics=diagnostics)

    def ConfigureProvider(
        self, request: pb.ConfigureProvider.Request, context: object
    ) -> pb.ConfigureProvider.Response:
        diags = Diagnostics()
        self.terraform_version = request.terraform_version

        def body() -> None:
            config = value_from_proto(request.config, self.provider.schema.value_type)
            lifecycle.configure(self.provider, config, diags)

        self._guarded("provider configuration", diags, body)
        return pb.ConfigureProvider.Response(diagnostics=diagnostics_to_proto(diags))

    def StopProvider(
        self, request: pb.StopProvider.Request, context: object
    ) -> pb.StopProvider.Response:
        logs.log("info", "StopProvider: cancelling operations in flight")
        self.stop_signal.stop()
        return pb.StopProvider.Response()

    # ------------------------------------------------------------ resources

    def _resource(self, type_name: str) -> Resource[Any]:
        resource = self.provider.resources.get(type_name)
        if resource is None:
            raise ProviderError(
                f"Unknown resource type {type_name!r}",
                "This provider offers: " + ", ".join(sorted(self.provider.resources)),
            )
        return resource

    def _too_old(self, type_name: str, diags: Diagnostics) -> bool:
        """Whether the Terraform running this process is older than the resource allows
        (an error in `diags`): its values are then not sent back at all."""
        resource = self.provider.resources.get(type_name)
        return resource is not None and refuse_older(
            type_name, resource.minimum_terraform, self.terraform_version, diags
        )

    def _context(
        self,
        diags: Diagnostics,
        private: bytes = b"",
        config: Any = None,
        capabilities: pb.ClientCapabilities | None = None,
    ) -> Context:
        """`capabilities`: the request's client capabilities, for requests that have them."""
        context = Context(
            diags=diags, private=private, config=config, stop=self.stop_signal, log=logs.log
        )
        if capabilities is not None:
            context.client = client_from_proto(capabilities)
        return context

    def ValidateResourceConfig(
        self, request: pb.ValidateResourceConfig.Request, context: object
    ) -> pb.ValidateResourceConfig.Response:
        diags = Diagnostics()

        def body() -> None:
            resource = self._resource(request.type_name)
            config = value_from_proto(request.config, resource.schema.value_type)
            client = client_from_proto(request.client_capabilities)
            lifecycle.validate_resource(resource, config, client, diags)

        self._guarded(f"validation of {request.type_name}", diags, body)
        return pb.ValidateResourceConfig.Response(diagnostics=diagnostics_to_proto(diags))

    def UpgradeResourceState(
        self, request: pb.UpgradeResourceState.Request, context: object
    ) -> pb.UpgradeResourceState.Response:
        diags = Diagnostics()
        if self._too_old(request.type_name, diags):
            return pb.UpgradeResourceState.Response(diagnostics=diagnostics_to_proto(diags))

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
            upgraded = lifecycle.upgrade_state(resource, request.version, raw, self._context(diags))
            return value_to_proto(json_to_value(upgraded, ty), ty)

        state = self._guarded(f"state upgrade of {request.type_name}", diags, body)
        return pb.UpgradeResourceState.Response(
            upgraded_state=state, diagnostics=diagnostics_to_proto(diags)
        )

    def ReadResource(
        self, request: pb.ReadResource.Request, context: object
    ) -> pb.ReadResource.Response:
        diags = Diagnostics()
        if self._too_old(request.type_name, diags):
            return pb.ReadResource.Response(diagnostics=diagnostics_to_proto(diags))

        def body() -> pb.ReadResource.Response:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            state = value_from_proto(request.current_state, ty)
            ctx = self._context(diags, request.private, capabilities=request.client_capabilities)
            read = lifecycle.read(resource, state, ctx)
            return pb.ReadResource.Response(
                new_state=value_to_proto(read.state, ty), private=read.private
            )

        response = self._guarded(f"read of {request.type_name}", diags, body)
        if response is None:  # not even decoded: hand the state back as it came
            response = pb.ReadResource.Response(
                new_state=request.current_state, private=request.private
            )
        response.diagnostics.extend(diagnostics_to_proto(diags))
        return response

    def PlanResourceChange(
        self, request: pb.PlanResourceChange.Request, context: object
    ) -> pb.PlanResourceChange.Response:
        diags = Diagnostics()
        response = pb.PlanResourceChange.Response()
        if self._too_old(request.type_name, diags):
            response.diagnostics.extend(diagnostics_to_proto(diags))
            return response

        def body() -> None:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            config = value_from_proto(request.config, ty)
            planned = lifecycle.plan(
                resource,
                value_from_proto(request.prior_state, ty),
                # Planning needs only whether Terraform proposes a destroy (null): decoding
                # a value as large as the prior state would cost as much as that one.
                None if is_null(request.proposed_new_state) else lifecycle.PROPOSED,
                config,
                self._context(diags, request.prior_private, config, request.client_capabilities),
            )
            response.planned_state.CopyFrom(value_to_proto(planned.state, ty))
            response.requires_replace.extend(path_to_proto(p) for p in planned.requires_replace)
            response.planned_private = planned.private

        self._guarded(f"plan of {request.type_name}", diags, body)
        response.diagnostics.extend(diagnostics_to_proto(diags))
        return response

    def ApplyResourceChange(
        self, request: pb.ApplyResourceChange.Request, context: object
    ) -> pb.ApplyResourceChange.Response:
        diags = Diagnostics()

        def body() -> pb.ApplyResourceChange.Response:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            config = value_from_proto(request.config, ty)
            applied = lifecycle.apply(
                resource,
                value_from_proto(request.prior_state, ty),
                value_from_proto(request.planned_state, ty),
                self._context(diags, request.planned_private, config),
            )
            return pb.ApplyResourceChange.Response(
                new_state=value_to_proto(applied.state, ty), private=applied.private
            )

        response = self._guarded(f"apply of {request.type_name}", diags, body)
        if response is None:  # not even decoded: nothing changed, keep the prior state
            response = pb.ApplyResourceChange.Response(
                new_state=request.prior_state, private=request.planned_private
            )
        response.diagnostics.extend(diagnostics_to_proto(diags))
        return response

    def ImportResourceState(
        self, request: pb.ImportResourceState.Request, context: object
    ) -> pb.ImportResourceState.Response:
        diags = Diagnostics()
        imported = []
        if self._too_old(request.type_name, diags):
            return pb.ImportResourceState.Response(diagnostics=diagnostics_to_proto(diags))

        def body() -> None:
            resource = self._resource(request.type_name)
            ty = resource.schema.value_type
            ctx = self._context(diags, capabilities=request.client_capabilities)
            outcome = lifecycle.import_state(resource, request.id, ctx)
            imported.append(
                pb.ImportResourceState.ImportedResource(
                    type_name=request.type_name,
                    state=value_to_proto(outcome.state, ty),
                    private=outcome.private,
                )
            )

        self._guarded(f"import of {request.type_name}", diags, body)
        return pb.ImportResourceState.Response(
            imported_resources=imported, diagnostics=diagnostics_to_proto(diags)
        )

    def MoveResourceState(
        self, request: pb.MoveResourceState.Request, context: object
    ) -> pb.MoveResourceState.Response:
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

    def ValidateDataResourceConfig(
        self, request: pb.ValidateDataResourceConfig.Request, context: object
    ) -> pb.ValidateDataResourceConfig.Response:
        diagnostics = self._validation(
            f"validation of data source {request.type_name}",
            lambda: self._data_source(request.type_name),
            request.config,
        )
        return pb.ValidateDataResourceConfig.Response(diagnostics=diagnostics)

    def ReadDataSource(
        self, request: pb.ReadDataSource.Request, context: object
    ) -> pb.ReadDataSource.Response:
        diags = Diagnostics()

        def body() -> pb.DynamicValue:
            source = self._data_source(request.type_name)
            ty = source.schema.value_type
            config = value_from_proto(request.config, ty)
            ctx = self._context(diags, config=config, capabilities=request.client_capabilities)
            state = lifecycle.read_data_source(source, config, ctx)
            return value_to_proto(state, ty)

        state = self._guarded(f"read of data source {request.type_name}", diags, body)
        return pb.ReadDataSource.Response(state=state, diagnostics=diagnostics_to_proto(diags))

    # ------------------------------------------------------------ ephemeral resources (none)

    def _no_ephemeral(self, type_name: str) -> list[pb.Diagnostic]:
        diags = Diagnostics()
        diags.error(
            f"Unknown ephemeral resource type {type_name!r}",
            "This provider offers no ephemeral resources.",
        )
        return diagnostics_to_proto(diags)

    def ValidateEphemeralResourceConfig(
        self, request: pb.ValidateEphemeralResourceConfig.Request, context: object
    ) -> pb.ValidateEphemeralResourceConfig.Response:
        return pb.ValidateEphemeralResourceConfig.Response(
            diagnostics=self._no_ephemeral(request.type_name)
        )

    def OpenEphemeralResource(
        self, request: pb.OpenEphemeralResource.Request, context: object
    ) -> pb.OpenEphemeralResource.Response:
        return pb.OpenEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    def RenewEphemeralResource(
        self, request: pb.RenewEphemeralResource.Request, context: object
    ) -> pb.RenewEphemeralResource.Response:
        return pb.RenewEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    def CloseEphemeralResource(
        self, request: pb.CloseEphemeralResource.Request, context: object
    ) -> pb.CloseEphemeralResource.Response:
        return pb.CloseEphemeralResource.Response(diagnostics=self._no_ephemeral(request.type_name))

    # ------------------------------------------------------------ functions

    def CallFunction(
        self, request: pb.CallFunction.Request, context: object
    ) -> pb.CallFunction.Response:
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
