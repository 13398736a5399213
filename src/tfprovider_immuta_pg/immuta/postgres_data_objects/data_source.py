"""immuta_postgres_data_objects: the data objects a connection registered, filterable."""

from __future__ import annotations

from typing import Any

from ...framework.provider import Context
from ..base import AccessDataSource
from .schema import DATA_OBJECTS_SCHEMA, DataObjectsState


class DataObjectsDataSource(AccessDataSource):
    type_name = "immuta_postgres_data_objects"
    schema = DATA_OBJECTS_SCHEMA

    def read(self, config: dict[str, Any], ctx: Context) -> DataObjectsState:
        from . import worker  # psycopg stays off the plugin's startup path

        return worker.read(self.access, config, ctx)
