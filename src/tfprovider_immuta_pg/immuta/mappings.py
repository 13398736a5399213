"""Mapping Immuta users: the work behind immuta_user_mapping."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import psycopg

from ..framework.diagnostics import ProviderError
from ..framework.provider import Context
from . import rules, store
from .ids import ConnectionId, InvalidId, MappingId
from .pg import Target
from .user_mapping import REVERIFY_MARK

if TYPE_CHECKING:
    from .provider import ImmutaProvider


@dataclass(frozen=True)
class Verified:
    """What the servers say about a mapping right now."""

    aws_principal_arn: str | None
    aws_principal_found: bool


def _wanted(values: dict) -> tuple[str, str | None, str | None, str | None]:
    """(postgres mode, postgres username, aws user type, aws principal) from a plan or state."""
    pg = values.get("postgres") or {}
    aws = values.get("aws") or {}
    return (
        pg.get("mode") or "unset",
        pg.get("username"),
        aws.get("user_type"),
        aws.get("principal"),
    )


class Mapper:
    def __init__(self, provider: ImmutaProvider, ctx: Context) -> None:
        self.provider = provider
        self.ctx = ctx

    def _location(self, connection_id: str) -> tuple[ConnectionId, Target]:
        try:
            cid = ConnectionId.parse(connection_id)
        except InvalidId as exc:
            raise ProviderError("Invalid connection_id", str(exc), ("connection_id",)) from None
        return cid, Target(cid.hostname, cid.port, cid.database)

    def _not_registered(self, cid: ConnectionId, target: Target) -> ProviderError:
        return ProviderError(
            f"Connection {cid.display_name!r} is not registered",
            f"No connection {str(cid)!r} is registered in {target.where}. Register it with an "
            "immuta_postgres_connection first (reference its id so Terraform orders them), "
            "or fix connection_id.",
            ("connection_id",),
        )

    # ------------------------------------------------------------------ apply

    def apply(self, planned: dict) -> dict:
        cid, target = self._location(planned["connection_id"])
        user = planned["immuta_user"]
        mode, username, aws_type, principal = _wanted(planned)
        wanted_role = username if mode == "username" else user
        with self.provider.connect(target, self.ctx) as conn:
            found = store.look_up_mapping(conn, cid.display_name, user, wanted_role)
        if found.deployment_type is None:
            raise self._not_registered(cid, target)
        check_aws_allowed(aws_type, found.deployment_type, cid)
        role = pick_role(found.roles, mode, wanted_role)
        verified = self._verify_aws(aws_type, principal, retry=True)
        if aws_type in ("iam_role", "iam_user") and verified.aws_principal_arn is None:
            kind = aws_type.removeprefix("iam_")
            raise ProviderError(
                f"IAM {kind} {principal!r} does not exist",
                f"IAM has no {kind} {principal!r} (looked up for {self._account()}). Names are "
                f"case-sensitive; create the {kind} first or fix aws.principal.",
                ("aws", "principal"),
            )
        if aws_type == "identity_center_user" and not verified.aws_principal_found:
            raise ProviderError(
                f"IAM Identity Center user {principal!r} does not exist",
                f"Identity store {self.provider.settings.aws.identity_store_id} has no user with "
                "this User ID. Copy the User ID from the user's page in IAM Identity Center.",
                ("aws", "principal"),
            )
        row = store.MappingRow(
            cid.display_name,
            user,
            mode,
            username,
            role,
            aws_type,
            principal,
            verified.aws_principal_arn,
        )
        with self.provider.connect(target, self.ctx) as conn:
            if target not in self.provider.current_stores:
                store.ensure_current(conn)
                self.provider.current_stores.add(target)
            try:
                holder = store.save_mapping(conn, row)
            except psycopg.errors.ForeignKeyViolation:
                raise self._not_registered(cid, target) from None
        if holder is not None:
            raise _role_taken(principal, holder, cid)
        self._warn_missing_role(mode, username, user, role, target)
        return state_from(planned, row, cid)

    def _account(self) -> str:
        return self.provider.settings.aws.endpoint_url or "the provider's AWS account"

    def _verify_aws(self, aws_type: str | None, principal: str | None, retry: bool) -> Verified:
        if aws_type in ("iam_role", "iam_user"):
            arn = self.provider.aws().principal_arn(aws_type.removeprefix("iam_"), principal, retry)
            return Verified(arn, arn is not None)
        if aws_type == "identity_center_user" and self.provider.settings.aws.identity_store_id:
            return Verified(None, self.provider.aws().identity_center_user_exists(principal))
        return Verified(None, True)

    def _warn_missing_role(
        self, mode: str, username: str | None, user: str, role: str | None, target: Target
    ) -> None:
        if mode == "none" or role is not None:
            return
        wanted = username if mode == "username" else user
        self.ctx.diags.warning(
            f"PostgreSQL role {wanted!r} not found",
            f"No role named {wanted!r} (in any case) exists on {target.hostname}:{target.port}, so "
            f'Immuta treats {user!r} as a user without a PostgreSQL account (mode "none"); '
            "postgres_user_found is false. Create the role, or map the user to an existing "
            'one with postgres { mode = "username" }.',
            ("postgres",),
        )

    # ------------------------------------------------------------------ read / delete / import

    def refresh(self, state: dict) -> dict | None:
        cid, target = self._location(state["connection_id"])
        user = state["immuta_user"]
        with self.provider.connect(target, self.ctx) as conn:
            row = store.look_up_mapping(conn, cid.display_name, user)
        if row.mapping is None:
            return None
        stored = row.mapping
        wanted = stored.postgres_username if stored.postgres_mode == "username" else user
        role = pick_role(row.roles, stored.postgres_mode, wanted, strict=False)
        verified = self._verify_aws(stored.aws_user_type, stored.aws_principal, retry=False)
        iam = stored.aws_user_type in ("iam_role", "iam_user")
        changed = role != stored.postgres_role or (
            verified.aws_principal_arn != stored.aws_principal_arn
            if iam
            else not verified.aws_principal_found
        )
        self.ctx.private = REVERIFY_MARK if changed else b""
        live = replace(
            stored,
            postgres_role=role,
            aws_principal_arn=verified.aws_principal_arn if iam else stored.aws_principal_arn,
        )
        return state_from(state, live, cid)

    def delete(self, state: dict) -> None:
        cid, target = self._location(state["connection_id"])
        try:
            with self.provider.connect(target, self.ctx) as conn:
                store.delete_mapping(conn, cid.display_name, state["immuta_user"])
        except ProviderError as exc:
            if f"database {target.database!r} does not exist" not in exc.detail:
                raise

    def import_mapping(self, import_id: str) -> dict:
        try:
            mid = MappingId.parse(import_id)
        except InvalidId as exc:
            raise ProviderError("Invalid import ID", str(exc)) from None
        target = Target(mid.connection.hostname, mid.connection.port, mid.connection.database)
        with self.provider.connect(target, self.ctx) as conn:
            found = store.look_up_mapping(conn, mid.connection.display_name, mid.immuta_user)
        if found.deployment_type is None:
            raise self._not_registered(mid.connection, target)
        if found.mapping is None:
            raise ProviderError(
                "Cannot import immuta_user_mapping",
                f"Immuta user {mid.immuta_user!r} has no mapping on connection "
                f"{str(mid.connection)!r}. Check the user name (case matters).",
            )
        values = {"connection_id": str(mid.connection), "immuta_user": mid.immuta_user}
        return state_from(values, found.mapping, mid.connection)

    def deployment_type(self, connection_id: str) -> str | None:
        """For plan-time checks: the registered connection's deployment type, if known yet.

        A server that cannot be reached at plan time is no error here: apply checks again.
        """
        cid, target = self._location(connection_id)
        try:
            with self.provider.connect(target, self.ctx) as conn:
                return store.look_up_mapping(conn, cid.display_name, "").deployment_type
        except ProviderError:
            return None


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


def check_aws_allowed(aws_type: str | None, deployment_type: str, cid: ConnectionId) -> None:
    if aws_type is not None and deployment_type not in rules.AWS_DEPLOYMENTS:
        raise ProviderError(
            "AWS mapping not available for this connection",
            f"Connection {cid.display_name!r} is a {deployment_type} deployment; AWS principals "
            "map users only on aurora and rds connections. Remove the aws block or use "
            "postgres { ... }.",
            ("aws",),
        )


def _role_taken(principal: str | None, holder: str, cid: ConnectionId) -> ProviderError:
    return ProviderError(
        f"IAM role {principal!r} is already mapped to {holder!r}",
        f"On connection {cid.display_name!r} an IAM role maps to at most one Immuta user, and "
        f"{principal!r} belongs to Immuta user {holder!r}. Create a dedicated Immuta user that "
        "represents the role, or remove the other mapping first.",
        ("aws", "principal"),
    )


def state_from(values: dict, row: store.MappingRow, cid: ConnectionId) -> dict:
    """State for `row`, keeping what the user wrote where it means the same."""
    prior_pg = values.get("postgres")
    username = row.postgres_username
    prior_username = (prior_pg or {}).get("username")
    if prior_username and username and rules.same_in_any_case(prior_username, username):
        username = prior_pg["username"]
    if prior_pg is None and row.postgres_mode == "unset" and username is None:
        postgres = None  # the default mode, written (or imported) without a block
    else:
        postgres = {"mode": row.postgres_mode, "username": username}
    aws = None
    if row.aws_user_type is not None:
        aws = {"user_type": row.aws_user_type, "principal": row.aws_principal}
    return {
        "connection_id": values.get("connection_id") or str(cid),
        "immuta_user": row.immuta_user,
        "id": str(MappingId(cid, row.immuta_user)),
        "postgres": postgres,
        "aws": aws,
        "postgres_user_found": row.postgres_role is not None,
        "effective_postgres_username": row.postgres_role,
        "aws_principal_arn": row.aws_principal_arn,
    }
