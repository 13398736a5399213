"""Data sources: a preflight check of a server, and the registered data objects."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..framework.provider import Context, DataSource
from ..framework.schema import Attribute, Block, Check, OneOf, Schema
from ..framework.types import BOOL, NUMBER, STRING, List, Object
from . import checks, rules
from .ids import connection_id_problem

if TYPE_CHECKING:
    from .provider import ImmutaProvider

OBJECT_TYPES = ("table", "partitioned_table", "view", "materialized_view", "foreign_table")

PREFLIGHT_SCHEMA = Schema(
    Block(
        description="Checks whether a PostgreSQL server can be registered, without registering "
        "anything: version, superuser, the privileges the registering user lacks (with the "
        "GRANT statements that fix them) and whether the Immuta database is dedicated. Use it "
        "as a CI gate with a `check` block or a `postcondition` on `ready`.",
        attributes={
            "hostname": Attribute(
                STRING,
                "Hostname or IP address of the PostgreSQL server.",
                required=True,
                validators=[checks.HOSTNAME],
            ),
            "port": Attribute(
                NUMBER,
                "PostgreSQL port, 1 to 65535. Default 5432.",
                optional=True,
                validators=[checks.PORT],
            ),
            "database": Attribute(
                STRING,
                "The Immuta database the connection would use.",
                required=True,
                validators=[checks.DATABASE_NAME],
            ),
            "deployment_type": Attribute(
                STRING,
                "`self_managed` (default), `aurora`, `rds` or `neon`.",
                optional=True,
                validators=[OneOf(rules.DEPLOYMENT_TYPES)],
            ),
            "server_version": Attribute(STRING, "PostgreSQL server version.", computed=True),
            "supported": Attribute(
                BOOL, "Whether Immuta supports this version (16 or 17).", computed=True
            ),
            "username": Attribute(STRING, "The user the provider connects as.", computed=True),
            "superuser": Attribute(BOOL, "Whether that user is a superuser.", computed=True),
            "auth_method_allowed": Attribute(
                BOOL,
                "Whether the provider's auth_method is allowed for deployment_type.",
                computed=True,
            ),
            "missing_privileges": Attribute(
                List(STRING),
                "Every privilege the user lacks, one per line.",
                computed=True,
            ),
            "grant_statements": Attribute(
                List(STRING),
                "SQL that grants what is missing (run as a superuser or owner).",
                computed=True,
            ),
            "databases": Attribute(
                List(STRING), "Databases that would be registered.", computed=True
            ),
            "object_count": Attribute(NUMBER, "Objects that would be registered.", computed=True),
            "skipped_object_count": Attribute(
                NUMBER,
                "Objects that would be skipped for missing privileges.",
                computed=True,
            ),
            "dedicated": Attribute(
                BOOL,
                "Whether the Immuta database holds nothing but Immuta's state.",
                computed=True,
            ),
            "foreign_objects": Attribute(
                List(STRING),
                "Up to 6 objects that make the Immuta database not dedicated.",
                computed=True,
            ),
            "ready": Attribute(
                BOOL,
                "Supported, allowed and no missing privileges: registration would succeed.",
                computed=True,
            ),
        },
    )
)


def _filter_text(what: str) -> Check:
    return Check(lambda v: rules.text_problem(v, what), f"a {what}", f"Invalid {what}")


DATA_OBJECT = Object(
    {
        "database": STRING,
        "schema": STRING,
        "name": STRING,
        "object_type": STRING,
        "full_name": STRING,
    }
)

DATA_OBJECTS_SCHEMA = Schema(
    Block(
        description="The data objects registered by a connection, each with its data source "
        "name `connection.database.schema.object`; filterable.",
        attributes={
            "connection_id": Attribute(
                STRING,
                "`id` of the `immuta_postgres_connection`.",
                required=True,
                validators=[
                    Check(connection_id_problem, "a connection ID", "Invalid connection ID")
                ],
            ),
            "database": Attribute(
                STRING,
                "Only objects of this database.",
                optional=True,
                validators=[_filter_text("database name")],
            ),
            "schema": Attribute(
                STRING,
                "Only objects of this schema.",
                optional=True,
                validators=[_filter_text("schema name")],
            ),
            "object_type": Attribute(
                STRING,
                "Only objects of this type: " + ", ".join(OBJECT_TYPES) + ".",
                optional=True,
                validators=[OneOf(OBJECT_TYPES)],
            ),
            "name_pattern": Attribute(
                STRING,
                "Only objects whose name matches this shell-style pattern (`*`, `?`, "
                "`[...]`; case-sensitive).",
                optional=True,
                validators=[_filter_text("name pattern")],
            ),
            "objects": Attribute(
                List(DATA_OBJECT),
                "The matching objects, ordered by database, schema and name: `database`, "
                "`schema`, `name`, `object_type` and `full_name` (the data source name).",
                computed=True,
            ),
            "count": Attribute(NUMBER, "Number of matching objects.", computed=True),
        },
    )
)


class PreflightDataSource(DataSource):
    type_name = "immuta_postgres_preflight"
    schema = PREFLIGHT_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def read(self, config: dict, ctx: Context) -> dict:
        from .lookups import preflight  # psycopg stays off the plugin's startup path

        return preflight(self.provider, config, ctx)


class DataObjectsDataSource(DataSource):
    type_name = "immuta_postgres_data_objects"
    schema = DATA_OBJECTS_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def read(self, config: dict, ctx: Context) -> dict:
        from .lookups import data_objects

        return data_objects(self.provider, config, ctx)
