"""The work behind immuta_user_mappings: verify in bulk, store in one transaction, refresh.

Whatever the number of mappings, an apply is a handful of statements in one transaction
(one look-up of the roles, one of the other managers, a DELETE and a COPY), and the IAM
principals are resolved in bulk (AwsClient.principal_arns). Only the entries the plan
changed are verified and written; the others keep what the last apply found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

import psycopg
from psycopg.errors import UndefinedTable

from ...framework.diagnostics import ProviderError
from ...framework.provider import Cancelled, Context
from ...framework.values import UNKNOWN
from .. import store
from ..access import Access
from ..errors import DatabaseMissing
from ..ids import ConnectionId, parse_import_id
from ..mapping_rules import (
    IAM_TYPES,
    SET_OWNER_PREFIX,
    VERIFIED,
    Problems,
    Wanted,
    as_written,
    aws_changed,
    aws_not_allowed,
    blocks_as_written,
    connection_owned_elsewhere,
    location,
    managed_elsewhere,
    not_registered,
    owner_label,
    pick_role,
    require_aws_principals,
    role_taken,
    verify_many,
    warn_missing_roles,
)
from ..pg import Target
from .schema import Entry, MappingsState, Private, entry_path

RESOURCE = "immuta_user_mappings"
TAKEN_NAMED = 5  # a warning about mappings taken over by other resources names this many


def new_owner_id() -> str:
    return os.urandom(8).hex()


class MappingsWorker:
    def __init__(self, access: Access, ctx: Context) -> None:
        self.access = access
        self.ctx = ctx

    # ------------------------------------------------------------------ plan

    def check_plan(
        self,
        connection_id: str,
        owner_id: Any,
        new: list[str],
        aws_types: dict[str, str],
        claims_all: list[str] | None,
        adopting: bool,
    ) -> None:
        """What the plan can tell before apply: an `aws` object on a connection that takes
        none, and mappings another resource manages. A server that cannot be reached at
        plan time, or a store an older provider wrote, is no error here: apply checks again."""
        cid, target = location(connection_id)
        owner = SET_OWNER_PREFIX + owner_id if isinstance(owner_id, str) else ""
        try:
            with self.access.connect(target, self.ctx) as conn:
                found = store.owners(
                    conn, cid.display_name, owner, new, every_user=claims_all is not None
                )
        except Cancelled:
            raise
        except ProviderError:  # no store, or an older one (the pool's error classes)
            return
        if found.deployment_type is None:
            return  # not registered yet (or any more): apply says so
        problems = Problems()
        for user, aws_type in aws_types.items():
            error = aws_not_allowed(aws_type, found.deployment_type, cid, entry_path(user))
            if error:
                problems.add_error(error)
        if not adopting:
            judge_owners(found, owner, cid, new, [], claims_all, problems)
        for error in problems.errors:
            self.ctx.diags.error(error.summary, error.detail, error.path)
        unlisted = [u for u in found.unmanaged if claims_all is not None and u not in claims_all]
        if unlisted:
            named = ", ".join(repr(u) for u in unlisted[:TAKEN_NAMED])
            self.ctx.diags.warning(
                f"exclusive = true deletes {len(unlisted)} mappings made outside Terraform",
                f"Connection {cid.display_name!r} has mappings that no resource manages and "
                f"that this resource does not list: {named}"
                f"{' and more' if len(unlisted) > TAKEN_NAMED else ''}. As the exclusive owner "
                "of the connection's mappings, this apply deletes them. Add them to mappings "
                "to keep them.",
                ("exclusive",),
            )

    # ------------------------------------------------------------------ create / update

    def create(self, planned: dict[str, Any]) -> MappingsState:
        return self._apply(None, planned)

    def update(self, prior: MappingsState, planned: dict[str, Any]) -> MappingsState:
        return self._apply(prior, planned)

    def _apply(self, prior: MappingsState | None, planned: dict[str, Any]) -> MappingsState:
        cid, target = location(planned["connection_id"])
        key = cid.display_name
        private = Private.parse(self.ctx.private)
        owner_id = prior["owner_id"] if prior is not None and prior["owner_id"] else new_owner_id()
        owner = SET_OWNER_PREFIX + owner_id
        desired: dict[str, Any] = planned["mappings"]
        before: dict[str, Entry] = prior["mappings"] if prior is not None else {}
        exclusive = bool(planned["exclusive"])
        # Entries to verify and write: new or changed ones, and those to verify again (the
        # plan left their values unknown); the others keep what the last apply found.
        changed = {
            user: Wanted.of(entry)
            for user, entry in desired.items()
            if (prior_entry := before.get(user)) is None
            or entry["postgres"] != prior_entry["postgres"]
            or entry["aws"] != prior_entry["aws"]
            or any(entry[name] is UNKNOWN for name in VERIFIED)
        }
        removed = [user for user in before if user not in desired]

        def look(conn: psycopg.Connection) -> store.MappingSetView:
            if target not in self.access.current_stores:  # refused before anything is written
                store.check_writes(conn, target, f"write the mappings of {key!r}")
            store.ensure_current(conn, target, self.access.current_stores, create=False)
            return store.read_mappings(
                conn, key, [], [n for u, w in changed.items() if (n := w.role_name(u))]
            )

        view = self.access.run(target, self.ctx, look, f"reading the mappings of {key!r}")
        if view.deployment_type is None:
            raise not_registered(cid, target)
        problems = Problems()
        roles = self._roles(changed, view, cid, problems)
        problems.raise_any(self.ctx.diags)  # before asking AWS anything
        verified = require_aws_principals(self.access, changed, entry_path, problems)
        problems.raise_any(self.ctx.diags)
        rows = [
            store.MappingRow(
                key,
                user,
                w.postgres_mode,
                w.postgres_username,
                roles[user],
                w.aws_user_type,
                w.aws_principal,
                verified[user].aws_principal_arn,
                postgres_block_written=desired[user]["postgres"] is not None,
                managed_by=owner,
            )
            for user, w in changed.items()
        ]
        self._same_role_twice(rows, desired, problems)
        problems.raise_any(self.ctx.diags)

        def write(conn: psycopg.Connection) -> dict[str, str]:
            """The whole write, in one transaction under the store's lock (retried whole
            after a transient failure): the mappings left to other managers."""
            with store.locked(conn):
                found = store.owners(
                    conn,
                    key,
                    owner,
                    [*changed, *removed, *(desired if private.adopt else ())],
                    every_user=exclusive,
                    arns=[
                        r.aws_principal_arn
                        for r in rows
                        if r.aws_user_type == "iam_role" and r.aws_principal_arn
                    ],
                    writing=[*changed, *removed],
                )
                if found.deployment_type is None:
                    raise not_registered(cid, target)
                adopted = set(before) if private.adopt else set()
                kept = judge_owners(
                    found,
                    owner,
                    cid,
                    list(changed),
                    removed,
                    list(desired) if exclusive else None,
                    problems,
                    adopted,
                    adopting_connection=private.adopt,
                )
                for arn, holder in found.role_holders.items():
                    # One of ours: reported above; not ours, on an exclusive connection:
                    # deleted below.
                    if holder in desired or exclusive:
                        continue
                    user = next(r.immuta_user for r in rows if r.aws_principal_arn == arn)
                    principal = desired[user]["aws"]["principal"]
                    problems.add_error(role_taken(principal, holder, cid, entry_path(user)))
                problems.raise_any(self.ctx.diags)
                if exclusive:  # first: a role that an outside mapping held goes to its new user
                    store.delete_mappings_except(conn, key, list(desired))
                store.replace_mappings(
                    conn,
                    key,
                    rows,
                    [user for user in removed if user not in kept],
                    desired if private.adopt else (),
                    owner,
                )
                if exclusive and found.exclusive_owner != owner:
                    store.set_exclusive_owner(conn, key, owner)
                elif (
                    not exclusive
                    and found.exclusive_owner is not None
                    and (found.exclusive_owner == owner or private.adopt)
                ):
                    store.set_exclusive_owner(conn, key, None)
            return kept

        kept = self.access.run(target, self.ctx, write, f"writing the mappings of {key!r}")
        self._warn_kept(kept, cid)
        missing = [
            (r.immuta_user, changed[r.immuta_user].role_name(r.immuta_user))
            for r in rows
            if r.postgres_mode != "none" and r.postgres_role is None
        ]
        warn_missing_roles(self.ctx, missing, target, entry_path, ("mappings",))
        self.ctx.private = Private().encode()
        written = {r.immuta_user: r for r in rows}
        return MappingsState(
            connection_id=planned["connection_id"],
            exclusive=exclusive,
            mappings={
                user: stored_entry(entry, written[user]) if user in written else entry
                for user, entry in desired.items()
            },
            id=planned["connection_id"],
            owner_id=owner_id,
        )

    def _roles(
        self,
        changed: dict[str, Wanted],
        view: store.MappingSetView,
        cid: ConnectionId,
        problems: Problems,
    ) -> dict[str, str | None]:
        """Per entry, the PostgreSQL role it maps to (None: not found, or mode none); an
        `aws` object where the connection takes none, and an ambiguous name, are problems."""
        roles: dict[str, str | None] = {}
        deployment = view.deployment_type or ""
        for user, w in changed.items():
            at = entry_path(user)
            error = aws_not_allowed(w.aws_user_type, deployment, cid, at)
            if error is not None:
                problems.add_error(error)
            name = w.role_name(user)
            candidates = view.roles.get(name.lower(), []) if name else []
            try:
                roles[user] = pick_role(candidates, w.postgres_mode, name, at=at)
            except ProviderError as exc:
                problems.add_error(exc)
        return roles

    def _same_role_twice(
        self, rows: list[store.MappingRow], desired: dict[str, Any], problems: Problems
    ) -> None:
        """Two entries whose IAM roles, written differently (a name and an ARN), are one."""
        holders = {
            entry["aws_principal_arn"]: user
            for user, entry in desired.items()
            if entry["aws"] is not None
            and entry["aws"]["user_type"] == "iam_role"
            and entry["aws_principal_arn"] not in (None, UNKNOWN)
        }
        for row in rows:
            if row.aws_user_type != "iam_role" or row.aws_principal_arn is None:
                continue
            first = holders.setdefault(row.aws_principal_arn, row.immuta_user)
            if first != row.immuta_user:
                problems.add(
                    f"IAM role {row.aws_principal_arn!r} is mapped twice",
                    f"Immuta users {first!r} and {row.immuta_user!r} both map to IAM role "
                    f"{row.aws_principal_arn!r}; an IAM role maps to at most one Immuta user per "
                    "connection. Create a dedicated Immuta user that represents the role, and "
                    "map only that one.",
                    (*entry_path(row.immuta_user), "aws", "principal"),
                )

    def _warn_kept(self, kept: dict[str, str], cid: ConnectionId) -> None:
        if not kept:
            return
        self.ctx.diags.warning(
            f"{len(kept)} mappings left in place",
            f"On connection {cid.display_name!r} these mappings are managed by other resources "
            f"now, so removing them from this immuta_user_mappings leaves them as they are: "
            f"{named_owners(kept)}.",
            ("mappings",),
        )

    # ------------------------------------------------------------------ read / delete / import

    def read(self, state: MappingsState) -> MappingsState | None:
        cid, target = location(state["connection_id"])
        private = Private.parse(self.ctx.private)
        owner = SET_OWNER_PREFIX + state["owner_id"]
        before = state["mappings"] or {}
        users = None if state["exclusive"] else list(before)
        try:
            view = self.access.run(
                target,
                self.ctx,
                lambda conn: store.read_mappings(conn, cid.display_name, users),
                f"reading the mappings of connection {cid.display_name!r}",
            )
        except DatabaseMissing:
            return None  # the Immuta database is gone, and the registration with it
        if view.deployment_type is None:
            return None  # the registration is gone, and its mappings with it
        taken: dict[str, str] = {}
        rows: dict[str, store.MappingRow] = {}
        for user, row in view.rows.items():
            foreign = row.managed_by is not None and row.managed_by != owner
            if foreign and user in before and not private.adopt:
                taken[user] = row.managed_by or ""
            else:
                rows[user] = row
        verified = verify_many(
            self.access,
            {
                u: Wanted(r.postgres_mode, None, r.aws_user_type, r.aws_principal)
                for u, r in rows.items()
            },
            retry=False,
        )
        mappings: dict[str, Entry] = {}
        reverify = []
        for user, row in rows.items():
            name = row.postgres_username if row.postgres_mode == "username" else user
            candidates = view.roles.get(name.lower(), []) if name else []
            role = pick_role(candidates, row.postgres_mode, name, strict=False)
            live = verified[user]
            if role != row.postgres_role or aws_changed(
                row.aws_user_type, live, row.aws_principal_arn
            ):
                reverify.append(user)
            arn = (
                live.aws_principal_arn if row.aws_user_type in IAM_TYPES else row.aws_principal_arn
            )
            mappings[user] = entry_from(before.get(user) or {}, row, role, arn)
        if taken:
            self._warn_taken(taken, cid)
        self.ctx.private = Private(private.adopt, reverify).encode()
        return MappingsState(
            connection_id=state["connection_id"],
            exclusive=state["exclusive"],
            mappings=mappings,
            id=state["id"] or state["connection_id"],
            owner_id=state["owner_id"],
        )

    def _warn_taken(self, taken: dict[str, str], cid: ConnectionId) -> None:
        self.ctx.diags.warning(
            f"{len(taken)} mappings are managed by other resources now",
            f"On connection {cid.display_name!r} other resources took over "
            f"{named_owners(taken)} (imported there). This immuta_user_mappings no longer "
            "manages them: they leave its state, and its plan shows them as to be created "
            "until you remove them from its configuration.",
            ("mappings",),
        )

    def delete(self, state: MappingsState) -> None:
        cid, target = location(state["connection_id"])
        private = Private.parse(self.ctx.private)
        owner = SET_OWNER_PREFIX + state["owner_id"]
        users = list(state["mappings"] or {})

        def remove(conn: psycopg.Connection) -> dict[str, str]:
            """Delete this resource's mappings; those other resources manage now are kept."""
            kept: dict[str, str] = {}
            if not store.ensure_current(conn, target, self.access.current_stores, create=False):
                return kept  # no store: nothing to delete
            with suppress(UndefinedTable), store.locked(conn):  # the store dropped meanwhile
                found = store.owners(conn, cid.display_name, owner, users)
                if not private.adopt:
                    kept = found.foreign
                store.replace_mappings(
                    conn, cid.display_name, [], [u for u in users if u not in kept], (), owner
                )
                if found.exclusive_owner is not None and (
                    found.exclusive_owner == owner or private.adopt
                ):
                    store.set_exclusive_owner(conn, cid.display_name, None)
            return kept

        with suppress(DatabaseMissing):  # the Immuta database is gone, the mappings with it
            kept = self.access.run(
                target, self.ctx, remove, f"deleting the mappings of {cid.display_name!r}"
            )
            self._warn_kept(kept, cid)

    def import_state(self, import_id: str) -> MappingsState:
        cid = parse_import_id(ConnectionId.parse, import_id)
        target = Target(cid.hostname, cid.port, cid.database)
        view = self.access.run(
            target,
            self.ctx,
            lambda conn: store.read_mappings(conn, cid.display_name, None),
            f"importing the mappings of connection {cid.display_name!r}",
        )
        if view.deployment_type is None:
            raise not_registered(cid, target)
        # Imported on purpose: the next apply takes over whatever another resource managed.
        self.ctx.private = Private(adopt=True).encode()
        connection_id = str(cid)
        return MappingsState(
            connection_id=connection_id,
            exclusive=view.exclusive_owner is not None,
            mappings={user: stored_entry(as_written(row), row) for user, row in view.rows.items()},
            id=connection_id,
            owner_id=new_owner_id(),
        )


def named_owners(managers: dict[str, str]) -> str:
    """A few users and who manages each ("'a' (an immuta_user_mapping resource), ..."), the
    rest counted."""
    named = ", ".join(
        f"{user!r} ({owner_label(other)})" for user, other in list(managers.items())[:TAKEN_NAMED]
    )
    return named + (" and more" if len(managers) > TAKEN_NAMED else "")


def judge_owners(
    found: store.Owners,
    owner: str,
    cid: ConnectionId,
    writing: Iterable[str],
    removing: Iterable[str],
    keeping_only: list[str] | None,
    problems: Problems,
    adopted: set[str] = frozenset(),  # type: ignore[assignment]
    adopting_connection: bool = False,
) -> dict[str, str]:
    """Which writes would take a mapping (or the whole connection) from another resource:
    those are problems. `keeping_only` (an exclusive resource): the users it keeps; every
    other mapping of the connection it would delete. Mappings to remove that another
    resource manages now are left in place: returned, user -> manager."""
    if found.exclusive_owner not in (None, owner) and not adopting_connection:
        problems.add_error(
            connection_owned_elsewhere(found.exclusive_owner, RESOURCE, cid, ("connection_id",))
        )
    kept = {}
    foreign = {u: m for u, m in found.foreign.items() if u not in adopted}
    for user in writing:
        if user in foreign:
            problems.add_error(
                managed_elsewhere(user, foreign.pop(user), RESOURCE, cid, entry_path(user))
            )
    if keeping_only is None:
        for user in removing:
            if user in foreign:
                kept[user] = foreign.pop(user)
    else:  # it would delete them, or write them: every one is a conflict
        for user, other in foreign.items():
            problems.add_error(
                managed_elsewhere(user, other, f"exclusive {RESOURCE}", cid, entry_path(user))
            )
    return kept


def entry_from(written: Any, row: store.MappingRow, role: str | None, arn: str | None) -> Entry:
    """An entry for `row`, keeping what the user wrote (`written`) where it means the same,
    with the role and ARN found."""
    postgres, aws = blocks_as_written(
        written, row.postgres_mode, row.postgres_username, row.aws_user_type, row.aws_principal
    )
    return Entry(
        postgres=postgres,
        aws=aws,
        postgres_user_found=role is not None,
        effective_postgres_username=role,
        aws_principal_arn=arn,
    )


def stored_entry(written: Any, row: store.MappingRow) -> Entry:
    """An entry for `row` as the last apply found it."""
    return entry_from(written, row, row.postgres_role, row.aws_principal_arn)
