"""The work behind immuta_user_mapping: verify against PostgreSQL and AWS, store, refresh."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from typing import Any

import psycopg
from psycopg.errors import UndefinedTable

from ...framework.diagnostics import ProviderError
from ...framework.provider import Context
from .. import store
from ..access import Access
from ..errors import DatabaseMissing
from ..ids import ConnectionId, MappingId, parse_import_id
from ..mapping_rules import (
    SINGLE_OWNER,
    Wanted,
    as_written,
    aws_changed,
    blocks_as_written,
    check_aws_allowed,
    connection_owned_elsewhere,
    location,
    managed_elsewhere,
    not_registered,
    owner_label,
    pick_role,
    require_aws_principal,
    role_taken,
    verify_aws,
    warn_missing_role,
)
from ..pg import Target
from .schema import ADOPT, REVERIFY, MappingState, flags, with_flag

RESOURCE = "immuta_user_mapping"


class MappingWorker:
    def __init__(self, access: Access, ctx: Context) -> None:
        self.access = access
        self.ctx = ctx

    # ------------------------------------------------------------------ create / update

    def _writable(self, conn: psycopg.Connection, target: Target, doing: str) -> None:
        """Refuse a writer that lacks the store's privileges (checked once per process)."""
        if target not in self.access.current_stores:
            store.check_writes(conn, target, doing)

    def create(self, planned: dict[str, Any]) -> MappingState:
        cid, target = location(planned["connection_id"])
        user = planned["immuta_user"]
        wanted = Wanted.of(planned)
        doing = f"write the mapping of {user!r} on connection {cid.display_name!r}"

        def look(conn: psycopg.Connection) -> store.MappingLookup:
            self._writable(conn, target, doing)
            return store.look_up_mapping(conn, cid.display_name, user, wanted.role_name(user))

        found = self.access.run(target, self.ctx, look, f"looking up {user!r}")
        if found.deployment_type is None:
            raise not_registered(cid, target)
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
            managed_by=SINGLE_OWNER,
        )
        adopting = ADOPT in flags(self.ctx.private)

        def save(conn: psycopg.Connection) -> str | None:
            store.ensure_current(conn, target, self.access.current_stores)
            with store.locked(conn):
                owners = store.owners(conn, cid.display_name, SINGLE_OWNER, [user])
                if owners.deployment_type is None:
                    raise not_registered(cid, target)
                self._refuse_others(owners, user, cid, adopting)
                try:
                    return store.save_mapping(conn, row)
                except psycopg.errors.ForeignKeyViolation:
                    raise not_registered(cid, target) from None

        holder = self.access.run(target, self.ctx, save, f"writing the mapping of {user!r}")
        if holder is not None:
            raise role_taken(wanted.aws_principal, holder, cid)
        self.ctx.private = with_flag(self.ctx.private, ADOPT, False)
        warn_missing_role(self.ctx, wanted, user, role, target)
        return state_from(planned, row, cid)

    def _refuse_others(
        self, owners: store.Owners, user: str, cid: ConnectionId, adopting: bool
    ) -> None:
        """Another resource manages the mapping, or every mapping of the connection."""
        if adopting:
            return  # imported on purpose: this apply takes it over
        other = owners.foreign.get(user)
        if other is not None:
            raise managed_elsewhere(user, other, RESOURCE, cid, ("immuta_user",))
        if owners.exclusive_owner is not None:
            raise connection_owned_elsewhere(
                owners.exclusive_owner, RESOURCE, cid, ("immuta_user",)
            )

    def update(self, prior: MappingState, planned: dict[str, Any]) -> MappingState:
        return self.create(planned)  # the mapping is written whole, as on create

    # ------------------------------------------------------------------ read / delete / import

    def read(self, state: MappingState) -> MappingState | None:
        cid, target = location(state["connection_id"])
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
        if self._taken(stored):
            self.ctx.diags.warning(
                f"Mapping of {user!r} is managed by another resource",
                f"On connection {cid.display_name!r} the mapping of {user!r} is now managed "
                f"by {owner_label(stored.managed_by or '')}, so this immuta_user_mapping "
                "no longer manages it and leaves Terraform's state. Remove the resource from "
                "the configuration (or import the mapping back into it).",
                ("immuta_user",),
            )
            return None
        wanted = stored.postgres_username if stored.postgres_mode == "username" else user
        role = pick_role(row.roles, stored.postgres_mode, wanted, strict=False)
        verified = verify_aws(self.access, stored.aws_user_type, stored.aws_principal, retry=False)
        changed = role != stored.postgres_role or aws_changed(
            stored.aws_user_type, verified, stored.aws_principal_arn
        )
        self.ctx.private = with_flag(self.ctx.private, REVERIFY, changed)
        iam = stored.aws_user_type in ("iam_role", "iam_user")
        live = replace(
            stored,
            postgres_role=role,
            aws_principal_arn=verified.aws_principal_arn if iam else stored.aws_principal_arn,
        )
        return state_from(state, live, cid)

    def _taken(self, stored: store.MappingRow) -> bool:
        """Whether another resource manages the mapping now (and this one did not import it)."""
        return stored.managed_by not in (None, SINGLE_OWNER) and ADOPT not in flags(
            self.ctx.private
        )

    def delete(self, state: MappingState) -> None:
        cid, target = location(state["connection_id"])
        user = state["immuta_user"]
        adopting = ADOPT in flags(self.ctx.private)

        def remove(conn: psycopg.Connection) -> str | None:
            """Who else manages the mapping, when it was left in place."""
            self._writable(conn, target, f"remove the mapping of {user!r}")
            if not store.ensure_current(conn, target, self.access.current_stores, create=False):
                return None  # no store: nothing to delete
            with suppress(UndefinedTable), store.locked(conn):  # the store dropped meanwhile
                return store.delete_mapping(
                    conn, cid.display_name, user, None if adopting else SINGLE_OWNER
                )
            return None

        with suppress(DatabaseMissing):  # the Immuta database is gone, the mapping with it
            other = self.access.run(target, self.ctx, remove, f"removing the mapping of {user!r}")
            if other is not None:
                self.ctx.diags.warning(
                    f"Mapping of {user!r} left in place",
                    f"On connection {cid.display_name!r} the mapping of {user!r} is managed by "
                    f"{owner_label(other)}; it stays, and this immuta_user_mapping leaves "
                    "Terraform's state.",
                    ("immuta_user",),
                )

    def import_state(self, import_id: str) -> MappingState:
        mid = parse_import_id(MappingId.parse, import_id)
        target = Target(mid.connection.hostname, mid.connection.port, mid.connection.database)

        def look(conn: psycopg.Connection) -> store.MappingLookup:
            return store.look_up_mapping(conn, mid.connection.display_name, mid.immuta_user)

        found = self.access.run(target, self.ctx, look, f"importing {mid.immuta_user!r}")
        if found.deployment_type is None:
            raise not_registered(mid.connection, target)
        if found.mapping is None:
            raise ProviderError(
                "Cannot import immuta_user_mapping",
                f"Immuta user {mid.immuta_user!r} has no mapping on connection "
                f"{str(mid.connection)!r}. Check the user name (case matters).",
            )
        # A mapping another resource manages, imported on purpose: the next apply takes it over.
        adopt = found.mapping.managed_by not in (None, SINGLE_OWNER) or bool(found.exclusive_owner)
        self.ctx.private = ADOPT if adopt else b""
        written = {"connection_id": str(mid.connection), **as_written(found.mapping)}
        return state_from(written, found.mapping, mid.connection)

    def deployment_type(self, connection_id: str) -> str | None:
        """For plan-time checks: the registered connection's deployment type, if known yet.

        A server that cannot be reached at plan time is no error here: apply checks again.
        """
        cid, target = location(connection_id)

        def look(conn: psycopg.Connection) -> str | None:
            return store.look_up_mapping(conn, cid.display_name, "").deployment_type

        try:
            return self.access.run(target, self.ctx, look, "planning")
        except ProviderError:
            return None


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
