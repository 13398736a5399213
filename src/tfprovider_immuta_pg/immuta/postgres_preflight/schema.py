"""immuta_postgres_preflight's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import Attribute, Block, OneOf, Schema
from ...framework.types import BOOL, NUMBER, STRING, List
from .. import rules, validators

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
                validators=[validators.HOSTNAME],
            ),
            "port": Attribute(
                NUMBER,
                "PostgreSQL port, 1 to 65535. Default 5432.",
                optional=True,
                validators=[validators.PORT],
            ),
            "database": Attribute(
                STRING,
                "The Immuta database the connection would use.",
                required=True,
                validators=[validators.DATABASE_NAME],
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
