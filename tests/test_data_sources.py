"""Data sources immuta_postgres_preflight and immuta_postgres_data_objects, end to end."""

from __future__ import annotations

import uuid

import pytest
from harness import (
    Body,
    Database,
    PostgresServer,
    Raw,
    Terraform,
    block,
    connection_block,
    data,
    output,
    provider_block,
)
from psycopg import sql

MAIN_CONNECTION_ID = Raw("immuta_postgres_connection.main.id")


def preflight_hcl(db: Database, **settings: object) -> str:
    return data(
        "immuta_postgres_preflight",
        "check",
        hostname=db.host,
        port=db.port,
        database=db.name,
        **settings,
    ) + output("preflight", Raw("data.immuta_postgres_preflight.check"))


def data_objects_hcl(name: str, connection_id: object = MAIN_CONNECTION_ID, **filters: str) -> str:
    return data(
        "immuta_postgres_data_objects", name, connection_id=connection_id, **filters
    ) + output(name, Raw(f"data.immuta_postgres_data_objects.{name}"))


@pytest.fixture
def data_db(pg_server: PostgresServer):
    db = pg_server.temp_database(prefix="shop_")
    with db.connect() as conn:
        conn.execute(
            "CREATE TABLE public.orders (id int); CREATE TABLE public.order_lines (id int);"
            "CREATE VIEW public.order_view AS SELECT 1 AS x; CREATE SCHEMA finance;"
            "CREATE TABLE finance.ledger (id int)"
        )
    yield db
    db.drop()


def test_preflight_superuser_is_ready(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    terraform.write(provider_block(immuta_db.server) + preflight_hcl(immuta_db))
    terraform.apply()
    result = terraform.outputs()["preflight"]
    assert result["ready"] is True and result["supported"] is True and result["superuser"] is True
    assert result["server_version"].startswith(str(immuta_db.server.version))
    assert result["missing_privileges"] == [] and result["grant_statements"] == []
    assert data_db.name in result["databases"] and immuta_db.name not in result["databases"]
    assert result["dedicated"] is True
    with immuta_db.connect() as conn:
        assert conn.execute("SELECT to_regnamespace('immuta')").fetchone()[0] is None, (
            "preflight registers nothing"
        )


def test_preflight_reports_what_is_missing_and_gates_with_check(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    role, password = f"pre_{uuid.uuid4().hex[:8]}", "preflight-pw-1"
    with immuta_db.server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    with immuta_db.connect() as conn:
        conn.execute("CREATE TABLE public.etl (id int)")
    provider = block("provider", "immuta", username=role, password=password)
    condition = Raw("data.immuta_postgres_preflight.check.ready")
    gate = block(
        "check", "immuta_ready", **{"assert": Body(condition=condition, error_message="not ready")}
    )
    terraform.write(provider + preflight_hcl(immuta_db) + gate)
    result = terraform.apply()
    assert "Check block assertion failed" in result.text and "not ready" in result.text
    out = terraform.outputs()["preflight"]
    assert out["ready"] is False and out["superuser"] is False and out["dedicated"] is False
    assert "public.etl" in out["foreign_objects"]
    assert f"database {data_db.name}: CONNECT WITH GRANT OPTION" in out["missing_privileges"]
    assert (
        f"table {data_db.name}.finance.ledger: "
        "SELECT, INSERT, UPDATE, DELETE, TRUNCATE WITH GRANT OPTION" in out["missing_privileges"]
    )
    assert (
        f'GRANT CONNECT ON DATABASE "{data_db.name}" TO "{role}" WITH GRANT OPTION;'
        in out["grant_statements"]
    )


@pytest.mark.parametrize("major", [15, 18])
def test_preflight_unsupported_versions(
    terraform: Terraform, request: pytest.FixtureRequest, major: int
) -> None:
    server: PostgresServer = request.getfixturevalue(f"pg{major}")
    db = server.temp_database()
    try:
        terraform.write(provider_block(server) + preflight_hcl(db))
        terraform.apply()
        out = terraform.outputs()["preflight"]
        assert out["supported"] is False and out["ready"] is False
        assert out["server_version"].startswith(f"{major}.")
    finally:
        db.drop()


def test_data_objects_with_filters(
    terraform: Terraform, immuta_db: Database, data_db: Database
) -> None:
    connection = (
        connection_block(immuta_db.host, immuta_db.port, immuta_db.name, "Shop")
        + data_objects_hcl("all", database=data_db.name)
        + data_objects_hcl(
            "orders",
            database=data_db.name,
            schema="public",
            object_type="table",
            name_pattern="order*",
        )
    )
    terraform.write(provider_block(immuta_db.server) + connection)
    terraform.apply()
    outputs = terraform.outputs()
    assert outputs["all"]["count"] == 4
    assert [o["name"] for o in outputs["orders"]["objects"]] == ["order_lines", "orders"]
    first = outputs["orders"]["objects"][0]
    assert first == {
        "database": data_db.name,
        "schema": "public",
        "name": "order_lines",
        "object_type": "table",
        "full_name": f"Shop.{data_db.name}.public.order_lines",
    }
    terraform.plan_is_empty()


def test_data_objects_unregistered_connection(terraform: Terraform, immuta_db: Database) -> None:
    missing = f"{immuta_db.host}:{immuta_db.port}/{immuta_db.name}/Ghost"
    terraform.write(provider_block(immuta_db.server) + data_objects_hcl("x", missing))
    terraform.plan_fails("Connection 'Ghost' is not registered")


def test_a_data_objects_answer_larger_than_the_flow_control_windows(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer
) -> None:
    """4000 objects: the ReadDataSource response (about half a megabyte) outgrows grpc-go's 64 KiB
    initial window many times over, so it reaches Terraform only through the server's
    flow control (WINDOW_UPDATEs from grpc-go). Every object must arrive, in order."""
    db = pg_server.temp_database(prefix="wide_")
    try:
        with db.connect() as conn:
            conn.execute(
                "DO $$ BEGIN FOR i IN 1..4000 LOOP "
                "EXECUTE format('CREATE TABLE public.%I (id int)', 't_' || lpad(i::text, 5, '0'));"
                " END LOOP; END $$"
            )
        terraform.write(
            provider_block(immuta_db.server)
            + connection_block(immuta_db.host, immuta_db.port, immuta_db.name, "Wide")
            + data_objects_hcl("wide", database=db.name)
        )
        terraform.apply()
        wide = terraform.outputs()["wide"]
        assert wide["count"] == 4000
        names = [o["name"] for o in wide["objects"]]
        assert names == [f"t_{i:05d}" for i in range(1, 4001)]
        assert wide["objects"][-1]["full_name"] == f"Wide.{db.name}.public.t_04000"
    finally:
        db.drop()
