"""The immuta provider: its block, and every resource, data source and function it offers.

This is the one module that knows every resource folder; the folders know only the shared
modules beside them.
"""

from __future__ import annotations

from typing import Any

from ..framework.diagnostics import Diagnostics
from ..framework.provider import Provider
from . import settings
from .access import Access
from .aws_service_principal.resource import ServicePrincipalResource
from .functions import all_functions
from .postgres_connection.resource import ConnectionResource
from .postgres_data_objects.data_source import DataObjectsDataSource
from .postgres_preflight.data_source import PreflightDataSource
from .settings import PROVIDER_SCHEMA
from .user_mapping.resource import UserMappingResource
from .user_mappings.resource import UserMappingsResource


class ImmutaProvider(Provider):
    schema = PROVIDER_SCHEMA

    def __init__(self) -> None:
        self.access = Access()
        self.resources = {
            r.type_name: r
            for r in (
                ConnectionResource(self.access),
                UserMappingResource(self.access),
                UserMappingsResource(self.access),
                ServicePrincipalResource(self.access),
            )
        }
        self.data_sources = {
            d.type_name: d
            for d in (PreflightDataSource(self.access), DataObjectsDataSource(self.access))
        }
        self.functions = all_functions()

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        settings.validate(config, diags)

    def configure(self, config: dict[str, Any], diags: Diagnostics) -> None:
        self.access.configure(settings.settings_from(config, diags))
