"""The work behind immuta_user_mapping: verify against PostgreSQL and AWS, store, refresh."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from typing import Any

import psycopg

from ...framework.diagnostics import ProviderError
from ...framework.provider import Context
from .. import store
from ..access import Access
from ..errors import DatabaseMissing
from ..ids import ConnectionId, InvalidId, MappingId, parse_import_id
from ..mapping_rules import (
    Wanted,
    aws_changed,
    blocks_as_written,
    check_aws_allowed,
    pick_role,
    require_aws_principal,
    role_taken,
    verify_aws,
    warn_missing_role,
)
from ..pg import Target
from .schema import REVERIFY_MARK, MappingState


class MappingWorker:
    def __init__(self, access: Access, ctx: Context) -> None:
        self.access = access
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

    # ------------------------------------------------------------------ create / update

    def _writable(self, conn: psycopg.Connection, target: Target, doing: str) -> None:
        """Refuse a writer that lacks the store's privileges (checked once per process)."""
        if target not in self.access.current_stores:
            store.check_writes(conn, target, doing)

    def create(self, planned: dict[str, Any]) -> MappingState:
        cid, target = self._location(planned["connection_id"])
        user = planned["immuta_user"]
        wanted = Wanted.of(planned)
        doing = f"write the mapping of {user!r} on connection {cid.display_name!r}"

        def look(conn: psycopg.Connection) -> store.MappingLookup:
            self._writable(conn, target, doing)
            return store.look_up_mapping(conn, cid.display_name, user, wanted.role_name(user))

        found = self.access.run(target, self.ctx, look, f"looking up {user!r}")
        if found.deployment_type is None:
            raise self._not_registered(cid, target)
        check_aws_allowed(wanted.aws_user_type, found.deployment_type, cid)
        role = pick_role(found.roles, wanted.postgres_mode, wanted.role_name(user))
        verified = require_aws_principal(self.access, wanted)
        row = store.MappingRow(
            cid.display_name,
            user,
            wanted.postgres_mode,
            wanted.postgres_username,
            role,
            wanted.aws_user_type,
            wanted.aws_principal,
            verified.aws_principal_arn,
            postgres_block_written=planned.get("postgres") is not None,
        )

        def save(conn: psycopg.Connection) -> str | None:
            if target not in self.access.current_stores:
                store.ensure_current(conn)
                self.access.current_stores.add(target)
            try:
                return store.save_mapping(conn, row)
            except psycopg.errors.ForeignKeyViolation:
                raise self._not_registered(cid, target) from None

        holder = self.access.run(target, self.ctx, save, f"writing the mapping of {user!r}")
        if holder is not None:
            raise role_taken(wanted.aws_principal, holder, cid)
        warn_missing_role(self.ctx, wanted, user, role, target)
        return state_from(planned, row, cid)

    def update(self, prior: MappingState, planned: dict[str, Any]) -> MappingState:
        return self.create(planned)  # the mapping is written whole, as on create

    # ------------------------------------------------------------------ read / delete / import

    def read(self, state: MappingState) -> MappingState | None:
        cid, target = self._location(state["connection_id"])
        user = state["immuta_user"]

        def look(conn: psycopg.Connection) -> store.MappingLookup:
            return store.look_up_mapping(conn, cid.display_name, user)

        try:
            row = self.access.run(target, self.ctx, look, f"reading the mapping of {user!r}")
        except DatabaseMissing:
            return None  # the Immuta database is gone, and the registration with it
        if row.mapping is None:
            return None
        stored = row.mapping
        wanted = stored.postgres_username if stored.postgres_mode == "username" else user
        role = pick_role(row.roles, stored.postgres_mode, wanted, strict=False)
        verified = verify_aws(self.access, stored.aws_user_type, stored.aws_principal, retry=False)
        changed = role != stored.postgres_role or aws_changed(
            stored.aws_user_type, verified, stored.aws_principal_arn
        )
        self.ctx.private = REVERIFY_MARK if changed else b""
        iam = stored.aws_user_type in ("iam_role", "iam_user")
        live = replace(
            stored,
            postgres_role=role,
            aws_principal_arn=verified.aws_principal_arn if iam else stored.aws_principal_arn,
        )
        return state_from(state, live, cid)

    def delete(self, state: MappingState) -> None:
        cid, target = self._location(state["connection_id"])
        user = state["immuta_user"]

        def remove(conn: psycopg.Connection) -> None:
            self._writable(conn, target, f"remove the mapping of {user!r}")
            store.delete_mapping(conn, cid.display_name, user)

        with suppress(DatabaseMissing):  # the Immuta database is gone, the mapping with it
            self.access.run(target, self.ctx, remove, f"removing the mapping of {user!r}")

    def import_state(self, import_id: str) -> MappingState:
        mid = parse_import_id(MappingId.parse, import_id)
        target = Target(mid.connection.hostname, mid.connection.port, mid.connection.database)

        def look(conn: psycopg.Connection) -> store.MappingLookup:
            return store.look_up_mapping(conn, mid.connection.display_name, mid.immuta_user)

        found = self.access.run(target, self.ctx, look, f"importing {mid.immuta_user!r}")
        if found.deployment_type is None:
            raise self._not_registered(mid.connection, target)
        if found.mapping is None:
            raise ProviderError(
                "Cannot import immuta_user_mapping",
                f"Immuta user {mid.immuta_user!r} has no mapping on connection "
                f"{str(mid.connection)!r}. Check the user name (case matters).",
            )
        return state_from(as_written(found.mapping), found.mapping, mid.connection)

    def deployment_type(self, connection_id: str) -> str | None:
        """For plan-time checks: the registered connection's deployment type, if known yet.

        A server that cannot be reached at plan time is no error here: apply checks again.
        """
        cid, target = self._location(connection_id)

        def look(conn: psycopg.Connection) -> str | None:
            return store.look_up_mapping(conn, cid.display_name, "").deployment_type

        try:
            return self.access.run(target, self.ctx, look, "planning")
        except ProviderError:
            return None


def as_written(row: store.MappingRow) -> dict[str, Any]:
    """The configuration that wrote `row`, as far as the store recorded its spelling: with
    or without a `postgres` block (which may say only the default mode)."""
    postgres = (
        {"mode": row.postgres_mode, "username": row.postgres_username}
        if row.postgres_block_written
        else None
    )
    return {"postgres": postgres}


def state_from(written: Any, row: store.MappingRow, cid: ConnectionId) -> MappingState:
    """State for `row`, keeping what the user wrote (`written`) where it means the same."""
    postgres, aws = blocks_as_written(
        written, row.postgres_mode, row.postgres_username, row.aws_user_type, row.aws_principal
    )
    return MappingState(
        connection_id=written.get("connection_id") or str(cid),
        immuta_user=row.immuta_user,
        id=str(MappingId(cid, row.immuta_user)),
        postgres=postgres,
        aws=aws,
        postgres_user_found=row.postgres_role is not None,
        effective_postgres_username=row.postgres_role,
        aws_principal_arn=row.aws_principal_arn,
    )
