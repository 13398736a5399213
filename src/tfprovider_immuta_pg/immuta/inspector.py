"""What the registering user sees of a PostgreSQL server: version, privileges, catalog."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from psycopg import sql

from .pg import one_row

if TYPE_CHECKING:
    import psycopg

SUPPORTED_MAJOR_VERSIONS = (16, 17)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
OBJECT_TYPES = {
    "r": "table",
    "p": "partitioned_table",
    "v": "view",
    "m": "materialized_view",
    "f": "foreign_table",
}
SYSTEM_SCHEMA_FILTER = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname !~ '^pg_(toast_)?temp_'
"""


@dataclass(frozen=True)
class ServerFacts:
    version: str  # e.g. "17.10"
    version_num: int
    current_user: str
    superuser: bool
    createrole: bool

    @property
    def major(self) -> int:
        return self.version_num // 10000

    @property
    def supported(self) -> bool:
        return self.major in SUPPORTED_MAJOR_VERSIONS


@dataclass(frozen=True)
class DatabaseFacts:
    name: str
    connect_grantable: bool


@dataclass(frozen=True)
class CatalogObject:
    database: str
    schema: str
    name: str
    object_type: str
    missing: tuple[str, ...]  # table privileges lacking WITH GRANT OPTION


@dataclass
class DatabaseCatalog:
    database: str
    schemas_missing_usage: list[str] = field(default_factory=list)
    objects: list[CatalogObject] = field(default_factory=list)


def server_facts(conn: psycopg.Connection) -> ServerFacts:
    row = one_row(
        conn.execute(
            """SELECT current_setting('server_version'),
                      current_setting('server_version_num')::int,
                      current_user, r.rolsuper, r.rolcreaterole
               FROM pg_roles r WHERE r.rolname = current_user"""
        )
    )
    version = row[0].split()[0]
    return ServerFacts(version, row[1], row[2], row[3], row[4])


def databases_to_protect(conn: psycopg.Connection, immuta_database: str) -> list[DatabaseFacts]:
    """Connectable, non-template databases other than the Immuta database."""
    rows = conn.execute(
        """SELECT datname, has_database_privilege(oid, 'CONNECT WITH GRANT OPTION')
           FROM pg_database
           WHERE datallowconn AND NOT datistemplate AND datname <> %s
           ORDER BY datname""",
        (immuta_database,),
    ).fetchall()
    return [DatabaseFacts(name, grantable) for name, grantable in rows]


_GRANTS = ", ".join(
    f"has_table_privilege(c.oid, '{p} WITH GRANT OPTION') AS {p.lower()}" for p in TABLE_PRIVILEGES
)
_CATALOG_QUERY = f"""
SELECT n.nspname,
       has_schema_privilege(n.oid, 'USAGE WITH GRANT OPTION') AS usage,
       c.relname, c.relkind, {_GRANTS}
FROM pg_namespace n
LEFT JOIN pg_class c
       ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
WHERE {SYSTEM_SCHEMA_FILTER}
"""
# The same rows, only where something is lacking: what a refresh needs to find lost grants,
# without sending every object of the database.
_LACKING_QUERY = f"""
SELECT * FROM ({_CATALOG_QUERY}) AS o
WHERE NOT o.usage
   OR (o.relname IS NOT NULL
       AND NOT ({" AND ".join(f"o.{p.lower()}" for p in TABLE_PRIVILEGES)}))
"""
_ORDER = "ORDER BY 1, 3"


def crawl_database(conn: psycopg.Connection, database: str) -> DatabaseCatalog:
    """Every non-system schema and supported object of one database, in one query."""
    return _catalog(conn, database, _CATALOG_QUERY + _ORDER)


def lacking_privileges(conn: psycopg.Connection, database: str) -> DatabaseCatalog:
    """Only the schemas and objects the user lacks a privilege on (WITH GRANT OPTION);
    an object in a schema lacking USAGE is listed whatever its own privileges."""
    catalog = _catalog(conn, database, _LACKING_QUERY + _ORDER)
    catalog.objects = [o for o in catalog.objects if o.missing]
    return catalog


def _catalog(conn: psycopg.Connection, database: str, query: str) -> DatabaseCatalog:
    catalog = DatabaseCatalog(database)
    last_schema = None
    with conn.cursor() as cur:
        cur.execute(query)
        for schema, usage, name, kind, *grants in cur:
            if schema != last_schema:
                last_schema = schema
                if not usage:
                    catalog.schemas_missing_usage.append(schema)
            if name is None:
                continue
            missing = tuple(p for p, ok in zip(TABLE_PRIVILEGES, grants, strict=True) if not ok)
            catalog.objects.append(
                CatalogObject(database, schema, name, OBJECT_TYPES[kind], missing)
            )
    return catalog


@dataclass(frozen=True)
class Fingerprint:
    """Digests of one database's catalog, computed by the server (a few bytes travel,
    whatever the catalog's size)."""

    catalog: str  # changes when a supported object appears or goes
    acl: str | None  # changes when a privilege on a schema or object does (None: not taken)


# `acl`: the XOR of a hash per schema and per supported object of its ACL (the owner's
# default ACL when it has none), with the roles whose privileges the current user holds.
# Hashing the aclitem arrays costs far less than printing them (no role names are looked
# up), so a refresh with nothing changed costs about what the catalog digest alone did.
_FINGERPRINT_QUERY = f"""
SELECT md5(coalesce(string_agg(format('%I.%I:%s', n.nspname, c.relname, c.relkind), ','
                               ORDER BY n.nspname, c.relname), '')),
       (coalesce(bit_xor(hash_array_extended(coalesce(c.relacl, acldefault('r', c.relowner)),
                                             c.oid::bigint)), 0)
        # (SELECT coalesce(bit_xor(hash_array_extended(
                                 coalesce(n.nspacl, acldefault('n', n.nspowner)),
                                 n.oid::bigint)), 0)
           FROM pg_namespace n WHERE {SYSTEM_SCHEMA_FILTER})
        # hash_array_extended(ARRAY(SELECT oid FROM pg_roles
                                    WHERE pg_has_role(current_user, oid, 'USAGE')
                                    ORDER BY oid), 0))::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {SYSTEM_SCHEMA_FILTER}
"""


def catalog_fingerprint(conn: psycopg.Connection) -> Fingerprint:
    """Digests of a database's supported objects and of the privileges on them."""
    catalog, acl = one_row(conn.execute(_FINGERPRINT_QUERY))
    return Fingerprint(catalog, acl)


@dataclass(frozen=True)
class Filters:
    """Optional include/exclude name patterns (shell-style, case-sensitive)."""

    include: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, include: dict | None, exclude: dict | None) -> Filters:
        def patterns(block: dict | None) -> dict[str, tuple[str, ...]]:
            return {k: tuple(v) for k, v in (block or {}).items() if v}

        return cls(patterns(include), patterns(exclude))

    @classmethod
    def from_json(cls, data: dict | None) -> Filters:
        data = data or {}
        return cls.from_config(data.get("include"), data.get("exclude"))

    def _passes(self, kind: str, name: str) -> bool:
        include, exclude = self.include.get(kind), self.exclude.get(kind, ())
        if include and not any(fnmatchcase(name, p) for p in include):
            return False
        return not any(fnmatchcase(name, p) for p in exclude)

    def database(self, name: str) -> bool:
        return self._passes("databases", name)

    def schema(self, name: str) -> bool:
        return self._passes("schemas", name)

    def object(self, o: CatalogObject) -> bool:
        return self.schema(o.schema) and self._passes("objects", o.name)


def user_objects_outside(conn: psycopg.Connection, state_schema: str) -> list[str]:
    """Relations in the Immuta database that are not the provider's own (at most 5 named)."""
    rows = conn.execute(
        f"""SELECT n.nspname || '.' || c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname <> %s
              AND {SYSTEM_SCHEMA_FILTER}
            ORDER BY 1 LIMIT 6""",
        (state_schema,),
    ).fetchall()
    return [r[0] for r in rows]


# ----------------------------------------------------------------- fix-up statements


def ident(*names: str) -> str:
    return ".".join(sql.Identifier(n).as_string(None) for n in names)


@dataclass(frozen=True)
class Need:
    """A privilege the user lacks and the statement that grants it."""

    line: str  # "database immuta: CREATE (...)"
    grant: str  # "GRANT CREATE ON DATABASE "immuta" TO "registrar";"
    database: str | None = None  # where the statement must run; None: in any database


@dataclass
class MissingPrivileges:
    """Everything the registering user lacks, grouped so one diagnostic can list it:
    Immuta's documented privileges, and what the state store needs (`store`)."""

    user: str
    createrole: bool = True
    databases: list[str] = field(default_factory=list)
    schemas: list[tuple[str, str]] = field(default_factory=list)
    objects: list[CatalogObject] = field(default_factory=list)
    store: list[Need] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.createrole or bool(
            self.databases or self.schemas or self.objects or self.store
        )

    @property
    def count(self) -> int:
        return (
            (0 if self.createrole else 1)
            + len(self.store)
            + len(self.databases)
            + len(self.schemas)
            + sum(len(o.missing) for o in self.objects)
        )

    def lines(self) -> list[str]:
        out = []
        if not self.createrole:
            out.append(f"- role {self.user}: CREATEROLE")
        out += [f"- {need.line}" for need in self.store]
        out += [f"- database {d}: CONNECT WITH GRANT OPTION" for d in self.databases]
        out += [f"- schema {d}.{s}: USAGE WITH GRANT OPTION" for d, s in self.schemas]
        out += [
            f"- {o.object_type.replace('_', ' ')} {o.database}.{o.schema}.{o.name}: "
            f"{', '.join(o.missing)} WITH GRANT OPTION"
            for o in self.objects
        ]
        return out

    def grants(self) -> list[str]:
        user = ident(self.user)
        out = []
        if not self.createrole:
            out.append(f"ALTER ROLE {user} CREATEROLE;")
        out += [need.grant for need in self.store if need.database is None]
        out += [
            f"GRANT CONNECT ON DATABASE {ident(d)} TO {user} WITH GRANT OPTION;"
            for d in self.databases
        ]
        current = None
        for database, statement in self._per_database(user):
            if database != current:
                current = database
                out.append(f"-- in database {database} (\\connect {ident(database)}):")
            out.append(statement)
        return out

    def _per_database(self, user: str) -> Iterable[tuple[str, str]]:
        entries = [(n.database, n.grant) for n in self.store if n.database is not None]
        entries += [
            (d, f"GRANT USAGE ON SCHEMA {ident(s)} TO {user} WITH GRANT OPTION;")
            for d, s in self.schemas
        ] + [
            (
                o.database,
                f"GRANT {', '.join(o.missing)} ON TABLE {ident(o.schema, o.name)} TO {user} "
                "WITH GRANT OPTION;",
            )
            for o in self.objects
        ]
        return sorted(entries, key=lambda e: e[0])
