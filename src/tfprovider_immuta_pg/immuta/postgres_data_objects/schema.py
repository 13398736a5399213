"""immuta_postgres_data_objects' declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import Attribute, Block, Check, OneOf, Schema
from ...framework.types import NUMBER, STRING, List, Object
from .. import rules
from ..ids import connection_id_problem

OBJECT_TYPES = ("table", "partitioned_table", "view", "materialized_view", "foreign_table")


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


class DataObject(TypedDict):
    database: str
    schema: str
    name: str
    object_type: str
    full_name: str


class DataObjectsState(TypedDict):
    connection_id: str
    database: str | None
    schema: str | None
    object_type: str | None
    name_pattern: str | None
    objects: list[DataObject]
    count: int
