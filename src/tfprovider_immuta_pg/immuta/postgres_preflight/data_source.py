"""immuta_postgres_preflight: can this server be registered, and what would it take?"""

from __future__ import annotations

from typing import Any

from ...framework.provider import Context
from ..base import AccessDataSource
from .schema import PREFLIGHT_SCHEMA, PreflightState


class PreflightDataSource(AccessDataSource):
    type_name = "immuta_postgres_preflight"
    schema = PREFLIGHT_SCHEMA

    def read(self, config: dict[str, Any], ctx: Context) -> PreflightState:
        from . import worker  # psycopg stays off the plugin's startup path

        return worker.read(self.access, config, ctx)
