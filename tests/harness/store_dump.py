"""A byte-for-byte text dump of the Immuta state store (schema `immuta`), for before/after
comparisons: a refused operation must leave it exactly as it was."""

from __future__ import annotations

from psycopg import sql

from .postgres import Database

# Every table of the state store (src/tfprovider_immuta_pg/immuta/store.py), stable order.
STORE_TABLES = (
    "schema_version",
    "connections",
    "data_objects",
    "crawled_databases",
    "user_mappings",
)


def store_dump(db: Database) -> str:
    """Each table's rows as PostgreSQL's text form of the whole row, sorted; the list of
    relations in the schema too (a dropped or added table shows). '' when no store."""
    with db.connect() as conn:
        if not conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]:
            return ""
        relations = conn.execute(
            "SELECT c.relname || ':' || c.relkind::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'immuta' "
            "ORDER BY 1"
        ).fetchall()
        parts = ["relations: " + ", ".join(r[0] for r in relations)]
        for table in STORE_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (f"immuta.{table}",)).fetchone()[0] is None:
                parts.append(f"-- {table}: missing")
                continue
            query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(
                sql.Identifier("immuta", table)
            )
            rows = [r[0] for r in conn.execute(query).fetchall()]
            parts.append(f"-- {table}: {len(rows)} rows")
            parts.extend(rows)
    return "\n".join(parts)


def store_counts(db: Database) -> dict[str, int]:
    """Rows per store table; {} when there is no store."""
    counts: dict[str, int] = {}
    with db.connect() as conn:
        for table in STORE_TABLES:
            if conn.execute("SELECT to_regclass(%s)", (f"immuta.{table}",)).fetchone()[0]:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("immuta", table))
                counts[table] = conn.execute(query).fetchone()[0]
    return counts
