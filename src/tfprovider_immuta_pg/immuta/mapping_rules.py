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

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ..framework.diagnostics import Diagnostics, Path, ProviderError
from ..framework.provider import Context
from ..framework.schema import Attribute, Block, Check, NestedAttribute, OneOf, RequiresReplace
from ..framework.types import BOOL, STRING
from ..framework.values import UNKNOWN
from . import rules
from .access import Access
from .ids import ConnectionId, InvalidId, connection_id_problem
from .pg import Target

if TYPE_CHECKING:
    from .store import MappingRow

POSTGRES_MODES = ("username", "unset", "none")
AWS_USER_TYPES = ("iam_role", "iam_user", "identity_center_user", "unset")
IAM_TYPES = ("iam_role", "iam_user")

# Who manages a mapping (the store's `managed_by`): SINGLE_OWNER for every
# immuta_user_mapping; SET_OWNER_PREFIX and the resource's owner_id for an
# immuta_user_mappings; nobody (NULL) for a mapping written outside Terraform.
SINGLE_OWNER = "immuta_user_mapping"
SET_OWNER_PREFIX = "immuta_user_mappings/"

POSTGRES_ATTRIBUTES: dict[str, Attribute] = {
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
}
AWS_ATTRIBUTES: dict[str, Attribute] = {
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
}
POSTGRES_DESCRIPTION = "How the Immuta user is known to PostgreSQL."
AWS_DESCRIPTION = "How the Immuta user is known to AWS (only on `aurora` and `rds` connections)."

# immuta_user_mapping writes them as blocks ...
POSTGRES_BLOCK = Block(description=POSTGRES_DESCRIPTION, attributes=POSTGRES_ATTRIBUTES)
AWS_BLOCK = Block(description=AWS_DESCRIPTION, attributes=AWS_ATTRIBUTES)


class _BlockRule:
    """A rule across the attributes of a `postgres` or `aws` object, as a validator of the
    nested attribute holding it (its path ends with the object's name)."""

    def __init__(self, rule: Callable[[Any, Diagnostics, Path], None], description: str) -> None:
        self.rule = rule
        self.description = description

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None:
        self.rule(value, diags, path[:-1])


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


# What the last apply (or refresh) found: computed, per mapping.
VERIFIED_ATTRIBUTES: dict[str, Attribute] = {
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
}
VERIFIED = tuple(VERIFIED_ATTRIBUTES)


def known_before_apply(mapping: dict[str, Any]) -> None:
    """Fill the verified values of a mapping to be written where its configuration decides
    them: no PostgreSQL role with mode `none`, no ARN without an IAM principal."""
    postgres, aws = mapping.get("postgres"), mapping.get("aws")
    if isinstance(postgres, dict) and postgres.get("mode") == "none":
        mapping["postgres_user_found"] = False
        mapping["effective_postgres_username"] = None
    if aws is None or (
        isinstance(aws, dict) and aws.get("user_type") in ("unset", "identity_center_user")
    ):
        mapping["aws_principal_arn"] = None


def location(connection_id: str) -> tuple[ConnectionId, Target]:
    """A mapping's connection, and the Immuta database that holds its registration."""
    try:
        cid = ConnectionId.parse(connection_id)
    except InvalidId as exc:
        raise ProviderError("Invalid connection_id", str(exc), ("connection_id",)) from None
    return cid, Target(cid.hostname, cid.port, cid.database)


def not_registered(cid: ConnectionId, target: Target) -> ProviderError:
    return ProviderError(
        f"Connection {cid.display_name!r} is not registered",
        f"No connection {str(cid)!r} is registered in {target.where}. Register it with an "
        "immuta_postgres_connection first (reference its id so Terraform orders them), "
        "or fix connection_id.",
        ("connection_id",),
    )


def as_written(row: MappingRow) -> dict[str, Any]:
    """The configuration that wrote `row`, as far as the store recorded its spelling: with
    or without a `postgres` block (which may say only the default mode)."""
    postgres = (
        {"mode": row.postgres_mode, "username": row.postgres_username}
        if row.postgres_block_written
        else None
    )
    return {"postgres": postgres}


def connection_id_attribute(replaced: str) -> Attribute:
    """The `connection_id` of a mapping resource; changing it replaces the `replaced`."""
    return Attribute(
        STRING,
        f"`id` of the `immuta_postgres_connection`. Changing it replaces the {replaced}.",
        required=True,
        plan_modifiers=[RequiresReplace()],
        validators=[Check(connection_id_problem, "a connection ID", "Invalid connection ID")],
    )


# ------------------------------------------------------------------ plan-time rules


def validate_postgres_block(block: Any, diags: Diagnostics, at: Path = ()) -> None:
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


def validate_aws_block(block: Any, diags: Diagnostics, at: Path = ()) -> None:
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


# ... and immuta_user_mappings as nested attributes of each entry: the same attributes and
# rules, with paths that name the entry.
POSTGRES_ATTRIBUTE = NestedAttribute(
    POSTGRES_DESCRIPTION + " Null: the default mode (`unset`).",
    optional=True,
    attributes=POSTGRES_ATTRIBUTES,
    validators=[_BlockRule(validate_postgres_block, "a username exactly with mode username")],
)
AWS_ATTRIBUTE = NestedAttribute(
    AWS_DESCRIPTION,
    optional=True,
    attributes=AWS_ATTRIBUTES,
    validators=[_BlockRule(validate_aws_block, "a principal that fits user_type")],
)


def check_aws_allowed(
    aws_type: str | None, deployment_type: str, cid: ConnectionId, at: Path = ()
) -> None:
    problem = aws_not_allowed(aws_type, deployment_type, cid, at)
    if problem is not None:
        raise problem


def aws_not_allowed(
    aws_type: str | None, deployment_type: str, cid: ConnectionId, at: Path = ()
) -> ProviderError | None:
    """The error for an `aws` block on a connection that is not aurora or rds, if it is one."""
    if aws_type is None or deployment_type in rules.AWS_DEPLOYMENTS:
        return None
    return ProviderError(
        "AWS mapping not available for this connection",
        f"Connection {cid.display_name!r} is a {deployment_type} deployment; AWS principals "
        "map users only on aurora and rds connections. Remove the aws block or use "
        "postgres { ... }.",
        (*at, "aws"),
    )


def same_iam_role(entries: dict[str, Any], at: Callable[[str], Path], diags: Diagnostics) -> None:
    """Two Immuta users naming the same IAM role (one role maps to at most one user)."""
    holders: dict[str, str] = {}
    for user, entry in entries.items():
        aws = None if entry is None or entry is UNKNOWN else entry.get("aws")
        if aws is None or aws is UNKNOWN or aws.get("user_type") != "iam_role":
            continue
        principal = aws.get("principal")
        if not isinstance(principal, str):
            continue
        first = holders.setdefault(principal, user)
        if first != user:
            diags.error(
                f"IAM role {principal!r} is mapped twice",
                f"Immuta users {first!r} and {user!r} both name IAM role {principal!r}; an IAM "
                "role maps to at most one Immuta user per connection. Create a dedicated "
                "Immuta user that represents the role, and map only that one.",
                (*at(user), "aws", "principal"),
            )


# ------------------------------------------------------------------ verification


def pick_role(
    roles: list[str], mode: str, wanted: str | None, strict: bool = True, at: Path = ()
) -> str | None:
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
        (*at, "postgres", "username") if mode == "username" else (*at, "postgres"),
    )


@dataclass(frozen=True)
class Verified:
    """What AWS says about a mapping's principal right now."""

    aws_principal_arn: str | None
    aws_principal_found: bool


NOTHING_TO_VERIFY = Verified(None, True)


def verify_many(access: Access, wanted: dict[str, Wanted], retry: bool) -> dict[str, Verified]:
    """Look every principal up, in bulk (see AwsClient.principal_arns): by Immuta user."""
    by_kind: dict[str, set[str]] = {}
    for w in wanted.values():
        if w.aws_principal is not None and w.aws_user_type in (*IAM_TYPES, "identity_center_user"):
            by_kind.setdefault(w.aws_user_type, set()).add(w.aws_principal)
    if not by_kind:
        return dict.fromkeys(wanted, NOTHING_TO_VERIFY)
    client = access.aws()
    arns = {
        kind: client.principal_arns(kind.removeprefix("iam_"), names, retry)
        for kind, names in by_kind.items()
        if kind in IAM_TYPES
    }
    centre: dict[str, bool] = {}
    if "identity_center_user" in by_kind and access.settings.aws.identity_store_id:
        centre = client.identity_center_users_exist(by_kind["identity_center_user"])
    verified = {}
    for user, w in wanted.items():
        if w.aws_principal is None:
            verified[user] = NOTHING_TO_VERIFY
        elif w.aws_user_type in IAM_TYPES:
            arn = arns[w.aws_user_type][w.aws_principal]
            verified[user] = Verified(arn, arn is not None)
        else:
            verified[user] = Verified(None, centre.get(w.aws_principal, True))
    return verified


def verify_aws(
    access: Access, aws_type: str | None, principal: str | None, retry: bool
) -> Verified:
    """Look one principal up (IAM, or the identity store when one is configured)."""
    return verify_many(access, {"": Wanted("unset", None, aws_type, principal)}, retry)[""]


def require_aws_principals(
    access: Access, wanted: dict[str, Wanted], at: Callable[[str], Path], problems: Problems
) -> dict[str, Verified]:
    """Verify at apply (retrying while IAM catches up); each absent principal is a problem."""
    verified = verify_many(access, wanted, retry=True)
    for user, found in verified.items():
        aws_type, principal = wanted[user].aws_user_type, wanted[user].aws_principal
        path = (*at(user), "aws", "principal")
        if aws_type in IAM_TYPES and found.aws_principal_arn is None:
            kind = (aws_type or "").removeprefix("iam_")
            account = access.settings.aws.endpoint_url or "the provider's AWS account"
            problems.add(
                f"IAM {kind} {principal!r} does not exist",
                f"IAM has no {kind} {principal!r} (looked up for {account}). Names are "
                f"case-sensitive; create the {kind} first or fix aws.principal.",
                path,
            )
        elif aws_type == "identity_center_user" and not found.aws_principal_found:
            problems.add(
                f"IAM Identity Center user {principal!r} does not exist",
                f"Identity store {access.settings.aws.identity_store_id} has no user with "
                "this User ID. Copy the User ID from the user's page in IAM Identity Center.",
                path,
            )
    return verified


def require_aws_principal(access: Access, wanted: Wanted) -> Verified:
    """One principal, verified at apply; absent is an error."""
    problems = Problems()
    verified = require_aws_principals(access, {"": wanted}, lambda _: (), problems)[""]
    problems.raise_any(Diagnostics())
    return verified


def aws_changed(aws_type: str | None, verified: Verified, stored_arn: str | None) -> bool:
    """Whether the principal differs from what the last apply found (drift)."""
    if aws_type in IAM_TYPES:
        return verified.aws_principal_arn != stored_arn
    return not verified.aws_principal_found


MISSING_ROLES_NAMED = 5  # a warning about missing roles names this many of them


def warn_missing_roles(
    ctx: Context,
    missing: list[tuple[str, str | None]],
    target: Target,
    at: Callable[[str], Path] = lambda _: (),
    many_at: Path | None = None,
) -> None:
    """One warning for the mappings whose PostgreSQL role was not found: (user, role name).

    Immuta treats such a user as one without a PostgreSQL account; the configured mode
    stays, so there is no perpetual diff. `at(user)`: where the mapping of `user` is;
    `many_at`: where the warning about several points."""
    if not missing:
        return
    where = f"{target.hostname}:{target.port}"
    if len(missing) == 1:
        user, name = missing[0]
        ctx.diags.warning(
            f"PostgreSQL role {name!r} not found",
            f"No role named {name!r} (in any case) exists on {where}, so Immuta treats "
            f'{user!r} as a user without a PostgreSQL account (mode "none"); '
            "postgres_user_found is false. Create the role, or map the user to an existing "
            'one with postgres { mode = "username" }.',
            (*at(user), "postgres"),
        )
        return
    named = ", ".join(f"{user!r} ({name!r})" for user, name in missing[:MISSING_ROLES_NAMED])
    more = len(missing) - MISSING_ROLES_NAMED
    ctx.diags.warning(
        f"{len(missing)} PostgreSQL roles not found",
        f"No role (in any case) exists on {where} for {len(missing)} mapped Immuta users: "
        f"{named}{f' and {more} more' if more > 0 else ''}. Immuta treats them as users "
        'without a PostgreSQL account (mode "none"); their postgres_user_found is false. '
        "Create the roles, or map each user to an existing one with "
        'postgres { mode = "username" }.',
        many_at,
    )


def warn_missing_role(
    ctx: Context, wanted: Wanted, user: str, role: str | None, target: Target
) -> None:
    if wanted.postgres_mode == "none" or role is not None:
        return
    warn_missing_roles(ctx, [(user, wanted.role_name(user))], target)


def role_taken(
    principal: str | None, holder: str, cid: ConnectionId, at: Path = ()
) -> ProviderError:
    return ProviderError(
        f"IAM role {principal!r} is already mapped to {holder!r}",
        f"On connection {cid.display_name!r} an IAM role maps to at most one Immuta user, and "
        f"{principal!r} belongs to Immuta user {holder!r}. Create a dedicated Immuta user that "
        "represents the role, or remove the other mapping first.",
        (*at, "aws", "principal"),
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


# ------------------------------------------------------------------ who manages a mapping


def owner_label(managed_by: str, exclusive: bool = False) -> str:
    """A mapping's manager as the user knows it."""
    if managed_by.startswith(SET_OWNER_PREFIX):
        owner_id = managed_by.removeprefix(SET_OWNER_PREFIX)
        kind = "an exclusive immuta_user_mappings" if exclusive else "an immuta_user_mappings"
        return f"{kind} resource (owner_id {owner_id})"
    if managed_by == SINGLE_OWNER:
        return "an immuta_user_mapping resource"
    return repr(managed_by)


def managed_elsewhere(
    user: str, managed_by: str, writer: str, cid: ConnectionId, at: Path
) -> ProviderError:
    """A write that would take `user`'s mapping from the resource managing it."""
    other = owner_label(managed_by)
    return ProviderError(
        f"Immuta user {user!r} is managed by another resource",
        f"On connection {cid.display_name!r} the mapping of {user!r} is managed by {other}, "
        f"so this {writer} does not write it: two resources managing one mapping would undo "
        "each other on every apply. Manage it in one place: remove it from the other "
        "resource and apply that first, or move it here by removing it from the other "
        "resource's state (a `removed` block with `lifecycle { destroy = false }`) and "
        "importing it into this one.",
        at,
    )


def connection_owned_elsewhere(
    exclusive_owner: str, writer: str, cid: ConnectionId, at: Path
) -> ProviderError:
    """A write on a connection whose mappings an exclusive immuta_user_mappings owns."""
    return ProviderError(
        f"Connection {cid.display_name!r} has an exclusive owner",
        f"Every mapping of connection {cid.display_name!r} is managed by "
        f"{owner_label(exclusive_owner, exclusive=True)}, so this {writer} writes none: the "
        "exclusive resource would delete what this one writes. Add the mapping to that "
        "resource, set its exclusive = false, or move the mappings here (a `removed` block "
        "with `lifecycle { destroy = false }` for it, then import them into this one).",
        at,
    )


# ------------------------------------------------------------------ many errors at once


class Problems:
    """Errors found across many entries, reported together (up to SHOWN of them)."""

    SHOWN = 10

    def __init__(self) -> None:
        self.errors: list[ProviderError] = []

    def add(self, summary: str, detail: str, path: Path | None) -> None:
        self.errors.append(ProviderError(summary, detail, path))

    def add_error(self, error: ProviderError) -> None:
        self.errors.append(error)

    def raise_any(self, diags: Diagnostics) -> None:
        """Raise the last of the first SHOWN errors after adding the others to `diags`;
        more than SHOWN end with one that counts the rest."""
        if not self.errors:
            return
        shown = self.errors[: self.SHOWN]
        rest = self.errors[self.SHOWN :]
        if rest:
            shown.append(
                ProviderError(
                    f"{len(rest)} more mappings have errors",
                    "Not shown one by one: "
                    + ", ".join(sorted({e.summary for e in rest})[: self.SHOWN])
                    + ". Fix the errors above and plan again to see what is left.",
                )
            )
        for error in shown[:-1]:
            diags.error(error.summary, error.detail, error.path)
        raise shown[-1]
