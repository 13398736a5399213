"""immuta_postgres_preflight's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import Attribute, Block, OneOf, Schema
from ...framework.types import BOOL, NUMBER, STRING, CtyType, List
from .. import rules, shared_schema


def computed(value_type: CtyType, description: str) -> Attribute:
    return Attribute(value_type, description, computed=True)


PREFLIGHT_SCHEMA = Schema(
    Block(
        description="Checks whether a PostgreSQL server can be registered, without registering "
        "anything: version, superuser, the privileges the registering user lacks (with the "
        "GRANT statements that fix them) and whether the Immuta database is dedicated. Use it "
        "as a CI gate with a `check` block or a `postcondition` on `ready`. The privileges "
        "are Immuta's documented ones and those the registration needs in the Immuta "
        "database (CREATE on it, or the ownership of its schema `immuta`), the same checks "
        "`immuta_postgres_connection` runs before writing.",
        attributes={
            "hostname": shared_schema.hostname(),
            "port": shared_schema.port("PostgreSQL port, 1 to 65535. Default 5432."),
            "database": shared_schema.database("The Immuta database the connection would use."),
            "deployment_type": Attribute(
                STRING,
                "`self_managed` (default), `aurora`, `rds` or `neon`.",
                optional=True,
                validators=[OneOf(rules.DEPLOYMENT_TYPES)],
            ),
            "server_version": computed(STRING, "PostgreSQL server version."),
            "supported": computed(BOOL, "Whether Immuta supports this version (16 or 17)."),
            "username": computed(STRING, "The user the provider connects as."),
            "superuser": computed(BOOL, "Whether that user is a superuser."),
            "auth_method_allowed": computed(
                BOOL, "Whether the provider's auth_method is allowed for deployment_type."
            ),
            "missing_privileges": computed(
                List(STRING),
                "Every privilege the user lacks, one per line (those of the Immuta database "
                "included).",
            ),
            "grant_statements": computed(
                List(STRING), "SQL that grants what is missing (run as a superuser or owner)."
            ),
            "databases": computed(List(STRING), "Databases that would be registered."),
            "object_count": computed(NUMBER, "Objects that would be registered."),
            "skipped_object_count": computed(
                NUMBER, "Objects that would be skipped for missing privileges."
            ),
            "dedicated": computed(
                BOOL, "Whether the Immuta database holds nothing but Immuta's state."
            ),
            "foreign_objects": computed(
                List(STRING), "Up to 6 objects that make the Immuta database not dedicated."
            ),
            "ready": computed(
                BOOL, "Supported, allowed and no missing privileges: registration would succeed."
            ),
        },
    )
)


class PreflightState(TypedDict):
    hostname: str
    port: int
    database: str
    deployment_type: str
    server_version: str
    supported: bool
    username: str
    superuser: bool
    auth_method_allowed: bool
    missing_privileges: list[str]
    grant_statements: list[str]
    databases: list[str]
    object_count: int
    skipped_object_count: int
    dedicated: bool
    foreign_objects: list[str]
    ready: bool
