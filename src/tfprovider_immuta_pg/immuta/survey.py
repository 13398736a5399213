"""A look at a server before anything is written: version, privileges, what would be governed.

Used by the connection resource (to register, and to find objects added or dropped since the
last crawl) and by the preflight data source (to report without registering).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..framework.provider import Context
from . import inspector, store
from .access import Access
from .errors import ConnectDenied, DatabaseMissing
from .inspector import (
    CatalogObject,
    DatabaseCatalog,
    DatabaseFacts,
    Filters,
    Fingerprint,
    MissingPrivileges,
    Need,
    ServerFacts,
)
from .pg import Target

if TYPE_CHECKING:
    import psycopg

CRAWL_WORKERS = 4


@dataclass
class Survey:
    """What a look at the server finds, before anything is written."""

    facts: ServerFacts
    target: Target
    missing: MissingPrivileges
    foreign: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)  # governed databases
    objects: list[CatalogObject] = field(default_factory=list)  # governable objects
    skipped: int = 0
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)


@dataclass
class Crawl:
    catalogs: list[DatabaseCatalog] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # the user may not connect to these
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict)


@dataclass
class _Crawled:
    """One database's part of a crawl."""

    database: str
    catalog: DatabaseCatalog | None = None
    fingerprint: Fingerprint | None = None
    unreachable: bool = False


@dataclass
class _ImmutaDatabase:
    """What the Immuta database's connection shows: the server, the databases, the store."""

    facts: ServerFacts
    databases: list[DatabaseFacts]
    foreign: list[str]
    store_needs: list[Need]


def inspect(
    access: Access,
    ctx: Context,
    target: Target,
    filters: Filters,
    only: list[str] | None = None,
    writing: bool = True,
) -> Survey:
    """Version, privileges and catalog, without judging; `only` limits the databases.

    With `writing`, what the user lacks to create or write the state store in the Immuta
    database counts among the missing privileges.
    """

    def look(conn: psycopg.Connection) -> _ImmutaDatabase:
        return _ImmutaDatabase(
            inspector.server_facts(conn),
            [
                d
                for d in inspector.databases_to_protect(conn, target.database)
                if filters.database(d.name) and (only is None or d.name in only)
            ],
            inspector.user_objects_outside(conn, store.SCHEMA),
            store.missing_privileges(conn, creating=True) if writing else [],
        )

    seen = access.run(target, ctx, look, doing="looking at the server")
    facts, databases = seen.facts, seen.databases
    crawled = crawl(access, ctx, target, [d.name for d in databases])
    missing = MissingPrivileges(
        facts.current_user,
        createrole=facts.superuser or facts.createrole,
        store=seen.store_needs,
    )
    survey = Survey(facts, target, missing, seen.foreign, fingerprints=crawled.fingerprints)
    if not facts.superuser:
        missing.databases = [d.name for d in databases if not d.connect_grantable]
        missing.databases += [d for d in crawled.unreachable if d not in missing.databases]
    blocked_schemas: set[tuple[str, str]] = set()
    total = 0
    for catalog in crawled.catalogs:
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


CatalogReader = Callable[["psycopg.Connection", str], DatabaseCatalog]


def crawl(
    access: Access,
    ctx: Context,
    target: Target,
    databases: list[str],
    read: CatalogReader | None = inspector.crawl_database,
) -> Crawl:
    """Fingerprint each database and `read` its catalog (`inspector.crawl_database`: every
    object; `inspector.lacking_privileges`: only what the user lacks privileges on; None:
    the fingerprints only), databases in parallel on a bounded pool. The fingerprint is
    taken first, so an object created during the crawl shows up as a change at the next
    refresh."""

    def look(conn: psycopg.Connection) -> _Crawled:
        database = conn.info.dbname
        fingerprint = inspector.catalog_fingerprint(conn)
        found = read(conn, database) if read else None
        return _Crawled(database, found, fingerprint)

    def one(database: str) -> _Crawled:
        where = Target(target.hostname, target.port, database)
        try:
            return access.run(where, ctx, look, doing="reading its catalog")
        except DatabaseMissing:
            return _Crawled(database)  # dropped while we looked: nothing to register
        except ConnectDenied:
            return _Crawled(database, unreachable=True)

    result = Crawl()
    if not databases:
        return result
    with ThreadPoolExecutor(max_workers=min(CRAWL_WORKERS, len(databases))) as pool:
        for crawled in pool.map(one, databases):
            if crawled.catalog is not None:
                result.catalogs.append(crawled.catalog)
            if crawled.unreachable:
                result.unreachable.append(crawled.database)
            if crawled.fingerprint is not None:
                result.fingerprints[crawled.database] = crawled.fingerprint
    return result
