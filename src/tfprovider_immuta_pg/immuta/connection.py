"""immuta_postgres_connection: a PostgreSQL 16/17 server registered as a governed connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..framework.diagnostics import Diagnostics
from ..framework.provider import Context, Resource
from ..framework.schema import (
    Attribute,
    Block,
    Check,
    NestedBlock,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ..framework.types import NUMBER, STRING, List
from ..framework.values import UNKNOWN
from . import checks, rules
from .ids import ConnectionId

if TYPE_CHECKING:
    from .provider import ImmutaProvider
    from .registrar import Registrar

ON_MISSING_PRIVILEGES = ("error", "skip")
OBJECT_SYNC_MODES = ("plan", "off")
SYNCED = "in sync"
SYNC_OFF = "off"


def _filter_block(what: str) -> Block:
    def patterns(kind: str) -> Attribute:
        return Attribute(
            List(STRING),
            f"{what}: {kind} name patterns (shell-style `*`, `?`, `[...]`; case-sensitive).",
            optional=True,
        )

    return Block(
        description=f"{what} (crawl filters; by default every supported object is registered). "
        "An object is registered when its database, schema and name match every `include` "
        "list given and no `exclude` pattern.",
        attributes={
            "databases": patterns("database"),
            "schemas": patterns("schema"),
            "objects": patterns("object"),
        },
    )


_KEEP = [UseStateForUnknown()]

CONNECTION_SCHEMA = Schema(
    Block(
        description="Registers a PostgreSQL 16 or 17 server as a governed Immuta connection: "
        "checks the server version and the registering user's privileges, crawls every "
        "supported object, and records the registration in the `immuta` schema of the "
        "dedicated Immuta database.",
        attributes={
            "display_name": Attribute(
                STRING,
                "Name of the connection (Immuta's `connectionKey`), used in data source names. "
                "Not blank, no `.`, none of the restricted words ("
                + ", ".join(rules.RESTRICTED_WORDS)
                + ") in any case; unique within the Immuta database. Changing it replaces the "
                "connection.",
                required=True,
                validators=[
                    Check(
                        rules.display_name_problem, "a valid display name", "Invalid display name"
                    )
                ],
                plan_modifiers=[RequiresReplace()],
            ),
            "deployment_type": Attribute(
                STRING,
                "`self_managed`, `aurora`, `rds` or `neon`. `self_managed` and `neon` allow "
                "only `password` authentication.",
                required=True,
                validators=[OneOf(rules.DEPLOYMENT_TYPES)],
            ),
            "hostname": Attribute(
                STRING,
                "Hostname or IP address of the PostgreSQL server.",
                required=True,
                validators=[checks.HOSTNAME],
            ),
            "port": Attribute(
                NUMBER,
                "PostgreSQL port, 1 to 65535.",
                default=5432,
                validators=[checks.PORT],
            ),
            "database": Attribute(
                STRING,
                "The Immuta database: a database created for Immuta, which must already exist. "
                "Every other database on the server is registered through it. Changing it "
                "replaces the connection.",
                required=True,
                validators=[checks.DATABASE_NAME],
                plan_modifiers=[RequiresReplace()],
            ),
            "on_missing_privileges": Attribute(
                STRING,
                "`error` (default): refuse to register and list every missing privilege with "
                "the GRANT statements that fix it. `skip`: register only the objects the "
                "credentials can govern and report how many were skipped.",
                default="error",
                validators=[OneOf(ON_MISSING_PRIVILEGES)],
            ),
            "object_sync": Attribute(
                STRING,
                "`plan` (default): each refresh checks cheaply (a catalog fingerprint per "
                "database) for objects added or dropped since the last crawl; when there are "
                "any, the plan shows an in-place sync naming how many, and apply re-crawls and "
                "registers the difference. `off`: no tracking.",
                default="plan",
                validators=[OneOf(OBJECT_SYNC_MODES)],
            ),
            "object_sync_status": Attribute(
                STRING,
                "`in sync`, `off`, or how many objects appeared and disappeared since the last "
                "crawl (found by refresh; the next apply syncs them).",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "id": Attribute(
                STRING,
                "`hostname:port/database/display_name`; the import ID.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "server_version": Attribute(
                STRING,
                "PostgreSQL server version found at registration.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "auth_method": Attribute(
                STRING,
                "Authentication method the connection was registered with.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "username": Attribute(
                STRING,
                "PostgreSQL user the connection was registered with.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "databases": Attribute(
                List(STRING),
                "Databases registered through this connection.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "data_object_count": Attribute(
                NUMBER,
                "Number of registered data objects.",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "skipped_object_count": Attribute(
                NUMBER,
                "Objects skipped for missing privileges (`on_missing_privileges = skip`).",
                computed=True,
                plan_modifiers=_KEEP,
            ),
            "registered_at": Attribute(
                STRING,
                "When the connection was registered (RFC 3339, UTC).",
                computed=True,
                plan_modifiers=_KEEP,
            ),
        },
        blocks={
            "include": NestedBlock(_filter_block("Register only what matches")),
            "exclude": NestedBlock(_filter_block("Leave out what matches")),
        },
    )
)


class ConnectionResource(Resource):
    type_name = "immuta_postgres_connection"
    schema = CONNECTION_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def modify_plan(self, prior: dict | None, planned: dict, config: dict, ctx: Context) -> None:
        check_deployment_auth(planned.get("deployment_type"), self.provider, ctx.diags)
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

    def _registrar(self, ctx: Context) -> Registrar:
        from .registrar import Registrar  # psycopg stays off the plugin's startup path

        return Registrar(self.provider, ctx)

    def create(self, planned: dict, ctx: Context) -> dict:
        return self._registrar(ctx).register(planned)

    def read(self, state: dict, ctx: Context) -> dict | None:
        return self._registrar(ctx).refresh(state)

    def update(self, prior: dict, planned: dict, ctx: Context) -> dict:
        return self._registrar(ctx).reregister(prior, planned)

    def delete(self, state: dict, ctx: Context) -> None:
        self._registrar(ctx).unregister(state)

    def import_state(self, import_id: str, ctx: Context) -> dict:
        return self._registrar(ctx).import_connection(import_id)


REVERIFIED_ON_UPDATE = (
    "hostname",
    "port",
    "deployment_type",
    "on_missing_privileges",
    "object_sync",
    "include",
    "exclude",
)
RECRAWLED = (
    "server_version",
    "auth_method",
    "username",
    "databases",
    "data_object_count",
    "skipped_object_count",
)


def expected_sync_status(planned: dict) -> object:
    """Right after a crawl the registration is in sync (or sync is off)."""
    mode = planned.get("object_sync")
    return UNKNOWN if mode is UNKNOWN else (SYNCED if mode == "plan" else SYNC_OFF)


def planned_id(planned: dict) -> object:
    parts = [planned.get(a) for a in ("hostname", "port", "database", "display_name")]
    if any(p is UNKNOWN or p is None for p in parts):
        return UNKNOWN
    return str(ConnectionId(*parts))


def check_deployment_auth(deployment: object, provider: ImmutaProvider, diags: Diagnostics) -> None:
    """self_managed and neon servers take password authentication only."""
    settings = provider.settings
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
