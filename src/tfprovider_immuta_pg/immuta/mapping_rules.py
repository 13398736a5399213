"""How one Immuta user maps to PostgreSQL and AWS: the blocks, their rules, their verification.

Following Immuta's "Map users" page of its PostgreSQL integration documentation:

- `postgres { mode, username }`: `username` maps to that PostgreSQL role (matched in any
  case; roles that differ only by case need the exact name), `unset` maps to the Immuta
  username itself, `none` says the user has no PostgreSQL account. A role that is not found
  makes the effective mapping `none`.
- `aws { user_type, principal }`, only on `aurora` and `rds` connections: an IAM role or IAM
  user (name or ARN, case-sensitive; it must exist), an IAM Identity Center user (its User
  ID, never an email address; checked when an identity store is configured), or `unset`
  (the Immuta username). One IAM role maps to at most one Immuta user per connection.

Every resource that writes mappings uses these, so one rule has one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from ..framework.diagnostics import Diagnostics, ProviderError
from ..framework.provider import Context
from ..framework.schema import Attribute, Block, Check, OneOf
from ..framework.types import STRING
from ..framework.values import UNKNOWN
from . import rules
from .access import Access
from .ids import ConnectionId
from .pg import Target

POSTGRES_MODES = ("username", "unset", "none")
AWS_USER_TYPES = ("iam_role", "iam_user", "identity_center_user", "unset")
IAM_TYPES = ("iam_role", "iam_user")

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


class PostgresBlock(TypedDict):
    mode: str
    username: str | None


class AwsBlock(TypedDict):
    user_type: str
    principal: str | None


@dataclass(frozen=True)
class Wanted:
    """What a configuration (or a stored mapping) asks for one Immuta user."""

    postgres_mode: str
    postgres_username: str | None
    aws_user_type: str | None
    aws_principal: str | None

    @classmethod
    def of(cls, values: Any) -> Wanted:
        """From a plan or state holding `postgres` and `aws` blocks (either may be null)."""
        pg = values.get("postgres") or {}
        aws = values.get("aws") or {}
        return cls(
            pg.get("mode") or "unset",
            pg.get("username"),
            aws.get("user_type"),
            aws.get("principal"),
        )

    def role_name(self, immuta_user: str) -> str | None:
        """The PostgreSQL role name to look for (in any case)."""
        return self.postgres_username if self.postgres_mode == "username" else immuta_user


# ------------------------------------------------------------------ plan-time rules


def validate_postgres_block(block: Any, diags: Diagnostics, at: tuple[Any, ...] = ()) -> None:
    """Rules across `mode` and `username`; `at` is the block's parent path."""
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
            (*at, "postgres", "username"),
        )
    elif mode != "username" and username is not None:
        diags.error(
            "Unexpected PostgreSQL username",
            f'postgres.username is only used with mode = "username"; mode is "{mode}". Remove '
            'username or set mode = "username".',
            (*at, "postgres", "username"),
        )


def validate_aws_block(block: Any, diags: Diagnostics, at: tuple[Any, ...] = ()) -> None:
    """Rules across `user_type` and `principal`; `at` is the block's parent path."""
    if block is None or block is UNKNOWN:
        return
    user_type, principal = block.get("user_type"), block.get("principal")
    if user_type is UNKNOWN or principal is UNKNOWN or user_type not in AWS_USER_TYPES:
        return
    path = (*at, "aws", "principal")
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


def check_aws_allowed(aws_type: str | None, deployment_type: str, cid: ConnectionId) -> None:
    if aws_type is not None and deployment_type not in rules.AWS_DEPLOYMENTS:
        raise ProviderError(
            "AWS mapping not available for this connection",
            f"Connection {cid.display_name!r} is a {deployment_type} deployment; AWS principals "
            "map users only on aurora and rds connections. Remove the aws block or use "
            "postgres { ... }.",
            ("aws",),
        )


# ------------------------------------------------------------------ verification


def pick_role(roles: list[str], mode: str, wanted: str | None, strict: bool = True) -> str | None:
    """The PostgreSQL role a mapping points at, among the roles matching in any case."""
    if mode == "none" or not roles:
        return None
    if len(roles) == 1:
        return roles[0]
    if wanted in roles:
        return wanted
    if not strict:
        return None
    raise ProviderError(
        f"PostgreSQL username {wanted!r} is ambiguous",
        "These roles differ only by case: " + ", ".join(repr(r) for r in roles) + ". Give the "
        'exact name with postgres { mode = "username", username = "..." }.',
        ("postgres", "username") if mode == "username" else ("postgres",),
    )


@dataclass(frozen=True)
class Verified:
    """What AWS says about a mapping's principal right now."""

    aws_principal_arn: str | None
    aws_principal_found: bool


def verify_aws(
    access: Access, aws_type: str | None, principal: str | None, retry: bool
) -> Verified:
    """Look the principal up (IAM, or the identity store when one is configured)."""
    if principal is None:
        return Verified(None, True)
    if aws_type in IAM_TYPES:
        arn = access.aws().principal_arn(aws_type.removeprefix("iam_"), principal, retry)
        return Verified(arn, arn is not None)
    if aws_type == "identity_center_user" and access.settings.aws.identity_store_id:
        return Verified(None, access.aws().identity_center_user_exists(principal))
    return Verified(None, True)


def require_aws_principal(access: Access, wanted: Wanted) -> Verified:
    """Verify the principal at apply (retrying while IAM catches up); absent is an error."""
    aws_type, principal = wanted.aws_user_type, wanted.aws_principal
    verified = verify_aws(access, aws_type, principal, retry=True)
    if aws_type in IAM_TYPES and verified.aws_principal_arn is None:
        kind = (aws_type or "").removeprefix("iam_")
        account = access.settings.aws.endpoint_url or "the provider's AWS account"
        raise ProviderError(
            f"IAM {kind} {principal!r} does not exist",
            f"IAM has no {kind} {principal!r} (looked up for {account}). Names are "
            f"case-sensitive; create the {kind} first or fix aws.principal.",
            ("aws", "principal"),
        )
    if aws_type == "identity_center_user" and not verified.aws_principal_found:
        raise ProviderError(
            f"IAM Identity Center user {principal!r} does not exist",
            f"Identity store {access.settings.aws.identity_store_id} has no user with "
            "this User ID. Copy the User ID from the user's page in IAM Identity Center.",
            ("aws", "principal"),
        )
    return verified


def aws_changed(aws_type: str | None, verified: Verified, stored_arn: str | None) -> bool:
    """Whether the principal differs from what the last apply found (drift)."""
    if aws_type in IAM_TYPES:
        return verified.aws_principal_arn != stored_arn
    return not verified.aws_principal_found


def warn_missing_role(
    ctx: Context, wanted: Wanted, user: str, role: str | None, target: Target
) -> None:
    if wanted.postgres_mode == "none" or role is not None:
        return
    name = wanted.role_name(user)
    ctx.diags.warning(
        f"PostgreSQL role {name!r} not found",
        f"No role named {name!r} (in any case) exists on {target.hostname}:{target.port}, so "
        f'Immuta treats {user!r} as a user without a PostgreSQL account (mode "none"); '
        "postgres_user_found is false. Create the role, or map the user to an existing "
        'one with postgres { mode = "username" }.',
        ("postgres",),
    )


def role_taken(principal: str | None, holder: str, cid: ConnectionId) -> ProviderError:
    return ProviderError(
        f"IAM role {principal!r} is already mapped to {holder!r}",
        f"On connection {cid.display_name!r} an IAM role maps to at most one Immuta user, and "
        f"{principal!r} belongs to Immuta user {holder!r}. Create a dedicated Immuta user that "
        "represents the role, or remove the other mapping first.",
        ("aws", "principal"),
    )


def blocks_as_written(
    written: Any, mode: str, username: str | None, aws_type: str | None, principal: str | None
) -> tuple[PostgresBlock | None, AwsBlock | None]:
    """The `postgres` and `aws` blocks of a stored mapping, keeping what the user wrote
    (`written`, a plan or state) where it means the same."""
    prior_pg = written.get("postgres")
    prior_username = (prior_pg or {}).get("username")
    if prior_username and username and rules.same_in_any_case(prior_username, username):
        username = prior_username
    postgres: PostgresBlock | None
    if prior_pg is None and mode == "unset" and username is None:
        postgres = None  # the default mode, written (or imported) without a block
    else:
        postgres = PostgresBlock(mode=mode, username=username)
    aws = None if aws_type is None else AwsBlock(user_type=aws_type, principal=principal)
    return postgres, aws
