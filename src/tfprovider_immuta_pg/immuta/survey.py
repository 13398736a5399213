"""A look at a server before anything is written: version, privileges, what would be governed.

Used by the connection resource (to register, and to find objects added or dropped since the
last crawl) and by the preflight data source (to report without registering).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..framework.provider import Context
from . import inspector, store
from .access import Access
from .errors import ConnectDenied, DatabaseMissing
from .inspector import CatalogObject, DatabaseCatalog, Filters, MissingPrivileges, ServerFacts
from .pg import Target

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
    fingerprints: dict[str, str] = field(default_factory=dict)


@dataclass
class Crawl:
    catalogs: list[DatabaseCatalog] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)  # the user may not connect to these
    fingerprints: dict[str, str] = field(default_factory=dict)


@dataclass
class _Crawled:
    """One database's part of a crawl."""

    database: str
    catalog: DatabaseCatalog | None = None
    fingerprint: str | None = None
    unreachable: bool = False


def inspect(
    access: Access, ctx: Context, target: Target, filters: Filters, only: list[str] | None = None
) -> Survey:
    """Version, privileges and catalog, without judging; `only` limits the databases."""
    with access.connect(target, ctx) as conn:
        facts = inspector.server_facts(conn)
        databases = [
            d
            for d in inspector.databases_to_protect(conn, target.database)
            if filters.database(d.name) and (only is None or d.name in only)
        ]
        foreign = inspector.user_objects_outside(conn, store.SCHEMA)
    crawled = crawl(access, ctx, target, [d.name for d in databases])
    missing = MissingPrivileges(facts.current_user, createrole=facts.superuser or facts.createrole)
    survey = Survey(facts, target, missing, foreign, fingerprints=crawled.fingerprints)
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


def crawl(
    access: Access, ctx: Context, target: Target, databases: list[str], catalog: bool = True
) -> Crawl:
    """Fingerprint (and, with `catalog`, crawl) each database: one catalog query per
    database, databases in parallel on a bounded pool. The fingerprint is taken first,
    so an object created during the crawl shows up as a change at the next refresh."""

    def one(database: str) -> _Crawled:
        where = Target(target.hostname, target.port, database)
        try:
            with access.connect(where, ctx) as conn:
                fingerprint = inspector.catalog_fingerprint(conn)
                found = inspector.crawl_database(conn, database) if catalog else None
                return _Crawled(database, found, fingerprint)
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
