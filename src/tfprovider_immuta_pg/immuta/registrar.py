"""Registering, refreshing and removing a connection: the work behind the resource."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from ..framework.diagnostics import ProviderError
from ..framework.provider import Context
from . import inspector, store
from .connection import SYNC_OFF, SYNCED
from .ids import ConnectionId, InvalidId
from .inspector import CatalogObject, DatabaseCatalog, Filters, MissingPrivileges, ServerFacts
from .pg import Target

if TYPE_CHECKING:
    from .provider import ImmutaProvider

CRAWL_WORKERS = 4
MAX_LISTED = 200


@dataclass
class Survey:
    """What a look at the server finds, before anything is written."""

    facts: ServerFacts
    target: Target
    foreign: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)  # governed databases
    objects: list[CatalogObject] = field(default_factory=list)  # governable objects
    skipped: int = 0
    missing: MissingPrivileges | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)


class Registrar:
    def __init__(self, provider: ImmutaProvider, ctx: Context) -> None:
        self.provider = provider
        self.ctx = ctx

    # ------------------------------------------------------------------ create / update

    def register(self, planned: dict) -> dict:
        target = _target(planned)
        survey = self.survey(target, planned)
        key = planned["display_name"]
        self.ctx.check_stop()
        with self.provider.connect(target, self.ctx) as conn:
            try:
                with store.write_transaction(conn):
                    store.insert_connection(conn, self._row(planned, survey))
                    self._write_catalog(conn, key, survey)
                    row = store.get_connection(conn, key)
            except store.DuplicateConnection as dup:
                raise _duplicate_error(key, target, dup.existing) from None
            except psycopg.errors.UniqueViolation:
                existing = store.find_connection_any_case(conn, key)
                raise _duplicate_error(key, target, existing.__dict__ if existing else {}) from None
        return state_from(row)

    def reregister(self, prior: dict, planned: dict) -> dict:
        old, new = _target(prior), _target(planned)
        survey = self.survey(new, planned)
        key = planned["display_name"]
        self.ctx.check_stop()
        with self.provider.connect(new, self.ctx) as conn, store.write_transaction(conn):
            moved = store.get_connection(conn, key) is None
            if moved:
                store.insert_connection(conn, self._row(planned, survey))
            else:
                values = self._row(planned, survey)
                del values["connection_key"]
                store.update_connection(conn, key, values)
            self._write_catalog(conn, key, survey)
            row = store.get_connection(conn, key)
        if moved and old != new:
            self._remove_old_registration(old, key)
        return state_from(row)

    @staticmethod
    def _write_catalog(conn: psycopg.Connection, key: str, survey: Survey) -> None:
        store.sync_data_objects(conn, key, survey.objects)
        store.save_fingerprints(conn, key, survey.fingerprints)

    def _remove_old_registration(self, old: Target, key: str) -> None:
        try:
            with (
                self.provider.connect(old, self.ctx) as conn,
                store.write_transaction(conn, create=False),
            ):
                store.delete_connection(conn, key)
        except ProviderError as exc:
            self.ctx.diags.warning(
                "Old registration not removed",
                f"The connection {key!r} moved; removing "
                f"its old registration from {old.where} failed: {exc.detail or exc.summary}",
            )

    def _row(self, planned: dict, survey: Survey) -> dict[str, Any]:
        creds = self.provider.credentials()
        return {
            "connection_key": planned["display_name"],
            "hostname": planned["hostname"],
            "port": planned["port"],
            "database_name": planned["database"],
            "deployment_type": planned["deployment_type"],
            "auth_method": self.provider.settings.auth_method,
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

    def survey(self, target: Target, planned: dict) -> Survey:
        """Look at the server; raise when it cannot be registered as `planned` asks."""
        survey = self.inspect(target, filters_of(planned))
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

    def inspect(self, target: Target, filters: Filters, only: list[str] | None = None) -> Survey:
        """Version, privileges and catalog, without judging; `only` limits the databases."""
        with self.provider.connect(target, self.ctx) as conn:
            facts = inspector.server_facts(conn)
            databases = [
                d
                for d in inspector.databases_to_protect(conn, target.database)
                if filters.database(d.name) and (only is None or d.name in only)
            ]
            foreign = inspector.user_objects_outside(conn, store.SCHEMA)
        catalogs, unreachable, prints = self._crawl(target, [d.name for d in databases])
        missing = MissingPrivileges(
            facts.current_user, createrole=facts.superuser or facts.createrole
        )
        survey = Survey(facts, target, foreign, missing=missing, fingerprints=prints)
        if not facts.superuser:
            missing.databases = [d.name for d in databases if not d.connect_grantable]
            missing.databases += [d for d in unreachable if d not in missing.databases]
        blocked_schemas: set[tuple[str, str]] = set()
        total = 0
        for catalog in catalogs:
            wanted = [o for o in catalog.objects if filters.object(o)]
            total += len(wanted)
            if not facts.superuser:
                schemas = [s for s in catalog.schemas_missing_usage if filters.schema(s)]
                missing.schemas += [(catalog.database, s) for s in schemas]
                blocked_schemas.update((catalog.database, s) for s in schemas)
                missing.objects += [o for o in wanted if o.missing]
            if catalog.database in missing.databases:
                continue
            survey.databases.append(catalog.database)
            survey.objects += [
                o for o in wanted if not o.missing and (o.database, o.schema) not in blocked_schemas
            ]
        survey.skipped = total - len(survey.objects)
        return survey

    def _crawl(
        self, target: Target, databases: list[str], catalog: bool = True
    ) -> tuple[list[DatabaseCatalog], list[str], dict[str, str]]:
        """Fingerprint (and, with `catalog`, crawl) each database: one catalog query per
        database, databases in parallel on a bounded pool. The fingerprint is taken first,
        so an object created during the crawl shows up as a change at the next refresh."""

        def crawl(database: str) -> tuple[str, DatabaseCatalog | None | str, str | None]:
            where = Target(target.hostname, target.port, database)
            try:
                with self.provider.connect(where, self.ctx) as conn:
                    print_ = inspector.catalog_fingerprint(conn)
                    found = inspector.crawl_database(conn, database) if catalog else None
                    return database, found, print_
            except ProviderError as exc:
                text = exc.detail.lower()
                if "does not exist" in text:
                    return database, None, None  # dropped while we looked: nothing to register
                if "permission denied" in text or "not permitted" in text:
                    return database, database, None
                raise

        if not databases:
            return [], [], {}
        with ThreadPoolExecutor(max_workers=min(CRAWL_WORKERS, len(databases))) as pool:
            results = list(pool.map(crawl, databases))
        catalogs = [r for _, r, _ in results if isinstance(r, DatabaseCatalog)]
        unreachable = [r for _, r, _ in results if isinstance(r, str)]
        prints = {name: p for name, _, p in results if p is not None}
        return catalogs, unreachable, prints

    def _report_missing(
        self, planned: dict, target: Target, missing: MissingPrivileges, survey: Survey
    ) -> None:
        lines = _clip(missing.lines())
        grants = _clip(missing.grants())
        name = planned["display_name"]
        if planned["on_missing_privileges"] == "skip" and missing.createrole:
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
        extra = (
            ""
            if missing.createrole
            else "\n\nCREATEROLE is needed for anything to be governed, so on_missing_privileges = "
            '"skip" cannot help until it is granted.'
        )
        raise ProviderError(
            f"Missing PostgreSQL privileges to register connection {name!r}",
            f"User {missing.user!r} on {target.hostname}:{target.port} is not a superuser and "
            f"lacks {missing.count} of the privileges Immuta needs (CREATEROLE, and CONNECT, "
            "USAGE, SELECT, INSERT, UPDATE, DELETE, TRUNCATE WITH GRANT OPTION on what it "
            "protects):\n"
            + "\n".join(lines)
            + "\n\nRun these statements as a superuser or the objects' owners, then apply "
            "again:\n"
            + "\n".join(grants)
            + '\n\nOr set on_missing_privileges = "skip" to register only what can be governed.'
            + extra,
        )

    # ------------------------------------------------------------------ read / delete / import

    def refresh(self, state: dict) -> dict | None:
        target = _target(state)
        key = state["display_name"]
        try:
            with self.provider.connect(target, self.ctx) as conn:
                row = store.get_connection(conn, key)
                if row is None:
                    return None
                facts = inspector.server_facts(conn)
                lost = [] if facts.superuser else _lost_connect(conn, row.databases)
                stored_prints = store.fingerprints(conn, key)
        except ProviderError as exc:
            if f"database {target.database!r} does not exist" in exc.detail:
                return None  # the Immuta database is gone, and the registration with it
            raise
        self._warn_changes(key, target, row, facts, lost)
        status = SYNC_OFF
        if row.object_sync == "plan":
            status = self._sync_status(target, row, stored_prints)
        return state_from(row, status)

    def _sync_status(self, target: Target, row: store.ConnectionRow, stored: dict[str, str]) -> str:
        """Objects added or dropped since the last crawl, found cheaply.

        Each database's fingerprint is compared with the one saved at the last crawl;
        only databases whose fingerprint differs (or that appeared or went) are crawled.
        """
        filters = Filters.from_json(row.filters)
        with self.provider.connect(target, self.ctx) as conn:
            names = [
                d.name
                for d in inspector.databases_to_protect(conn, target.database)
                if filters.database(d.name)
            ]
        _, _, current = self._crawl(target, names, catalog=False)
        changed = sorted(
            {db for db, p in current.items() if stored.get(db) != p} | (set(stored) - set(current))
        )
        if not changed:
            return SYNCED
        survey = self.inspect(target, filters, only=changed)
        now = {(o.database, o.schema, o.name, o.object_type) for o in survey.objects}
        with self.provider.connect(target, self.ctx) as conn:
            before = store.object_keys(conn, row.connection_key, changed)
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

    def unregister(self, state: dict) -> None:
        target = _target(state)
        try:
            with (
                self.provider.connect(target, self.ctx) as conn,
                store.write_transaction(conn, create=False),
            ):
                store.delete_connection(conn, state["display_name"])
        except ProviderError as exc:
            if f"database {target.database!r} does not exist" not in exc.detail:
                raise

    def import_connection(self, import_id: str) -> dict:
        try:
            cid = ConnectionId.parse(import_id)
        except InvalidId as exc:
            raise ProviderError("Invalid import ID", str(exc)) from None
        target = Target(cid.hostname, cid.port, cid.database)
        with self.provider.connect(target, self.ctx) as conn:
            row = store.get_connection(conn, cid.display_name)
        if row is None:
            raise ProviderError(
                "Cannot import immuta_postgres_connection",
                f"No connection named {cid.display_name!r} is registered in {target.where}. "
                "Check the display name (case matters) and the Immuta database.",
            )
        return state_from(row)


def _lost_connect(conn: psycopg.Connection, databases: list[str]) -> list[str]:
    if not databases:
        return []
    rows = conn.execute(
        """SELECT datname FROM pg_database WHERE datname = ANY(%s)
           AND NOT has_database_privilege(oid, 'CONNECT WITH GRANT OPTION')""",
        (databases,),
    ).fetchall()
    return [r[0] for r in rows]


def _target(values: dict) -> Target:
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


def filters_of(values: dict) -> Filters:
    return Filters.from_config(values.get("include"), values.get("exclude"))


def state_from(row: store.ConnectionRow, status: str | None = None) -> dict:
    if status is None:
        status = SYNCED if row.object_sync == "plan" else SYNC_OFF
    return {
        "object_sync": row.object_sync,
        "object_sync_status": status,
        "include": row.filters.get("include"),
        "exclude": row.filters.get("exclude"),
        "display_name": row.connection_key,
        "deployment_type": row.deployment_type,
        "hostname": row.hostname,
        "port": row.port,
        "database": row.database_name,
        "on_missing_privileges": row.on_missing_privileges,
        "id": str(ConnectionId(row.hostname, row.port, row.database_name, row.connection_key)),
        "server_version": row.server_version,
        "auth_method": row.auth_method,
        "username": row.username,
        "databases": list(row.databases),
        "data_object_count": row.data_object_count,
        "skipped_object_count": row.skipped_object_count,
        "registered_at": row.registered_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
