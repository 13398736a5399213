"""immuta_user_mapping's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import (
    SINGLE,
    Attribute,
    Block,
    Check,
    NestedBlock,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ...framework.types import BOOL, STRING
from .. import rules
from ..ids import connection_id_problem
from ..mapping_rules import AWS_BLOCK, POSTGRES_BLOCK, AwsBlock, PostgresBlock

USER_MAPPING_SCHEMA = Schema(
    Block(
        description="Maps one Immuta user, on one registered connection, to a PostgreSQL "
        "username and/or an AWS principal.\n\n"
        "**Import** by `id`. The default PostgreSQL mapping can be written two ways, without "
        'a `postgres` block or as `postgres { mode = "unset" }`; the state store records '
        "which one the configuration used, so the plan right after an import is empty. "
        "Imported into a configuration that spells it the other way, the first plan is an "
        "in-place update that only records the new spelling. "
        "The mapping is written to the state store of the connection's Immuta database. A "
        "provider whose user does not own that store (mappings applied with other credentials "
        "than the registration) needs USAGE on the schema `immuta` and SELECT, INSERT, "
        "UPDATE, DELETE on its tables; apply checks that first and names the GRANT statements "
        "that are missing. A mapping whose connection or Immuta database was removed outside "
        "Terraform is removed from state, so the next plan creates it again.",
        attributes={
            "connection_id": Attribute(
                STRING,
                "`id` of the `immuta_postgres_connection`. Changing it replaces the mapping.",
                required=True,
                plan_modifiers=[RequiresReplace()],
                validators=[
                    Check(connection_id_problem, "a connection ID", "Invalid connection ID")
                ],
            ),
            "immuta_user": Attribute(
                STRING,
                "The Immuta username. Changing it replaces the mapping.",
                required=True,
                plan_modifiers=[RequiresReplace()],
                validators=[
                    Check(
                        lambda v: rules.text_problem(v, "Immuta username"),
                        "an Immuta username",
                        "Invalid Immuta username",
                    )
                ],
            ),
            "id": Attribute(
                STRING,
                "`connection_id` and `immuta_user` joined by `#`, the user part "
                "percent-encoded; the import ID.",
                computed=True,
                plan_modifiers=[UseStateForUnknown()],
            ),
            "postgres_user_found": Attribute(
                BOOL,
                "Whether the PostgreSQL role exists. When false Immuta treats the user as `none`.",
                computed=True,
            ),
            "effective_postgres_username": Attribute(
                STRING,
                "The PostgreSQL role the user maps to, as PostgreSQL spells it; null when none.",
                computed=True,
            ),
            "aws_principal_arn": Attribute(
                STRING,
                "Resolved ARN of the IAM role or user.",
                computed=True,
            ),
        },
        blocks={
            "postgres": NestedBlock(POSTGRES_BLOCK, SINGLE),
            "aws": NestedBlock(AWS_BLOCK, SINGLE),
        },
    )
)


class MappingState(TypedDict):
    connection_id: str
    immuta_user: str
    id: str
    postgres: PostgresBlock | None
    aws: AwsBlock | None
    postgres_user_found: bool
    effective_postgres_username: str | None
    aws_principal_arn: str | None


REVERIFY_MARK = b"reverify"  # private state: a role or principal changed since the last apply
VERIFIED = ("postgres_user_found", "effective_postgres_username", "aws_principal_arn")
