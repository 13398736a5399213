"""immuta_user_mapping: one Immuta user mapped to a PostgreSQL username and/or AWS principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..framework.diagnostics import Diagnostics
from ..framework.provider import Resource
from ..framework.schema import (
    SINGLE,
    Attribute,
    Block,
    Check,
    NestedBlock,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ..framework.types import BOOL, STRING
from ..framework.values import UNKNOWN
from . import rules

if TYPE_CHECKING:
    from .provider import ImmutaProvider

POSTGRES_MODES = ("username", "unset", "none")
AWS_USER_TYPES = ("iam_role", "iam_user", "identity_center_user", "unset")

POSTGRES_BLOCK = Block(
    description="How the Immuta user is known to PostgreSQL.",
    attributes={
        "mode": Attribute(
            STRING,
            "`username`: map to `username`; `unset` (default): the PostgreSQL username is the "
            "Immuta username; `none`: the user does not exist in PostgreSQL. Matching is "
            "case-insensitive.",
            default="unset",
            validators=[OneOf(POSTGRES_MODES)],
        ),
        "username": Attribute(
            STRING,
            'PostgreSQL username (with `mode = "username"`); case-insensitive.',
            optional=True,
            validators=[
                Check(
                    lambda v: rules.text_problem(v, "PostgreSQL username"),
                    "a PostgreSQL username",
                    "Invalid PostgreSQL username",
                )
            ],
        ),
    },
)

AWS_BLOCK = Block(
    description="How the Immuta user is known to AWS (only on `aurora` and `rds` connections).",
    attributes={
        "user_type": Attribute(
            STRING,
            "`iam_role`, `iam_user`, `identity_center_user`, or `unset` (the AWS username is "
            "the Immuta username). Names are case-sensitive.",
            required=True,
            validators=[OneOf(AWS_USER_TYPES)],
        ),
        "principal": Attribute(
            STRING,
            "IAM role or user name or ARN, or the IAM Identity Center User ID (never an email "
            'address). Not set with `user_type = "unset"`.',
            optional=True,
        ),
    },
)

USER_MAPPING_SCHEMA = Schema(
    Block(
        description="Maps one Immuta user, on one registered connection, to a PostgreSQL "
        "username and/or an AWS principal.",
        attributes={
            "connection_id": Attribute(
                STRING,
                "`id` of the `immuta_postgres_connection`. Changing it replaces the mapping.",
                required=True,
                plan_modifiers=[RequiresReplace()],
                validators=[
                    Check(
                        lambda v: rules.text_problem(v, "connection ID", 1024),
                        "a connection ID",
                        "Invalid connection ID",
                    )
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


class UserMappingResource(Resource):
    type_name = "immuta_user_mapping"
    schema = USER_MAPPING_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def validate(self, config: dict, diags: Diagnostics) -> None:
        validate_postgres_block(config.get("postgres"), diags)
        validate_aws_block(config.get("aws"), diags)


def validate_postgres_block(block: dict | None, diags: Diagnostics) -> None:
    if block is None or block is UNKNOWN:
        return
    mode, username = block.get("mode"), block.get("username")
    mode = "unset" if mode is None else mode
    if mode is UNKNOWN or username is UNKNOWN:
        return
    if mode == "username" and username is None:
        diags.error(
            "Missing PostgreSQL username",
            'postgres.mode = "username" needs postgres.username: the PostgreSQL role to map to.',
            ("postgres", "username"),
        )
    elif mode != "username" and username is not None:
        diags.error(
            "Unexpected PostgreSQL username",
            f'postgres.username is only used with mode = "username"; mode is "{mode}". Remove '
            'username or set mode = "username".',
            ("postgres", "username"),
        )


def validate_aws_block(block: dict | None, diags: Diagnostics) -> None:
    if block is None or block is UNKNOWN:
        return
    user_type, principal = block.get("user_type"), block.get("principal")
    if user_type is UNKNOWN or principal is UNKNOWN or user_type not in AWS_USER_TYPES:
        return
    path = ("aws", "principal")
    if user_type == "unset":
        if principal is not None:
            diags.error(
                "Unexpected AWS principal",
                'aws.user_type = "unset" maps the Immuta username itself; remove aws.principal '
                "or choose iam_role, iam_user or identity_center_user.",
                path,
            )
        return
    if principal is None:
        diags.error(
            "Missing AWS principal", f'aws.user_type = "{user_type}" needs aws.principal.', path
        )
        return
    problem = (
        rules.identity_center_problem(principal)
        if user_type == "identity_center_user"
        else rules.iam_principal_problem(principal, user_type.removeprefix("iam_"))
    )
    if problem:
        diags.error("Invalid AWS principal", problem, path)
