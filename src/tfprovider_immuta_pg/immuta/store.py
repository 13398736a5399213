"""The state store: schema `immuta` in the Immuta database, versioned, written under a lock.

Every write runs in one transaction that first takes a transaction-level
advisory lock, so concurrent applies (separate Terraform states, same Immuta
database) serialise instead of racing; uniqueness rules are constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.errors import DependentObjectsStillExist, UndefinedTable, UniqueViolation

from .pg import one_row

if TYPE_CHECKING:
    import psycopg

    from .inspector import CatalogObject

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
]
LATEST_VERSION = len(MIGRATIONS)
STORE_TABLES = (
    "crawled_databases",
    "user_mappings",
    "data_objects",
    "connections",
    "schema_version",
)


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


def _migrate(conn: psycopg.Connection) -> None:
    """Inside a locked transaction: bring the schema to LATEST_VERSION."""
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
    for version in range(current + 1, LATEST_VERSION + 1):
        conn.execute(_q(MIGRATIONS[version - 1]))
        conn.execute(_q("INSERT INTO {s}.schema_version (version) VALUES (%s)"), (version,))


@contextmanager
def write_transaction(
    conn: psycopg.Connection, create: bool = True
) -> Iterator[psycopg.Connection]:
    """One transaction, serialised with every other writer, on an up-to-date schema.

    With `create=False` a missing store is left missing (nothing to delete there).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if create or schema_version(conn):
            _migrate(conn)
        yield conn


_CONNECTION_COLUMNS = """c.connection_key, c.hostname, c.port, c.database_name,
    c.deployment_type, c.auth_method, c.username, c.server_version, c.superuser,
    c.on_missing_privileges, c.databases, c.skipped_object_count, c.registered_at,
    c.object_sync, c.filters,
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


def fingerprints(conn: psycopg.Connection, key: str) -> dict[str, str]:
    rows = conn.execute(
        _q(
            "SELECT database_name, fingerprint FROM {s}.crawled_databases WHERE connection_key = %s"
        ),
        (key,),
    ).fetchall()
    return dict(rows)


def save_fingerprints(conn: psycopg.Connection, key: str, prints: dict[str, str]) -> None:
    conn.execute(_q("DELETE FROM {s}.crawled_databases WHERE connection_key = %s"), (key,))
    if prints:
        conn.execute(
            _q(
                "INSERT INTO {s}.crawled_databases (connection_key, database_name, fingerprint) "
                "SELECT %s, db, fp FROM unnest(%s::text[], %s::text[]) AS t(db, fp)"
            ),
            (key, list(prints), list(prints.values())),
        )


def delete_connection(conn: psycopg.Connection, key: str) -> bool:
    """Remove the connection with its objects and mappings; drop the schema when empty."""
    if schema_version(conn) == 0:
        return False
    deleted = conn.execute(
        _q("DELETE FROM {s}.connections WHERE connection_key = %s"), (key,)
    ).rowcount
    remaining = one_row(conn.execute(_q("SELECT count(*) FROM {s}.connections")))[0]
    if remaining == 0:
        conn.execute(
            sql.SQL("DROP TABLE {}").format(
                sql.SQL(", ").join(sql.Identifier(SCHEMA, t) for t in STORE_TABLES)
            )
        )
        # RESTRICT: a schema that also holds somebody else's objects stays.
        with suppress(DependentObjectsStillExist), conn.transaction():
            conn.execute(_q("DROP SCHEMA {s}"))
    return deleted > 0


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


_MAPPING_COLUMNS = (
    "connection_key, immuta_user, postgres_mode, postgres_username, postgres_role, "
    "aws_user_type, aws_principal, aws_principal_arn, postgres_block_written"
)
# Read by name, so a store not upgraded yet (before version 3: no such column) still reads.
_BLOCK_WRITTEN = "coalesce((to_jsonb(m) ->> 'postgres_block_written')::boolean, false)"


@dataclass(frozen=True)
class MappingLookup:
    deployment_type: str | None  # None: the connection is not registered
    mapping: MappingRow | None
    roles: list[str]  # PostgreSQL roles matching the wanted name in any case


_MAPPING_LOOKUP = f"""
SELECT c.deployment_type, {", ".join("m." + c for c in _MAPPING_COLUMNS.split(", ")[:-1])},
       {_BLOCK_WRITTEN},
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
    deployment, *mapping, roles = row
    return MappingLookup(deployment, MappingRow(*mapping) if mapping[0] else None, roles)


def ensure_current(conn: psycopg.Connection) -> None:
    """Migrate the store when an older provider version created it."""
    if schema_version(conn) != LATEST_VERSION:
        with write_transaction(conn):
            pass


def save_mapping(conn: psycopg.Connection, row: MappingRow) -> str | None:
    """Insert or update a mapping; the Immuta user already holding its IAM role, if any.

    The partial unique index decides, so two concurrent applies cannot both win.
    """
    try:
        with conn.transaction():
            upsert_mapping(conn, row)
    except UniqueViolation:
        holder = conn.execute(
            _q(
                "SELECT immuta_user FROM {s}.user_mappings WHERE connection_key = %s "
                "AND aws_user_type = 'iam_role' AND aws_principal_arn = %s"
            ),
            (row.connection_key, row.aws_principal_arn),
        ).fetchone()
        return holder[0] if holder else "another Immuta user"
    return None


def upsert_mapping(conn: psycopg.Connection, row: MappingRow) -> None:
    conn.execute(
        _q(
            f"INSERT INTO {{s}}.user_mappings ({_MAPPING_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (connection_key, immuta_user) DO UPDATE SET "
            "postgres_mode = EXCLUDED.postgres_mode, "
            "postgres_username = EXCLUDED.postgres_username, "
            "postgres_role = EXCLUDED.postgres_role, "
            "aws_user_type = EXCLUDED.aws_user_type, aws_principal = EXCLUDED.aws_principal, "
            "aws_principal_arn = EXCLUDED.aws_principal_arn, "
            "postgres_block_written = EXCLUDED.postgres_block_written, updated_at = now()"
        ),
        (
            row.connection_key,
            row.immuta_user,
            row.postgres_mode,
            row.postgres_username,
            row.postgres_role,
            row.aws_user_type,
            row.aws_principal,
            row.aws_principal_arn,
            row.postgres_block_written,
        ),
    )


def delete_mapping(conn: psycopg.Connection, key: str, user: str) -> None:
    with suppress(UndefinedTable):  # no store: nothing to delete
        conn.execute(
            _q("DELETE FROM {s}.user_mappings WHERE connection_key = %s AND immuta_user = %s"),
            (key, user),
        )
