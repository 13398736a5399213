"""immuta_user_mapping: one Immuta user mapped to a PostgreSQL username and/or AWS principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..framework.diagnostics import Diagnostics
from ..framework.provider import Context, Resource
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
from .ids import ConnectionId, InvalidId, MappingId, connection_id_problem

if TYPE_CHECKING:
    from .mappings import Mapper
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
            semantically_equal=rules.same_in_any_case,
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


class UserMappingResource(Resource):
    type_name = "immuta_user_mapping"
    schema = USER_MAPPING_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def validate(self, config: dict, diags: Diagnostics) -> None:
        validate_postgres_block(config.get("postgres"), diags)
        validate_aws_block(config.get("aws"), diags)

    def _mapper(self, ctx: Context) -> Mapper:
        from .mappings import Mapper  # psycopg stays off the plugin's startup path

        return Mapper(self.provider, ctx)

    def modify_plan(self, prior: dict | None, planned: dict, config: dict, ctx: Context) -> None:
        if prior is None:
            planned["id"] = planned_id(planned)
        elif ctx.private == REVERIFY_MARK:
            for name in VERIFIED:
                planned[name] = UNKNOWN  # re-verify: a role or principal changed since apply
        aws = config.get("aws")
        connection_id = planned.get("connection_id")
        if aws is not None and aws is not UNKNOWN and isinstance(connection_id, str):
            from .mappings import check_aws_allowed

            deployment = self._mapper(ctx).deployment_type(connection_id)
            if deployment is not None:
                check_aws_allowed(
                    aws.get("user_type"), deployment, ConnectionId.parse(connection_id)
                )

    def create(self, planned: dict, ctx: Context) -> dict:
        return self._mapper(ctx).apply(planned)

    def update(self, prior: dict, planned: dict, ctx: Context) -> dict:
        return self._mapper(ctx).apply(planned)

    def read(self, state: dict, ctx: Context) -> dict | None:
        return self._mapper(ctx).refresh(state)

    def delete(self, state: dict, ctx: Context) -> None:
        self._mapper(ctx).delete(state)

    def import_state(self, import_id: str, ctx: Context) -> dict:
        return self._mapper(ctx).import_mapping(import_id)


REVERIFY_MARK = b"reverify"  # private state: a role or principal changed since the last apply
VERIFIED = ("postgres_user_found", "effective_postgres_username", "aws_principal_arn")


def planned_id(planned: dict) -> object:
    connection_id, user = planned.get("connection_id"), planned.get("immuta_user")
    if not isinstance(connection_id, str) or not isinstance(user, str):
        return UNKNOWN
    try:
        return str(MappingId(ConnectionId.parse(connection_id), user))
    except InvalidId:
        return UNKNOWN


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
