"""The work behind immuta_postgres_connection: register, refresh, re-register, remove, import."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ...framework.diagnostics import ProviderError
from ...framework.provider import Context
from .. import inspector, store
from ..access import Access
from ..errors import DatabaseMissing
from ..ids import ConnectionId, parse_import_id
from ..inspector import Filters, Fingerprint, MissingPrivileges, ServerFacts
from ..pg import Target
from ..survey import Survey, crawl, inspect
from .schema import SYNC_OFF, SYNCED, ConnectionState

MAX_LISTED = 200
MAX_LOST_LISTED = 10  # a refresh warning names this many objects, then counts the rest


@dataclass(frozen=True)
class _Registration:
    """What a refresh reads from the Immuta database, in one round of queries."""

    row: store.ConnectionRow
    facts: ServerFacts
    lost_connect: list[str]
    fingerprints: dict[str, Fingerprint]  # at the last crawl
    databases: list[str]  # the databases the connection would govern now


class ConnectionWorker:
    def __init__(self, access: Access, ctx: Context) -> None:
        self.access = access
        self.ctx = ctx

    # ------------------------------------------------------------------ create / update

    def create(self, planned: dict[str, Any]) -> ConnectionState:
        target = _target(planned)
        with _about_the_immuta_database():
            return self._register(target, planned)

    def _register(self, target: Target, planned: dict[str, Any]) -> ConnectionState:
        survey = self.survey(target, planned)
        key = planned["display_name"]
        self.ctx.check_stop()

        def register(conn: psycopg.Connection) -> store.ConnectionRow:
            try:
                with store.write_transaction(conn):
                    store.insert_connection(conn, self._row(planned, survey))
                    self._write_catalog(conn, key, survey)
                    return _written(conn, key)
            except store.DuplicateConnection as dup:
                raise _duplicate_error(key, target, dup.existing) from None
            except psycopg.errors.UniqueViolation:
                existing = store.find_connection_any_case(conn, key)
                raise _duplicate_error(key, target, existing.__dict__ if existing else {}) from None

        row = self.access.run(target, self.ctx, register, f"registering connection {key!r}")
        return state_from(row)

    def update(self, prior: ConnectionState, planned: dict[str, Any]) -> ConnectionState:
        old, new = _target(prior), _target(planned)
        survey = self.survey(new, planned)
        key = planned["display_name"]
        self.ctx.check_stop()

        def register_again(conn: psycopg.Connection) -> tuple[store.ConnectionRow, bool]:
            with store.write_transaction(conn):
                moved = store.get_connection(conn, key) is None
                if moved:
                    store.insert_connection(conn, self._row(planned, survey))
                else:
                    values = self._row(planned, survey)
                    del values["connection_key"]
                    store.update_connection(conn, key, values)
                self._write_catalog(conn, key, survey)
                return _written(conn, key), moved

        doing = f"updating connection {key!r}"
        row, moved = self.access.run(new, self.ctx, register_again, doing)
        if moved and old != new:
            self._remove_old_registration(old, key)
        return state_from(row)

    @staticmethod
    def _write_catalog(conn: psycopg.Connection, key: str, survey: Survey) -> None:
        store.sync_data_objects(conn, key, survey.objects)
        store.save_fingerprints(conn, key, survey.fingerprints)

    def _remove_old_registration(self, old: Target, key: str) -> None:
        try:
            self._unregister(old, key)
        except ProviderError as exc:
            self.ctx.diags.warning(
                "Old registration not removed",
                f"The connection {key!r} moved; removing "
                f"its old registration from {old.where} failed: {exc.detail or exc.summary}",
            )

    def _row(self, planned: dict[str, Any], survey: Survey) -> dict[str, Any]:
        creds = self.access.credentials()
        return {
            "connection_key": planned["display_name"],
            "hostname": planned["hostname"],
            "port": planned["port"],
            "database_name": planned["database"],
            "deployment_type": planned["deployment_type"],
            "auth_method": self.access.settings.auth_method,
            "username": creds.username,
            "server_version": survey.facts.version,
            "superuser": survey.facts.superuser,
            "on_missing_privileges": planned["on_missing_privileges"],
            "databases": survey.databases,
            "skipped_object_count": survey.skipped,
            "object_sync": planned.get("object_sync") or "plan",
            # As configured, so Read gives back exactly what the user wrote.
            "filters": Jsonb(
                {"include": planned.get("include"), "exclude": planned.get("exclude")}
            ),
        }

    def _unregister(self, target: Target, key: str) -> None:
        """Remove the registration (its data objects and mappings with it), if it is there."""

        def remove(conn: psycopg.Connection) -> None:
            store.check_writes(conn, target, f"remove connection {key!r}")
            with store.write_transaction(conn, create=False):
                store.delete_connection(conn, key)

        self.access.run(target, self.ctx, remove, f"removing connection {key!r}")

    def survey(self, target: Target, planned: dict[str, Any]) -> Survey:
        """Look at the server; raise when it cannot be registered as `planned` asks."""
        with _about_the_immuta_database():
            survey = inspect(self.access, self.ctx, target, filters_of(planned))
        facts = survey.facts
        if not facts.supported:
            raise ProviderError(
                f"PostgreSQL {facts.version} is not supported",
                f"{target.hostname}:{target.port} runs PostgreSQL {facts.version}; Immuta "
                "registers PostgreSQL 16 and 17 only. Upgrade the server or point hostname "
                "at a supported one.",
                ("hostname",),
            )
        if survey.foreign:
            shown = ", ".join(survey.foreign[:5]) + (", ..." if len(survey.foreign) > 5 else "")
            self.ctx.diags.warning(
                "The Immuta database is not dedicated to Immuta",
                f"{target.where} holds other objects ({shown}). Immuta keeps its state there; "
                "a database used only by Immuta cannot be dropped by accident by ETL jobs. "
                "Create a separate database for Immuta and point `database` at it.",
                ("database",),
            )
        if survey.missing:
            self._report_missing(planned, target, survey.missing, survey)
        return survey

    def _report_missing(
        self, planned: dict[str, Any], target: Target, missing: MissingPrivileges, survey: Survey
    ) -> None:
        lines = _clip(missing.lines())
        grants = _clip(missing.grants())
        name = planned["display_name"]
        if planned["on_missing_privileges"] == "skip" and missing.createrole and not missing.store:
            self.ctx.diags.warning(
                f"Connection {name!r}: {survey.skipped} objects skipped for missing privileges",
                f"Registered {len(survey.objects)} objects in {len(survey.databases)} databases; "
                f"user {missing.user!r} on {target.hostname}:{target.port} lacks "
                f"{missing.count} privileges, so these were left ungoverned:\n"
                + "\n".join(lines)
                + "\n\nTo govern them too, run as a superuser or the owners:\n"
                + "\n".join(grants),
                ("on_missing_privileges",),
            )
            return
        extra = ""
        if not missing.createrole:
            extra = (
                "\n\nCREATEROLE is needed for anything to be governed, so "
                'on_missing_privileges = "skip" cannot help until it is granted.'
            )
        elif missing.store:
            extra = (
                "\n\nThe registration is kept in the Immuta database, so its privileges are "
                'needed whatever on_missing_privileges says ("skip" cannot help).'
            )
        raise ProviderError(
            f"Missing PostgreSQL privileges to register connection {name!r}",
            f"User {missing.user!r} on {target.hostname}:{target.port} is not a superuser and "
            f"lacks {missing.count} of the privileges Immuta needs (CREATEROLE, and CONNECT, "
            "USAGE, SELECT, INSERT, UPDATE, DELETE, TRUNCATE WITH GRANT OPTION on what it "
            "protects) and the registration needs (CREATE on the Immuta database, or the "
            f"schema {store.SCHEMA} there and the privileges to write it):\n"
            + "\n".join(lines)
            + "\n\nRun these statements as a superuser or the objects' owners, then apply "
            "again:\n"
            + "\n".join(grants)
            + '\n\nOr set on_missing_privileges = "skip" to register only what can be governed.'
            + extra,
        )

    # ------------------------------------------------------------------ read / delete / import

    def read(self, state: ConnectionState) -> ConnectionState | None:
        target = _target(state)
        key = state["display_name"]

        def look(conn: psycopg.Connection) -> _Registration | None:
            row = store.get_connection(conn, key)
            if row is None:
                return None
            facts = inspector.server_facts(conn)
            filters = Filters.from_json(row.filters)
            return _Registration(
                row,
                facts,
                [] if facts.superuser else _lost_connect(conn, row.databases),
                store.fingerprints(conn, key),
                [
                    d.name
                    for d in inspector.databases_to_protect(conn, target.database)
                    if filters.database(d.name)
                ],
            )

        try:
            found = self.access.run(target, self.ctx, look, f"reading connection {key!r}")
        except DatabaseMissing:
            return None  # the Immuta database is gone, and the registration with it
        if found is None:
            return None
        self._warn_changes(key, target, found.row, found.facts, found.lost_connect)
        return state_from(found.row, self._check_catalogs(target, found))

    def _check_catalogs(self, target: Target, found: _Registration) -> str:
        """Object sync and lost grants, found cheaply; the object_sync_status.

        Each database's fingerprints are compared with those saved at the last crawl; only
        databases whose catalog (object sync) or privileges (lost grants, for a user that
        is not a superuser) changed are looked at closer.
        """
        row = found.row
        sync = row.object_sync == "plan"
        watch_grants = not found.facts.superuser
        quiet = SYNCED if sync else SYNC_OFF
        if not (sync or watch_grants):
            return quiet
        names = found.databases if sync else [d for d in found.databases if d in row.databases]
        current = crawl(self.access, self.ctx, target, names, read=None).fingerprints
        stored = found.fingerprints
        catalog_changed: list[str] = []
        if sync:
            was = {db: p.catalog for db, p in stored.items()}
            catalog_changed = sorted(
                {db for db, p in current.items() if was.get(db) != p.catalog}
                | (set(stored) - set(current))
            )
        acl_changed = [
            db
            for db, p in sorted(current.items())
            if watch_grants
            and db in row.databases
            and db in stored
            and stored[db].acl is not None
            and stored[db].acl != p.acl
        ]
        if acl_changed:
            self._warn_lost_grants(row, target, found.facts.current_user, acl_changed)
        if not catalog_changed:
            return quiet
        survey = inspect(
            self.access,
            self.ctx,
            target,
            Filters.from_json(row.filters),
            catalog_changed,
            writing=False,
        )

        def registered(conn: psycopg.Connection) -> set[store.ObjectKey]:
            return store.object_keys(conn, row.connection_key, catalog_changed)

        before = self.access.run(target, self.ctx, registered, "reading the registered objects")
        return self._sync_status(row, survey, before)

    def _sync_status(
        self, row: store.ConnectionRow, survey: Survey, before: set[store.ObjectKey]
    ) -> str:
        """Objects added or dropped since the last crawl, in the databases surveyed again."""
        now = {(o.database, o.schema, o.name, o.object_type) for o in survey.objects}
        added, removed = sorted(now - before), sorted(before - now)
        if not added and not removed:
            return SYNCED
        examples = [f"+ {'.'.join(k[:3])}" for k in added[:10]]
        examples += [f"- {'.'.join(k[:3])}" for k in removed[:10]]
        status = f"{len(added)} objects appeared, {len(removed)} disappeared since the last crawl"
        self.ctx.diags.warning(
            f"Connection {row.connection_key!r}: {status}",
            "Object sync found changes on the server that the registration does not cover yet:\n"
            + "\n".join(examples)
            + ("\n..." if len(added) + len(removed) > len(examples) else "")
            + '\n\nApply to re-crawl and register them (object_sync = "plan"), or set '
            'object_sync = "off" to stop tracking.',
        )
        return status

    def _warn_lost_grants(
        self, row: store.ConnectionRow, target: Target, user: str, databases: list[str]
    ) -> None:
        """Warn when the user lost a privilege Immuta needs on what the connection governs.

        Only the schemas and objects the user lacks something on travel (the server filters
        them), then the store says which of those are registered.
        """
        lacking = crawl(self.access, self.ctx, target, databases, inspector.lacking_privileges)
        objects = [o for c in lacking.catalogs for o in c.objects]
        schemas = [(c.database, s) for c in lacking.catalogs for s in c.schemas_missing_usage]
        if not objects and not schemas:
            return

        def look(conn: psycopg.Connection) -> tuple[set[store.ObjectKey], set[tuple[str, str]]]:
            keys = [(o.database, o.schema, o.name, o.object_type) for o in objects]
            return store.governed(conn, row.connection_key, keys, schemas)

        governed, governed_schemas = self.access.run(
            target, self.ctx, look, "reading the registered objects"
        )
        lost = MissingPrivileges(
            user,
            schemas=[s for s in schemas if s in governed_schemas],
            objects=[
                o for o in objects if (o.database, o.schema, o.name, o.object_type) in governed
            ],
        )
        if not lost:
            return
        lines = lost.lines()
        shown = lines[:MAX_LOST_LISTED]
        more = len(lines) - len(shown)
        count = len(lost.schemas) + len(lost.objects)
        self.ctx.diags.warning(
            f"Connection {row.connection_key!r}: user {user!r} lost privileges on {count} "
            f"governed {'schema or object' if count == 1 else 'schemas and objects'}",
            f"On {target.hostname}:{target.port}, user {user!r} no longer holds every "
            "privilege Immuta needs (WITH GRANT OPTION) on what this connection governs, so "
            "Immuta cannot enforce policies there:\n"
            + "\n".join(shown)
            + (f"\n... and {more} more" if more else "")
            + "\n\nRestore them as a superuser or the objects' owners:\n"
            + "\n".join(_clip(lost.grants()))
            + '\n\nOr apply with on_missing_privileges = "skip" to stop governing them.',
        )

    def _warn_changes(
        self,
        key: str,
        target: Target,
        row: store.ConnectionRow,
        facts: ServerFacts,
        lost_connect: list[str],
    ) -> None:
        changes = []
        if facts.version != row.server_version:
            changes.append(
                f"the server version changed from {row.server_version} to {facts.version}"
                + ("" if facts.supported else " (not supported by Immuta)")
            )
        if row.superuser and not facts.superuser:
            changes.append(f"user {facts.current_user!r} is no longer a superuser")
        if not facts.superuser and not facts.createrole:
            changes.append(f"user {facts.current_user!r} lacks CREATEROLE")
        if lost_connect:
            changes.append(
                "CONNECT WITH GRANT OPTION is missing on " + ", ".join(sorted(lost_connect))
            )
        if changes:
            self.ctx.diags.warning(
                f"Connection {key!r} changed since registration",
                f"On {target.hostname}:{target.port}: " + "; ".join(changes) + ". Apply again "
                "(or change on_missing_privileges) to re-verify the registration.",
            )

    def delete(self, state: ConnectionState) -> None:
        # A missing Immuta database took the registration with it.
        with suppress(DatabaseMissing):
            self._unregister(_target(state), state["display_name"])

    def import_state(self, import_id: str) -> ConnectionState:
        cid = parse_import_id(ConnectionId.parse, import_id)
        target = Target(cid.hostname, cid.port, cid.database)

        def look(conn: psycopg.Connection) -> store.ConnectionRow | None:
            return store.get_connection(conn, cid.display_name)

        row = self.access.run(target, self.ctx, look, f"importing connection {cid.display_name!r}")
        if row is None:
            raise ProviderError(
                "Cannot import immuta_postgres_connection",
                f"No connection named {cid.display_name!r} is registered in {target.where}. "
                "Check the display name (case matters) and the Immuta database.",
            )
        return state_from(row)


@contextmanager
def _about_the_immuta_database() -> Iterator[None]:
    """A missing database here is the Immuta database: the error points at `database`."""
    try:
        yield
    except DatabaseMissing as exc:
        exc.path = ("database",)
        raise


def _written(conn: psycopg.Connection, key: str) -> store.ConnectionRow:
    """The connection row this transaction just wrote."""
    row = store.get_connection(conn, key)
    if row is None:
        raise RuntimeError(f"the connection {key!r} was written but cannot be read back")
    return row


def _lost_connect(conn: psycopg.Connection, databases: list[str]) -> list[str]:
    if not databases:
        return []
    rows = conn.execute(
        """SELECT datname FROM pg_database WHERE datname = ANY(%s)
           AND NOT has_database_privilege(oid, 'CONNECT WITH GRANT OPTION')""",
        (databases,),
    ).fetchall()
    return [r[0] for r in rows]


def _target(values: ConnectionState | dict[str, Any]) -> Target:
    return Target(values["hostname"], int(values["port"]), values["database"])


def _clip(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED] + [f"... and {len(lines) - MAX_LISTED} more"]


def _duplicate_error(key: str, target: Target, existing: dict[str, Any]) -> ProviderError:
    registered = existing.get("registered_at")
    when = f", registered {registered.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if registered else ""
    who = f" by {existing['username']!r}" if existing.get("username") else ""
    name = existing.get("connection_key", key)
    return ProviderError(
        f"A connection named {name!r} is already registered",
        f"{target.where} already holds the connection {name!r} ({existing.get('hostname')}:"
        f"{existing.get('port')}, {existing.get('deployment_type')}{who}{when}). Display names "
        "are unique (in any case) within an Immuta database. Choose another display_name, or "
        "if this configuration should manage it, import it: terraform import "
        f"<address> '{ConnectionId(target.hostname, target.port, target.database, name)}'",
        ("display_name",),
    )


def filters_of(values: dict[str, Any]) -> Filters:
    return Filters.from_config(values.get("include"), values.get("exclude"))


def state_from(row: store.ConnectionRow, status: str | None = None) -> ConnectionState:
    if status is None:
        status = SYNCED if row.object_sync == "plan" else SYNC_OFF
    return ConnectionState(
        object_sync=row.object_sync,
        object_sync_status=status,
        include=row.filters.get("include"),
        exclude=row.filters.get("exclude"),
        display_name=row.connection_key,
        deployment_type=row.deployment_type,
        hostname=row.hostname,
        port=row.port,
        database=row.database_name,
        on_missing_privileges=row.on_missing_privileges,
        id=str(ConnectionId(row.hostname, row.port, row.database_name, row.connection_key)),
        server_version=row.server_version,
        auth_method=row.auth_method,
        username=row.username,
        databases=list(row.databases),
        data_object_count=row.data_object_count,
        skipped_object_count=row.skipped_object_count,
        registered_at=row.registered_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
