"""immuta_postgres_connection's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import (
    Attribute,
    Block,
    Check,
    NestedBlock,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ...framework.types import NUMBER, STRING, List
from .. import rules, shared_schema

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
        "dedicated Immuta database.\n\n"
        "**Privileges.** The registering user is a superuser, or holds what Immuta documents "
        "(CREATEROLE; CONNECT, USAGE, SELECT, INSERT, UPDATE, DELETE, TRUNCATE WITH GRANT "
        "OPTION on what it protects) and what keeping the registration takes: CREATE on the "
        "Immuta database (or the ownership of its schema `immuta`, once created). Create "
        "checks them all before writing anything and lists what is missing with the GRANT "
        'statements that fix it; `on_missing_privileges = "skip"` cannot waive CREATEROLE '
        "or the Immuta database's privileges.\n\n"
        "**Crawl.** Every database that accepts connections is crawled, except the Immuta "
        "database and templates; partitions are registered as tables beside their "
        "partitioned table.\n\n"
        "**Refresh** warns, without planning a change, when the server version changed, when "
        "the user lost superuser, CREATEROLE or CONNECT WITH GRANT OPTION, and when it lost "
        "USAGE or a table privilege (WITH GRANT OPTION) on a governed schema or object: the "
        "warning names a few and counts the rest. That costs nothing while nothing changed "
        "(a digest of each database's privileges is compared with the one taken at the last "
        "crawl); after a change, the server lists only what the user lacks. A registration "
        "crawled by an earlier provider (state store version 3 or older) gets this check "
        "after its next apply. A registration gone (its row, or the whole Immuta database) "
        "is removed from state, so the next plan creates it again; apply then fails clearly "
        "while the Immuta database does not exist.\n\n"
        "**Failures.** Every refusal of PostgreSQL is reported with the server, the database "
        "and the fix. Transient ones (serialization failure, deadlock, lock timeout, the "
        "session ended by an administrator, no free connection slot, a pooled connection "
        "found broken) are retried: the whole transaction again, at most 6 attempts within "
        "30 s, waiting 0.25 s and then twice as long each time, stopped at once by an "
        "interrupt.",
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
            "hostname": shared_schema.hostname(),
            "port": shared_schema.port("PostgreSQL port, 1 to 65535.", default=5432),
            "database": shared_schema.database(
                "The Immuta database: a database created for Immuta, which must already exist. "
                "Every other database on the server is registered through it. Changing it "
                "replaces the connection.",
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


class Filter(TypedDict):
    databases: list[str] | None
    schemas: list[str] | None
    objects: list[str] | None


class ConnectionState(TypedDict):
    display_name: str
    deployment_type: str
    hostname: str
    port: int
    database: str
    on_missing_privileges: str
    object_sync: str
    object_sync_status: str
    include: Filter | None
    exclude: Filter | None
    id: str
    server_version: str
    auth_method: str
    username: str
    databases: list[str]
    data_object_count: int
    skipped_object_count: int
    registered_at: str


# Changing one of these re-checks the server and crawls it again.
REVERIFIED_ON_UPDATE = (
    "hostname",
    "port",
    "deployment_type",
    "on_missing_privileges",
    "object_sync",
    "include",
    "exclude",
)
# What a crawl finds: unknown in a plan that crawls again.
RECRAWLED = (
    "server_version",
    "auth_method",
    "username",
    "databases",
    "data_object_count",
    "skipped_object_count",
)
