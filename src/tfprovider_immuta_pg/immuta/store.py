"""The state store: schema `immuta` in the Immuta database, versioned, written under a lock.

Every write runs in one transaction that first takes a transaction-level
advisory lock, so concurrent applies (separate Terraform states, same Immuta
database) serialise instead of racing; uniqueness rules are constraints.

Who may write: the schema's owner, or a user with USAGE on the schema and SELECT, INSERT,
UPDATE, DELETE on its tables; creating the store takes CREATE on the Immuta database (or on
the schema, when it exists empty), upgrading it the ownership of its tables.
`missing_privileges` lists what a user lacks, with the GRANT statements, before anything is
written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.errors import DependentObjectsStillExist, UndefinedTable, UniqueViolation

from .errors import CommitInDoubt, PermissionDenied
from .inspector import Fingerprint, Need, ident
from .mapping_rules import SINGLE_OWNER
from .pg import one_row

if TYPE_CHECKING:
    from .inspector import CatalogObject
    from .pg import Target

SCHEMA = "immuta"
# pg_advisory_xact_lock key: the bytes of "immuta-s" as a signed 64-bit integer.
LOCK_KEY = int.from_bytes(b"immuta-s", "big", signed=True)

MIGRATIONS: list[str] = [
    # 1: connections, their data objects, user mappings
    """
    CREATE TABLE {s}.connections (
        connection_key      text PRIMARY KEY,
        hostname            text NOT NULL,
        port                integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
        database_name       text NOT NULL,
        deployment_type     text NOT NULL
            CHECK (deployment_type IN ('self_managed', 'aurora', 'rds', 'neon')),
        auth_method         text NOT NULL
            CHECK (auth_method IN ('password', 'aws_access_key', 'aws_assumed_role')),
        username            text NOT NULL,
        server_version      text NOT NULL,
        superuser           boolean NOT NULL,
        on_missing_privileges text NOT NULL CHECK (on_missing_privileges IN ('error', 'skip')),
        databases           text[] NOT NULL,
        skipped_object_count integer NOT NULL DEFAULT 0,
        registered_at       timestamptz NOT NULL DEFAULT now(),
        updated_at          timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX connections_key_any_case ON {s}.connections (lower(connection_key));
    CREATE TABLE {s}.data_objects (
        connection_key  text NOT NULL REFERENCES {s}.connections ON DELETE CASCADE,
        database_name   text NOT NULL,
        schema_name     text NOT NULL,
        object_name     text NOT NULL,
        object_type     text NOT NULL CHECK (object_type IN
            ('table', 'partitioned_table', 'view', 'materialized_view', 'foreign_table')),
        PRIMARY KEY (connection_key, database_name, schema_name, object_name)
    );
    CREATE TABLE {s}.user_mappings (
        connection_key    text NOT NULL REFERENCES {s}.connections ON DELETE CASCADE,
        immuta_user       text NOT NULL,
        postgres_mode     text NOT NULL CHECK (postgres_mode IN ('username', 'unset', 'none')),
        postgres_username text,
        postgres_role     text,
        aws_user_type     text CHECK (aws_user_type IN
            ('iam_role', 'iam_user', 'identity_center_user', 'unset')),
        aws_principal     text,
        aws_principal_arn text,
        updated_at        timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_key, immuta_user)
    );
    -- One IAM role maps to at most one Immuta user per connection.
    CREATE UNIQUE INDEX user_mappings_one_user_per_iam_role
        ON {s}.user_mappings (connection_key, aws_principal_arn)
        WHERE aws_user_type = 'iam_role';
    """,
    # 2: object sync and crawl filters
    """
    ALTER TABLE {s}.connections
        ADD COLUMN object_sync text NOT NULL DEFAULT 'plan' CHECK (object_sync IN ('plan', 'off')),
        ADD COLUMN filters jsonb NOT NULL DEFAULT '{{}}'::jsonb;
    -- What each database's catalog looked like at the last crawl, to detect change cheaply.
    CREATE TABLE {s}.crawled_databases (
        connection_key  text NOT NULL REFERENCES {s}.connections ON DELETE CASCADE,
        database_name   text NOT NULL,
        fingerprint     text NOT NULL,
        crawled_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (connection_key, database_name)
    );
    """,
    # 3: whether the configuration that wrote a mapping had a `postgres` block, so an import
    # gives back the same spelling (a block saying only the default mode, or none at all)
    """
    ALTER TABLE {s}.user_mappings
        ADD COLUMN postgres_block_written boolean NOT NULL DEFAULT false;
    UPDATE {s}.user_mappings SET postgres_block_written = true
        WHERE postgres_mode <> 'unset' OR postgres_username IS NOT NULL;
    """,
    # 4: what the privileges on each database's schemas and objects looked like at the last
    # crawl, to notice lost grants cheaply (null: crawled by an older provider version)
    """
    ALTER TABLE {s}.crawled_databases ADD COLUMN acl_fingerprint text;
    """,
    # 5: who manages each mapping, and which immuta_user_mappings owns a connection's
    # mappings exclusively. Before this version only immuta_user_mapping wrote mappings.
    """
    ALTER TABLE {s}.user_mappings ADD COLUMN managed_by text;
    UPDATE {s}.user_mappings SET managed_by = 'immuta_user_mapping';
    ALTER TABLE {s}.connections ADD COLUMN mappings_owner text;
    """,
]
LATEST_VERSION = len(MIGRATIONS)
STORE_TABLES = (
    "crawled_databases",
    "user_mappings",
    "data_objects",
    "connections",
    "schema_version",
)
WRITE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


class StoreError(Exception):
    pass


class DuplicateConnection(StoreError):
    def __init__(self, existing: dict[str, Any]) -> None:
        super().__init__(existing["connection_key"])
        self.existing = existing


@dataclass(frozen=True)
class ConnectionRow:
    connection_key: str
    hostname: str
    port: int
    database_name: str
    deployment_type: str
    auth_method: str
    username: str
    server_version: str
    superuser: bool
    on_missing_privileges: str
    databases: list[str]
    skipped_object_count: int
    registered_at: datetime
    object_sync: str
    filters: dict[str, Any]
    data_object_count: int


def _ident() -> sql.Identifier:
    return sql.Identifier(SCHEMA)


def _q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=_ident())


def schema_version(conn: psycopg.Connection) -> int:
    """0 when the store was never created here."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{SCHEMA}".schema_version',))
    if not one_row(exists)[0]:
        return 0
    version: int | None = one_row(conn.execute(_q("SELECT max(version) FROM {s}.schema_version")))[
        0
    ]
    return version or 0


def migrate(conn: psycopg.Connection, target: int = LATEST_VERSION) -> None:
    """Inside a locked transaction: bring the schema to `target` (tests build older stores
    with a lower one)."""
    current = schema_version(conn)
    if current > LATEST_VERSION:
        raise StoreError(
            f"the state store in schema {SCHEMA!r} is at version {current}, newer than this "
            f"provider understands ({LATEST_VERSION}); upgrade the provider"
        )
    if current == 0:
        conn.execute(_q("CREATE SCHEMA IF NOT EXISTS {s}"))
        conn.execute(
            _q(
                "CREATE TABLE {s}.schema_version (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    for version in range(current + 1, target + 1):
        conn.execute(_q(MIGRATIONS[version - 1]))
        conn.execute(_q("INSERT INTO {s}.schema_version (version) VALUES (%s)"), (version,))


@contextmanager
def write_transaction(
    conn: psycopg.Connection, create: bool = True
) -> Iterator[psycopg.Connection]:
    """One transaction, serialised with every other writer, on an up-to-date schema.

    With `create=False` a missing store is left missing (nothing to delete there). A
    connection that breaks during the COMMIT raises CommitInDoubt: that transaction may or
    may not have committed, so it must not be retried.
    """
    with locked(conn):
        if create or schema_version(conn):
            migrate(conn)
        yield conn


@contextmanager
def locked(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One transaction serialised with every other writer, on a store known to be current
    (see `ensure_current`); CommitInDoubt when the connection breaks during the COMMIT."""
    committing = False
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            yield conn
            committing = True
    except psycopg.OperationalError as exc:
        if committing and conn.broken:
            raise CommitInDoubt(str(exc)) from exc
        raise


_ACCESS_QUERY = f"""
SELECT current_user, current_database(),
       has_database_privilege(current_database(), 'CREATE'),
       n.oid IS NOT NULL,
       pg_get_userbyid(n.nspowner),
       coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
       coalesce(has_schema_privilege(n.oid, 'CREATE'), false),
       c.relname,
       {", ".join(f"has_table_privilege(c.oid, '{p}')" for p in WRITE_PRIVILEGES)},
       pg_has_role(c.relowner, 'USAGE')
FROM (VALUES (1)) AS one (x)
LEFT JOIN pg_namespace n ON n.nspname = %(schema)s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND c.relname = ANY(%(tables)s)
ORDER BY c.relname
"""


@dataclass(frozen=True)
class _StoreTable:
    name: str
    granted: tuple[bool, ...]  # WRITE_PRIVILEGES
    owned: bool


@dataclass(frozen=True)
class StoreAccess:
    """What the connected user may do with the state store in this database."""

    user: str
    database: str
    create_on_database: bool
    schema_exists: bool
    owner: str | None
    usage: bool
    create_in_schema: bool
    tables: tuple[_StoreTable, ...]

    def needs(self, conn: psycopg.Connection, creating: bool) -> list[Need]:
        """What the user lacks to write the store (to create it, with `creating`)."""
        who, where = ident(self.user), f"{self.database}.{SCHEMA}"
        if not self.schema_exists:
            if creating and not self.create_on_database:
                return [
                    Need(
                        f"database {self.database}: CREATE (to create the schema {SCHEMA} that "
                        "keeps the registration)",
                        f"GRANT CREATE ON DATABASE {ident(self.database)} TO {who};",
                    )
                ]
            return []
        needs = []
        if not self.usage:
            needs.append(
                Need(
                    f"schema {where}: USAGE",
                    f"GRANT USAGE ON SCHEMA {ident(SCHEMA)} TO {who};",
                    self.database,
                )
            )
        if creating and not self.tables and not self.create_in_schema:
            needs.append(
                Need(
                    f"schema {where}: CREATE (to create the state store's tables)",
                    f"GRANT CREATE ON SCHEMA {ident(SCHEMA)} TO {who};",
                    self.database,
                )
            )
        for table in self.tables:
            lacking = [p for p, ok in zip(WRITE_PRIVILEGES, table.granted, strict=True) if not ok]
            if lacking:
                needs.append(
                    Need(
                        f"table {where}.{table.name}: {', '.join(lacking)}",
                        f"GRANT {', '.join(lacking)} ON TABLE {ident(SCHEMA, table.name)} "
                        f"TO {who};",
                        self.database,
                    )
                )
        if self.tables and not needs and not all(t.owned for t in self.tables):
            version = schema_version(conn)
            if version < LATEST_VERSION:
                needs.append(
                    Need(
                        f"schema {where}: the ownership of its tables (owner {self.owner}), to "
                        f"upgrade the state store from version {version} to {LATEST_VERSION}",
                        f"GRANT {ident(self.owner or SCHEMA)} TO {who};",
                    )
                )
        return needs


def store_access(conn: psycopg.Connection) -> StoreAccess:
    rows = conn.execute(_ACCESS_QUERY, {"schema": SCHEMA, "tables": list(STORE_TABLES)}).fetchall()
    user, database, create_db, exists, owner, usage, create_in_schema = rows[0][:7]
    tables = tuple(
        _StoreTable(row[7], tuple(row[8:-1]), row[-1]) for row in rows if row[7] is not None
    )
    return StoreAccess(user, database, create_db, exists, owner, usage, create_in_schema, tables)


def missing_privileges(conn: psycopg.Connection, creating: bool) -> list[Need]:
    """What the connected user lacks to write the store here (to create it, with
    `creating`), each with its GRANT; nothing is written. Superusers lack nothing."""
    return store_access(conn).needs(conn, creating)


def check_writes(conn: psycopg.Connection, target: Target, doing: str) -> None:
    """Refuse, before anything is written, a writer that lacks what the store needs."""
    access = store_access(conn)
    needs = access.needs(conn, creating=False)
    if not needs:
        return
    raise PermissionDenied(
        f"Missing PostgreSQL privileges to {doing}",
        f"User {access.user!r} on {target.hostname}:{target.port} does not own the state store "
        f"(schema {SCHEMA} in database {access.database!r}, owned by {access.owner!r}) and "
        "lacks what writing it takes (USAGE on the schema; SELECT, INSERT, UPDATE, DELETE on "
        "its tables):\n"
        + "\n".join(f"- {n.line}" for n in needs)
        + f"\n\nRun these statements in database {access.database!r} as {access.owner!r} or a "
        "superuser, then apply again:\n" + "\n".join(n.grant for n in needs),
        "42501",
    )


# Columns added by a later store version are read by name with their default, so a store that
# an older provider version wrote (and no write has upgraded yet) still reads.
_CONNECTION_COLUMNS = """c.connection_key, c.hostname, c.port, c.database_name,
    c.deployment_type, c.auth_method, c.username, c.server_version, c.superuser,
    c.on_missing_privileges, c.databases, c.skipped_object_count, c.registered_at,
    coalesce(to_jsonb(c) ->> 'object_sync', 'plan'),
    coalesce(to_jsonb(c) -> 'filters', '{{}}'::jsonb),
    (SELECT count(*) FROM {s}.data_objects o WHERE o.connection_key = c.connection_key)"""


def get_connection(conn: psycopg.Connection, key: str) -> ConnectionRow | None:
    if schema_version(conn) == 0:
        return None
    row = conn.execute(
        _q(f"SELECT {_CONNECTION_COLUMNS} FROM {{s}}.connections c WHERE c.connection_key = %s"),
        (key,),
    ).fetchone()
    return ConnectionRow(*row) if row else None


def find_connection_any_case(conn: psycopg.Connection, key: str) -> ConnectionRow | None:
    row = conn.execute(
        _q(
            f"SELECT {_CONNECTION_COLUMNS} FROM {{s}}.connections c "
            "WHERE lower(c.connection_key) = lower(%s)"
        ),
        (key,),
    ).fetchone()
    return ConnectionRow(*row) if row else None


def insert_connection(conn: psycopg.Connection, values: dict[str, Any]) -> None:
    existing = find_connection_any_case(conn, values["connection_key"])
    if existing is not None:
        raise DuplicateConnection(existing.__dict__)
    columns = list(values)
    conn.execute(
        sql.SQL("INSERT INTO {}.connections ({}) VALUES ({})").format(
            _ident(),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        ),
        [values[c] for c in columns],
    )


def update_connection(conn: psycopg.Connection, key: str, values: dict[str, Any]) -> None:
    conn.execute(
        sql.SQL(
            "UPDATE {}.connections SET {}, updated_at = now() WHERE connection_key = {}"
        ).format(
            _ident(),
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder()) for c in values
            ),
            sql.Placeholder(),
        ),
        [*values.values(), key],
    )


ObjectKey = tuple[str, str, str, str]  # database, schema, name, type


def object_keys(
    conn: psycopg.Connection, key: str, databases: Iterable[str] | None = None
) -> set[ObjectKey]:
    """The registered objects of a connection (of some databases only, when given)."""
    query = (
        "SELECT database_name, schema_name, object_name, object_type FROM {s}.data_objects "
        "WHERE connection_key = %s"
    )
    params: list[Any] = [key]
    if databases is not None:
        query += " AND database_name = ANY(%s)"
        params.append(list(databases))
    with conn.cursor() as cur:
        cur.execute(_q(query), params)
        return set(cur)


def governed(
    conn: psycopg.Connection, key: str, objects: list[ObjectKey], schemas: list[tuple[str, str]]
) -> tuple[set[ObjectKey], set[tuple[str, str]]]:
    """Which of `objects` are registered, and which of `schemas` hold a registered object."""
    with conn.cursor() as cur:
        cur.execute(
            _q(
                "SELECT d.database_name, d.schema_name, d.object_name, d.object_type "
                "FROM {s}.data_objects d JOIN unnest(%s::text[], %s::text[], %s::text[]) "
                "AS w(db, sch, obj) ON (d.database_name, d.schema_name, d.object_name) "
                "= (w.db, w.sch, w.obj) WHERE d.connection_key = %s"
            ),
            ([o[0] for o in objects], [o[1] for o in objects], [o[2] for o in objects], key),
        )
        found_objects = set(cur)
        cur.execute(
            _q(
                "SELECT w.db, w.sch FROM unnest(%s::text[], %s::text[]) AS w(db, sch) "
                "WHERE EXISTS (SELECT 1 FROM {s}.data_objects d WHERE d.connection_key = %s "
                "AND d.database_name = w.db AND d.schema_name = w.sch)"
            ),
            ([s[0] for s in schemas], [s[1] for s in schemas], key),
        )
        found_schemas = set(cur)
    return found_objects, found_schemas


def sync_data_objects(
    conn: psycopg.Connection, key: str, objects: Iterable[CatalogObject]
) -> tuple[int, int]:
    """Make the registered objects equal `objects`, writing only the difference."""
    wanted = {(o.database, o.schema, o.name, o.object_type) for o in objects}
    current = object_keys(conn, key)
    removed, added = current - wanted, wanted - current
    if removed:
        databases, schemas, names, _ = (list(c) for c in zip(*removed, strict=True))
        conn.execute(
            _q(
                "DELETE FROM {s}.data_objects d USING unnest(%s::text[], %s::text[], %s::text[]) "
                "AS r(db, sch, obj) WHERE d.connection_key = %s AND d.database_name = r.db "
                "AND d.schema_name = r.sch AND d.object_name = r.obj"
            ),
            (databases, schemas, names, key),
        )
    if added:
        copy_sql = _q(
            "COPY {s}.data_objects (connection_key, database_name, schema_name, object_name, "
            "object_type) FROM STDIN"
        )
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for database, schema, name, object_type in added:
                copy.write_row((key, database, schema, name, object_type))
    return len(added), len(removed)


def fingerprints(conn: psycopg.Connection, key: str) -> dict[str, Fingerprint]:
    try:
        rows = conn.execute(
            _q(
                "SELECT database_name, fingerprint, to_jsonb(d) ->> 'acl_fingerprint' "
                "FROM {s}.crawled_databases d WHERE connection_key = %s"
            ),
            (key,),
        ).fetchall()
    except UndefinedTable:  # a store written before fingerprints were kept (version 1)
        return {}
    return {database: Fingerprint(catalog, acl) for database, catalog, acl in rows}


def save_fingerprints(conn: psycopg.Connection, key: str, prints: dict[str, Fingerprint]) -> None:
    conn.execute(_q("DELETE FROM {s}.crawled_databases WHERE connection_key = %s"), (key,))
    if prints:
        conn.execute(
            _q(
                "INSERT INTO {s}.crawled_databases (connection_key, database_name, fingerprint, "
                "acl_fingerprint) SELECT %s, db, fp, acl "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS t(db, fp, acl)"
            ),
            (
                key,
                list(prints),
                [p.catalog for p in prints.values()],
                [p.acl for p in prints.values()],
            ),
        )


def delete_connection(conn: psycopg.Connection, key: str) -> bool:
    """Remove the connection with its objects and mappings; drop the schema when empty."""
    if schema_version(conn) == 0:
        return False
    deleted = conn.execute(
        _q("DELETE FROM {s}.connections WHERE connection_key = %s"), (key,)
    ).rowcount
    remaining = one_row(conn.execute(_q("SELECT count(*) FROM {s}.connections")))[0]
    if remaining == 0 and _owns_tables(conn):
        conn.execute(
            sql.SQL("DROP TABLE {}").format(
                sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in STORE_TABLES)
            )
        )
        # RESTRICT: a schema that also holds somebody else's objects stays.
        with suppress(DependentObjectsStillExist), conn.transaction():
            conn.execute(_q("DROP SCHEMA {s}"))
    return deleted > 0


def _owns_tables(conn: psycopg.Connection) -> bool:
    """Whether the user may drop the store's tables (another user's store stays, empty)."""
    owned: bool | None = one_row(
        conn.execute(
            "SELECT bool_and(pg_has_role(c.relowner, 'USAGE')) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = ANY(%s)",
            (SCHEMA, list(STORE_TABLES)),
        )
    )[0]
    return bool(owned)


# ------------------------------------------------------------------ user mappings


@dataclass(frozen=True)
class MappingRow:
    connection_key: str
    immuta_user: str
    postgres_mode: str
    postgres_username: str | None
    postgres_role: str | None  # the role found at the last apply; None when not found
    aws_user_type: str | None
    aws_principal: str | None
    aws_principal_arn: str | None
    postgres_block_written: bool = False  # the configuration had a `postgres` block
    managed_by: str | None = SINGLE_OWNER


_MAPPING_COLUMNS = (
    "connection_key, immuta_user, postgres_mode, postgres_username, postgres_role, "
    "aws_user_type, aws_principal, aws_principal_arn, postgres_block_written, managed_by"
)
_COLUMN_NAMES = _MAPPING_COLUMNS.split(", ")
_row_values = attrgetter(*_COLUMN_NAMES)  # a MappingRow as the tuple of its columns
# Columns added after version 1 are read by name, so a store not upgraded yet still reads:
# before version 3 no configuration's `postgres` block was recorded; before version 5 every
# mapping was immuta_user_mapping's and no connection had an exclusive owner.
_BLOCK_WRITTEN = "coalesce((to_jsonb(m) ->> 'postgres_block_written')::boolean, false)"
# Before store version 5 (no such column) only immuta_user_mapping wrote mappings; since, a
# null manager is a mapping made outside Terraform.
_MANAGED_BY = (
    f"CASE WHEN to_jsonb(m) ? 'managed_by' THEN to_jsonb(m) ->> 'managed_by' "
    f"ELSE '{SINGLE_OWNER}' END"
)
_MAPPINGS_OWNER = "to_jsonb(c) ->> 'mappings_owner'"
_READ_COLUMNS = ", ".join([*("m." + c for c in _COLUMN_NAMES[:-2]), _BLOCK_WRITTEN, _MANAGED_BY])


@dataclass(frozen=True)
class MappingLookup:
    deployment_type: str | None  # None: the connection is not registered
    mapping: MappingRow | None
    roles: list[str]  # PostgreSQL roles matching the wanted name in any case
    exclusive_owner: str | None = None  # the immuta_user_mappings owning every mapping


_MAPPING_LOOKUP = f"""
SELECT c.deployment_type, {_MAPPINGS_OWNER}, {_READ_COLUMNS},
       ARRAY(SELECT r.rolname FROM pg_roles r WHERE lower(r.rolname) = lower(coalesce(
             %(wanted)s,
             CASE WHEN m.postgres_mode = 'username' THEN m.postgres_username ELSE %(user)s END))
             ORDER BY r.rolname)
FROM (VALUES (1)) AS one (x)
LEFT JOIN {{s}}.connections c ON c.connection_key = %(key)s
LEFT JOIN {{s}}.user_mappings m ON m.connection_key = c.connection_key AND m.immuta_user = %(user)s
"""


def look_up_mapping(
    conn: psycopg.Connection, key: str, user: str, wanted_role: str | None = None
) -> MappingLookup:
    """The connection, the mapping and the candidate roles in one round trip.

    `wanted_role` is the PostgreSQL name to look for; None looks for the one the stored
    mapping points at.
    """
    try:
        row = one_row(
            conn.execute(_q(_MAPPING_LOOKUP), {"key": key, "user": user, "wanted": wanted_role})
        )
    except UndefinedTable:
        return MappingLookup(None, None, [])
    deployment, exclusive_owner, *mapping, roles = row
    return MappingLookup(
        deployment, MappingRow(*mapping) if mapping[0] else None, roles, exclusive_owner
    )


def ensure_current(
    conn: psycopg.Connection,
    target: Target,
    known_current: set[Target],
    create: bool = True,
) -> bool:
    """Migrate the store when an older provider version created it, or create it (unless
    not `create`); whether there is a store now.

    `known_current` holds the Immuta databases a process already checked: `target` (the
    database of `conn`) is added to it, and not checked again.
    """
    if target in known_current:
        return True
    version = schema_version(conn)
    if version == 0 and not create:
        return False
    if version != LATEST_VERSION:
        with write_transaction(conn):
            pass
    known_current.add(target)
    return True


def save_mapping(conn: psycopg.Connection, row: MappingRow) -> str | None:
    """Insert or update a mapping; the Immuta user already holding its IAM role, if any.

    The partial unique index decides, so two concurrent applies cannot both win.
    """
    try:
        with conn.transaction():
            conn.execute(
                _q(
                    f"INSERT INTO {{s}}.user_mappings ({_MAPPING_COLUMNS}) "
                    f"VALUES ({', '.join(['%s'] * len(_COLUMN_NAMES))}) "
                    "ON CONFLICT (connection_key, immuta_user) DO UPDATE SET "
                    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMN_NAMES[2:])
                    + ", updated_at = now()"
                ),
                _row_values(row),
            )
    except UniqueViolation:
        holders = role_holders(conn, row.connection_key, [row.aws_principal_arn or ""], [])
        return holders.get(row.aws_principal_arn or "", "another Immuta user")
    return None


def delete_mapping(conn: psycopg.Connection, key: str, user: str, owner: str | None) -> str | None:
    """Delete the mapping if `owner` manages it, or nobody does (any mapping: owner None);
    else leave it and return the one who manages it."""
    found = conn.execute(
        _q(
            "DELETE FROM {s}.user_mappings WHERE connection_key = %(key)s "
            "AND immuta_user = %(user)s AND (%(any)s OR managed_by IS NULL "
            "OR managed_by = %(owner)s) RETURNING 1"
        ),
        {"key": key, "user": user, "owner": owner or "", "any": owner is None},
    ).fetchone()
    if found is None and owner is not None:
        return foreign_owners(conn, key, owner, [user]).get(user)
    return None


# ------------------------------------------------------------------ sets of user mappings


@dataclass(frozen=True)
class MappingSetView:
    """A connection's mappings (some or all), and the PostgreSQL roles they may map to."""

    deployment_type: str | None  # None: the connection is not registered
    exclusive_owner: str | None
    rows: dict[str, MappingRow]  # by Immuta user
    roles: dict[str, list[str]]  # lower-case name -> the roles matching it in any case


_ROLE_OF_ROW = (
    "lower(CASE WHEN m.postgres_mode = 'username' THEN m.postgres_username ELSE m.immuta_user END)"
)


def read_mappings(
    conn: psycopg.Connection,
    key: str,
    users: Iterable[str] | None,
    role_names: Iterable[str] | None = None,
) -> MappingSetView:
    """The connection, its mappings of `users` (None: every one) and the roles matching
    `role_names` in any case (None: the names the mappings point at): one round trip. A
    store an older provider wrote reads too (a read does not upgrade it): see _READ_COLUMNS.
    """
    chosen = "m.connection_key = %(key)s AND (%(all)s OR m.immuta_user = ANY(%(users)s))"
    if role_names is None:
        wanted = f"(SELECT {_ROLE_OF_ROW} FROM {{s}}.user_mappings m WHERE {chosen})"
    else:
        wanted = "(SELECT lower(n) FROM unnest(%(names)s::text[]) AS n)"
    params = {
        "key": key,
        "all": users is None,
        "users": [] if users is None else list(users),
        "names": [] if role_names is None else list(role_names),
    }
    try:
        with conn.pipeline():
            connection = conn.execute(
                _q(
                    f"SELECT c.deployment_type, {_MAPPINGS_OWNER} FROM {{s}}.connections c "
                    "WHERE c.connection_key = %(key)s"
                ),
                params,
            )
            mappings = conn.execute(
                _q(f"SELECT {_READ_COLUMNS} FROM {{s}}.user_mappings m WHERE {chosen}"), params
            )
            roles = conn.execute(
                _q(
                    "SELECT lower(r.rolname), array_agg(r.rolname ORDER BY r.rolname) "
                    f"FROM pg_roles r WHERE lower(r.rolname) IN {wanted} GROUP BY 1"
                ),
                params,
            )
    except UndefinedTable:
        return MappingSetView(None, None, {}, {})
    found = connection.fetchone()
    return MappingSetView(
        found[0] if found else None,
        found[1] if found else None,
        {row[1]: MappingRow(*row) for row in mappings},
        dict(roles.fetchall()),
    )


@dataclass(frozen=True)
class Owners:
    """Under the store's lock: who else manages what a write would touch."""

    deployment_type: str | None  # None: the connection is not registered
    exclusive_owner: str | None
    foreign: dict[str, str]  # Immuta user -> the other manager
    unmanaged: list[str]  # Immuta users whose mapping nobody manages (made outside Terraform)
    role_holders: dict[str, str]  # IAM role ARN -> the Immuta user holding it


def owners(
    conn: psycopg.Connection,
    key: str,
    owner: str,
    users: Iterable[str],
    every_user: bool = False,
    arns: Iterable[str] = (),
    writing: Iterable[str] = (),
) -> Owners:
    """The connection's exclusive owner; the managers other than `owner` of `users` (or of
    every mapping of the connection), and those of them nobody manages; the holders of IAM
    roles `arns` other than the users being written: one round trip."""
    params = {
        "key": key,
        "owner": owner,
        "users": list(users),
        "all": every_user,
        "arns": list(arns),
        "writing": list(writing),
    }
    with conn.pipeline():
        connection = conn.execute(
            _q(
                "SELECT deployment_type, mappings_owner FROM {s}.connections "
                "WHERE connection_key = %(key)s"
            ),
            params,
        )
        foreign = conn.execute(
            _q(
                "SELECT immuta_user, managed_by FROM {s}.user_mappings WHERE connection_key = "
                "%(key)s AND managed_by IS DISTINCT FROM %(owner)s "
                "AND (%(all)s OR immuta_user = ANY(%(users)s))"
            ),
            params,
        )
        holders = conn.execute(
            _q(
                "SELECT aws_principal_arn, immuta_user FROM {s}.user_mappings "
                "WHERE connection_key = %(key)s AND aws_user_type = 'iam_role' "
                "AND aws_principal_arn = ANY(%(arns)s) AND immuta_user <> ALL(%(writing)s)"
            ),
            params,
        )
    found = connection.fetchone()
    others: dict[str, str | None] = dict(foreign.fetchall())
    return Owners(
        found[0] if found else None,
        found[1] if found else None,
        {user: manager for user, manager in others.items() if manager is not None},
        [user for user, manager in others.items() if manager is None],
        dict(holders.fetchall()),
    )


def foreign_owners(
    conn: psycopg.Connection, key: str, owner: str, users: list[str]
) -> dict[str, str]:
    """The managers other than `owner` of `users`' mappings."""
    return owners(conn, key, owner, users).foreign


def role_holders(
    conn: psycopg.Connection, key: str, arns: list[str], writing: list[str]
) -> dict[str, str]:
    """IAM role ARN -> the Immuta user holding it on the connection, among users not in
    `writing`."""
    return owners(conn, key, "", [], arns=arns, writing=writing).role_holders


def replace_mappings(
    conn: psycopg.Connection,
    key: str,
    rows: list[MappingRow],
    delete: Iterable[str],
    claim: Iterable[str],
    owner: str,
) -> None:
    """Write `rows` whole, delete the mappings of `delete`, and record `owner` as the
    manager of `claim`: a handful of statements, whatever the number of rows."""
    gone = [row.immuta_user for row in rows]
    gone.extend(delete)
    if gone:
        conn.execute(
            _q("DELETE FROM {s}.user_mappings WHERE connection_key = %s AND immuta_user = ANY(%s)"),
            (key, gone),
        )
    if rows:
        copy_sql = _q(f"COPY {{s}}.user_mappings ({_MAPPING_COLUMNS}) FROM STDIN")
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(_row_values(row))
    claimed = list(claim)
    if claimed:
        conn.execute(
            _q(
                "UPDATE {s}.user_mappings SET managed_by = %s WHERE connection_key = %s "
                "AND immuta_user = ANY(%s) AND managed_by IS DISTINCT FROM %s"
            ),
            (owner, key, claimed, owner),
        )


def delete_mappings_except(conn: psycopg.Connection, key: str, keep: list[str]) -> list[str]:
    """Delete every mapping of the connection but those of `keep`; the users deleted."""
    deleted = conn.execute(
        _q(
            "DELETE FROM {s}.user_mappings WHERE connection_key = %s "
            "AND immuta_user <> ALL(%s) RETURNING immuta_user"
        ),
        (key, keep),
    ).fetchall()
    return [row[0] for row in deleted]


def set_exclusive_owner(conn: psycopg.Connection, key: str, owner: str | None) -> None:
    conn.execute(
        _q("UPDATE {s}.connections SET mappings_owner = %s WHERE connection_key = %s"),
        (owner, key),
    )
