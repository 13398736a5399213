"""Object sync and crawl filters of immuta_postgres_connection, end to end."""

from __future__ import annotations

import pytest
from harness import (
    Body,
    Database,
    PostgresServer,
    Terraform,
    connection_block,
    provider_block,
    step,
)


def config(db: Database, **settings: object) -> str:
    return provider_block(db.server) + connection_block(
        db.host, db.port, db.name, "Synced", **settings
    )


def registered(db: Database) -> set[tuple[str, str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT database_name, schema_name, object_name FROM immuta.data_objects"
        ).fetchall()
    return set(rows)


@pytest.fixture
def data_db(pg_server: PostgresServer):
    db = pg_server.temp_database(prefix="data_")
    with db.connect() as conn:
        conn.execute(
            "CREATE TABLE public.orders (id int); CREATE TABLE public.tmp_scratch (id int)"
        )
    yield db
    db.drop()


def test_object_sync_plans_added_and_dropped_objects(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    with step("an unchanged server plans nothing"):
        terraform.write(config(immuta_db))
        terraform.apply()
        state = terraform.resources()["immuta_postgres_connection.main"]
        assert state["object_sync"] == "plan" and state["object_sync_status"] == "in sync"
        count = state["data_object_count"]
        terraform.plan_is_empty("an unchanged server plans nothing")

    with step("objects created since the crawl plan an in-place sync"):
        with data_db.connect() as conn:
            conn.execute(
                'CREATE TABLE public."New Table" (id int); CREATE VIEW public.v AS SELECT 1'
            )
        terraform.plan_changes(
            "2 objects appeared, 0 disappeared since the last crawl",
            f"+ {data_db.name}.public.New Table",
            '-> "in sync"',
            "1 to change",
        )
        terraform.apply()
        state = terraform.resources()["immuta_postgres_connection.main"]
        assert state["data_object_count"] == count + 2
        assert state["object_sync_status"] == "in sync"
        assert (data_db.name, "public", "New Table") in registered(immuta_db)
        terraform.plan_is_empty()

    with step("a dropped object is noticed"):
        with data_db.connect() as conn:
            conn.execute("DROP TABLE public.orders")
        terraform.plan_changes("0 objects appeared, 1 disappeared since the last crawl")
        terraform.apply()
        assert (data_db.name, "public", "orders") not in registered(immuta_db)
        terraform.plan_is_empty()

    with step("a new database is noticed too"):
        extra = immuta_db.server.temp_database(prefix="late_")
        try:
            with extra.connect() as conn:
                conn.execute("CREATE TABLE public.late (id int)")
            terraform.plan_changes("1 objects appeared")
        finally:
            extra.drop()
        terraform.plan_is_empty("the database went again: nothing to sync")

    with step("object_sync = off: no tracking"):
        terraform.write(config(immuta_db, object_sync="off"))
        terraform.apply()
        state = terraform.resources()["immuta_postgres_connection.main"]
        assert state["object_sync_status"] == "off"
        with data_db.connect() as conn:
            conn.execute("CREATE TABLE public.untracked (id int)")
        terraform.plan_is_empty()


def test_grants_alone_do_not_plan_a_sync(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    terraform.write(config(immuta_db))
    terraform.apply()
    with data_db.connect() as conn:
        conn.execute("GRANT SELECT ON public.orders TO PUBLIC; ANALYZE public.orders")
    terraform.plan_is_empty()


def test_include_and_exclude_filters(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    other = immuta_db.server.temp_database(prefix="other_")
    try:
        with other.connect() as conn:
            conn.execute("CREATE TABLE public.kept_out (id int)")
        filters = {
            "include": Body(databases=[data_db.name[:8] + "*"]),
            "exclude": Body(objects=["tmp_*"]),
        }
        terraform.write(config(immuta_db, **filters))
        terraform.apply()
        assert registered(immuta_db) == {(data_db.name, "public", "orders")}
        state = terraform.resources()["immuta_postgres_connection.main"]
        assert state["databases"] == [data_db.name]
        assert state["include"] == {
            "databases": [data_db.name[:8] + "*"],
            "schemas": None,
            "objects": None,
        }
        terraform.plan_is_empty()
        # Objects outside the filters never plan a sync.
        with other.connect() as conn:
            conn.execute("CREATE TABLE public.also_out (id int)")
        with data_db.connect() as conn:
            conn.execute("CREATE TABLE public.tmp_more (id int)")
        terraform.plan_is_empty()
        # Dropping the filters is an in-place update that registers everything.
        terraform.write(config(immuta_db))
        terraform.plan_changes("1 to change")
        terraform.apply()
        assert (other.name, "public", "kept_out") in registered(immuta_db)
        assert (data_db.name, "public", "tmp_more") in registered(immuta_db)
    finally:
        other.drop()


def test_state_store_upgrades_from_version_1(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    from tfprovider_immuta_pg.immuta import store

    with immuta_db.connect() as conn:
        conn.execute("CREATE SCHEMA immuta")
        conn.execute(
            "CREATE TABLE immuta.schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(store.MIGRATIONS[0].replace("{s}", "immuta"))
        conn.execute("INSERT INTO immuta.schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO immuta.connections (connection_key, hostname, port, database_name, "
            "deployment_type, auth_method, username, server_version, superuser, "
            "on_missing_privileges, databases) VALUES ('Legacy', 'h', 5432, 'd', 'rds', "
            "'password', 'u', '16.1', true, 'error', '{}')"
        )
    terraform.write(config(immuta_db))
    terraform.apply()
    with immuta_db.connect() as conn:
        versions = [
            r[0] for r in conn.execute("SELECT version FROM immuta.schema_version ORDER BY 1")
        ]
        legacy = conn.execute(
            "SELECT object_sync, filters FROM immuta.connections WHERE connection_key = 'Legacy'"
        ).fetchone()
    assert versions == list(range(1, store.LATEST_VERSION + 1))
    assert legacy == ("plan", {})


def test_refresh_reads_a_store_that_an_older_provider_wrote(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    """A read never upgrades the store (only writes do): a refresh against a store at version
    1 reads every column added since with its default, and the next write upgrades it."""
    from tfprovider_immuta_pg.immuta import store

    terraform.write(config(immuta_db))
    terraform.apply()
    with immuta_db.connect() as conn:
        conn.execute(
            "ALTER TABLE immuta.connections DROP COLUMN object_sync, DROP COLUMN filters, "
            "DROP COLUMN mappings_owner"
        )
        conn.execute(
            "ALTER TABLE immuta.user_mappings DROP COLUMN postgres_block_written, "
            "DROP COLUMN managed_by"
        )
        conn.execute("DROP TABLE immuta.crawled_databases")
        conn.execute("DELETE FROM immuta.schema_version WHERE version > 1")
    terraform.plan_is_empty("a version-1 store reads as the current one")
    with immuta_db.connect() as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM immuta.schema_version")] == [1]
    with data_db.connect() as conn:
        conn.execute("CREATE TABLE public.added_later (id int)")
    terraform.apply()
    with immuta_db.connect() as conn:
        versions = [
            r[0] for r in conn.execute("SELECT version FROM immuta.schema_version ORDER BY 1")
        ]
    assert versions == list(range(1, store.LATEST_VERSION + 1))
    assert (data_db.name, "public", "added_later") in registered(immuta_db)
    terraform.plan_is_empty("the upgraded store reads the same")
    terraform.destroyed()
