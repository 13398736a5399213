"""immuta_postgres_connection: a PostgreSQL 16/17 server registered as a governed connection.

Plan-time rules live here; create, read, update, delete and import run in `worker.py`.
"""

from __future__ import annotations

from typing import Any

from ...framework.diagnostics import Diagnostics
from ...framework.provider import Context, Worker
from ...framework.values import UNKNOWN
from .. import rules
from ..access import Access
from ..base import AccessResource
from ..ids import ConnectionId
from .schema import (
    CONNECTION_SCHEMA,
    RECRAWLED,
    REVERIFIED_ON_UPDATE,
    SYNC_OFF,
    SYNCED,
    ConnectionState,
)


class ConnectionResource(AccessResource[ConnectionState]):
    type_name = "immuta_postgres_connection"
    schema = CONNECTION_SCHEMA

    def worker(self, ctx: Context) -> Worker[ConnectionState]:
        from .worker import ConnectionWorker  # psycopg stays off the plugin's startup path

        return ConnectionWorker(self.access, ctx)

    def modify_plan(
        self,
        prior: ConnectionState | None,
        planned: dict[str, Any],
        config: dict[str, Any],
        ctx: Context,
    ) -> None:
        check_deployment_auth(planned.get("deployment_type"), self.access, ctx.diags)
        if prior is None:
            planned["id"] = planned_id(planned)
            planned["object_sync_status"] = expected_sync_status(planned)
            return
        sync_pending = planned.get("object_sync") == "plan" and prior.get(
            "object_sync_status"
        ) not in (None, SYNCED)
        if sync_pending or any(prior.get(a) != planned.get(a) for a in REVERIFIED_ON_UPDATE):
            # The update re-checks and re-crawls the server: its findings are not known yet.
            for name in RECRAWLED:
                planned[name] = UNKNOWN
            planned["object_sync_status"] = expected_sync_status(planned)
        if prior.get("hostname") != planned.get("hostname") or prior.get("port") != planned.get(
            "port"
        ):
            planned["id"] = UNKNOWN


def expected_sync_status(planned: dict[str, Any]) -> object:
    """Right after a crawl the registration is in sync (or sync is off)."""
    mode = planned.get("object_sync")
    return UNKNOWN if mode is UNKNOWN else (SYNCED if mode == "plan" else SYNC_OFF)


def planned_id(planned: dict[str, Any]) -> object:
    parts: list[Any] = [planned.get(a) for a in ("hostname", "port", "database", "display_name")]
    if any(p is UNKNOWN or p is None for p in parts):
        return UNKNOWN
    hostname, port, database, display_name = parts
    return str(ConnectionId(hostname, port, database, display_name))


def check_deployment_auth(deployment: object, access: Access, diags: Diagnostics) -> None:
    """self_managed and neon servers take password authentication only."""
    settings = access.settings_if_configured
    if settings is None or deployment is UNKNOWN or deployment in rules.AWS_DEPLOYMENTS:
        return
    if settings.auth_method is not UNKNOWN and settings.auth_method != "password":
        diags.error(
            "Authentication method not available for this deployment type",
            f'deployment_type = "{deployment}" allows only auth_method = "password", but the '
            f'provider is configured with "{settings.auth_method}". Use a provider block (or '
            "alias) with password authentication for this server.",
            ("deployment_type",),
        )
