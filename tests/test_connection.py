"""immuta_postgres_connection end to end: real terraform, real PostgreSQL 16/17 (and 15)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from harness import (
    Body,
    Database,
    PostgresServer,
    Raw,
    Result,
    Terraform,
    block,
    connection_block,
    data,
    output,
    provider_block,
    resource,
    step,
)
from harness.store_dump import store_dump as whole_store
from psycopg import sql


def connection_hcl(db: Database, display_name: str = "Production", **extra: object) -> str:
    return connection_block(db.host, db.port, db.name, display_name, **extra)


def write_config(
    tf: Terraform,
    db: Database,
    display_name: str = "Production",
    provider: str | None = None,
    **extra: object,
) -> None:
    tf.write((provider or provider_block(db.server)) + connection_hcl(db, display_name, **extra))


def state_rows(db: Database, query: str) -> list[tuple]:
    with db.connect() as conn:
        exists = conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]
        return conn.execute(query).fetchall() if exists else []


def store_dump(db: Database) -> list[tuple]:
    return state_rows(
        db,
        "SELECT connection_key, database_name, schema_name, object_name, object_type "
        "FROM immuta.data_objects ORDER BY 1, 2, 3, 4",
    ) + state_rows(db, "SELECT connection_key, hostname, port FROM immuta.connections ORDER BY 1")


def schema_exists(db: Database) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]


@pytest.fixture
def sales_db(pg_server: PostgresServer):
    """A data database with one object of each supported type, and awkward names."""
    db = pg_server.temp_database(prefix="sales_")
    with db.connect() as conn:
        conn.execute(
            """
            CREATE TABLE public.orders (id int);
            CREATE TABLE public.events (id int) PARTITION BY RANGE (id);
            CREATE VIEW public.order_ids AS SELECT id FROM public.orders;
            CREATE MATERIALIZED VIEW public.order_count AS SELECT count(*) FROM public.orders;
            CREATE SCHEMA "Odd ""Schema"" ü";
            CREATE TABLE "Odd ""Schema"" ü"."Mixed Case Täble" (id int);
            CREATE TEMP TABLE scratch (id int);
            """
        )
        if has_fdw(conn):
            conn.execute(
                """
                CREATE EXTENSION postgres_fdw;
                CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw;
                CREATE FOREIGN TABLE public.remote_orders (id int) SERVER loopback;
                """
            )
    yield db
    db.drop()


def has_fdw(conn) -> bool:
    """pgserver's PostgreSQL 16 build ships no foreign-data wrapper; the npm 17 build does."""
    query = "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgres_fdw'"
    return conn.execute(query).fetchone()[0] == 1


EXPECTED_SALES = {
    ("public", "orders", "table"),
    ("public", "events", "partitioned_table"),
    ("public", "order_ids", "view"),
    ("public", "order_count", "materialized_view"),
    FOREIGN_TABLE := ("public", "remote_orders", "foreign_table"),
    ('Odd "Schema" ü', "Mixed Case Täble", "table"),
}


def test_lifecycle(terraform: Terraform, immuta_db: Database, sales_db: Database) -> None:
    with step("create registers every supported object of the other databases"):
        write_config(terraform, immuta_db)
        terraform.apply()
        state = terraform.resources()["immuta_postgres_connection.main"]
        assert state["id"] == f"{immuta_db.host}:{immuta_db.port}/{immuta_db.name}/Production"
        assert state["server_version"].split(".")[0] == str(immuta_db.server.version)
        assert state["auth_method"] == "password"
        assert state["username"] == "postgres"
        assert sales_db.name in state["databases"] and immuta_db.name not in state["databases"]
        assert state["skipped_object_count"] == 0
        rows = state_rows(
            immuta_db,
            f"SELECT schema_name, object_name, object_type FROM immuta.data_objects "
            f"WHERE database_name = '{sales_db.name}'",
        )
        with sales_db.connect() as conn:
            expected = EXPECTED_SALES if has_fdw(conn) else EXPECTED_SALES - {FOREIGN_TABLE}
        assert set(rows) == expected
        assert state["data_object_count"] == len(
            state_rows(immuta_db, "SELECT 1 FROM immuta.data_objects")
        )
        terraform.plan_is_empty("a plan right after apply must be empty")

    with step("the registration removed outside Terraform is planned again"):
        with immuta_db.connect() as conn:
            conn.execute("DELETE FROM immuta.connections")
        terraform.plan_changes("1 to add")
        terraform.apply()
        terraform.plan_is_empty()

    with step("import round trip"):
        terraform.run("state", "rm", "immuta_postgres_connection.main")
        terraform.run("import", "-no-color", "immuta_postgres_connection.main", state["id"])
        terraform.plan_is_empty()
        assert terraform.resources()["immuta_postgres_connection.main"]["registered_at"]

    with step("deployment_type changes in place"):
        write_config(terraform, immuta_db, deployment_type="neon")
        plan = terraform.plan_changes("1 to change")
        assert "forces replacement" not in plan.stdout
        terraform.apply()
        rows = state_rows(immuta_db, "SELECT deployment_type FROM immuta.connections")
        assert rows == [("neon",)]

    with step("display_name forces a replacement"):
        write_config(terraform, immuta_db, display_name="Renamed", deployment_type="neon")
        terraform.plan_changes("forces replacement", "1 to add, 0 to change, 1 to destroy")
        terraform.apply()
        rows = state_rows(immuta_db, "SELECT connection_key FROM immuta.connections")
        assert rows == [("Renamed",)]

    with step("destroy drops the state schema once it is empty"):
        terraform.destroyed()
        assert not schema_exists(immuta_db)


@pytest.mark.pg17_only
@pytest.mark.parametrize("major", [15, 18])
def test_unsupported_versions_are_refused(
    terraform: Terraform, request: pytest.FixtureRequest, major: int, pg_server: PostgresServer
) -> None:
    """Real PostgreSQL 15 and 18 servers; `test_the_version_rule` covers the other versions."""
    server: PostgresServer = request.getfixturevalue(f"pg{major}")
    db = server.temp_database()
    try:
        write_config(terraform, db)
        version = server_version(db)
        assert version.split(".")[0] == str(major)
        terraform.apply_fails(
            f"PostgreSQL {version} is not supported",
            f"{db.host}:{db.port} runs PostgreSQL {version}; Immuta registers PostgreSQL 16 and "
            "17 only. Upgrade the server or point hostname at a supported one.",
            'hostname = "',
        )
        assert not schema_exists(db), "a refused registration writes nothing"
    finally:
        db.drop()


@pytest.mark.parametrize(
    "version_num, supported",
    [(90624, False), (100023, False), (140013, False), (150008, False), (159999, False)]
    + [(160000, True), (160009, True), (170000, True), (170010, True), (179999, True)]
    + [(180000, False), (180004, False), (190000, False), (260000, False)],
)
def test_the_version_rule(version_num: int, supported: bool) -> None:
    """The rule the refusal applies: majors 16 and 17 only, whatever the minor."""
    from tfprovider_immuta_pg.immuta.inspector import ServerFacts

    facts = ServerFacts("x", version_num, "u", superuser=True, createrole=True)
    assert facts.supported is supported


def server_version(db: Database) -> str:
    with db.connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]


def test_hostname_port_update_in_place(terraform: Terraform, immuta_db: Database) -> None:
    write_config(terraform, immuta_db)
    terraform.apply()
    write_config(terraform, immuta_db, hostname="localhost")
    terraform.plan_changes("1 to change", "id", "(known after apply)")
    terraform.apply()
    state = terraform.resources()["immuta_postgres_connection.main"]
    assert state["id"] == f"localhost:{immuta_db.port}/{immuta_db.name}/Production"
    assert state_rows(immuta_db, "SELECT hostname FROM immuta.connections") == [("localhost",)]
    terraform.plan_is_empty()


def test_duplicate_display_name_from_two_configurations(tmp_path, immuta_db: Database) -> None:
    first, second = Terraform(tmp_path / "first"), Terraform(tmp_path / "second")
    write_config(first, immuta_db, display_name="Shared")
    first.apply()
    before = store_dump(immuta_db)
    write_config(second, immuta_db, display_name="SHARED")
    second.apply_fails("A connection named 'Shared' is already registered", "terraform import")
    assert store_dump(immuta_db) == before
    assert (
        second.state_file_text() == ""
        or "immuta_postgres_connection" not in second.state_file_text()
    )


@pytest.mark.pg17_only
@pytest.mark.parametrize(
    "display_name",
    ["Prod with spaces", "Ünïcødé 名前", "slash/and#hash%", 'quote"d', "x:y@z"],
)
def test_import_round_trip_for_awkward_names(
    terraform: Terraform, immuta_db: Database, display_name: str, pg_server: PostgresServer
) -> None:
    write_config(terraform, immuta_db, display_name=display_name)
    terraform.apply()
    resource_id = terraform.resources()["immuta_postgres_connection.main"]["id"]
    terraform.run("state", "rm", "immuta_postgres_connection.main")
    terraform.run("import", "-no-color", "immuta_postgres_connection.main", resource_id)
    terraform.plan_is_empty()
    assert terraform.resources()["immuta_postgres_connection.main"]["display_name"] == display_name
    terraform.destroy()


@pytest.mark.pg17_only
def test_unreachable_server_is_an_error_not_a_removal(
    terraform: Terraform, pg_server: PostgresServer
) -> None:
    server = PostgresServer(17).start()
    try:
        db = server.temp_database()
        write_config(terraform, db, provider=provider_block(server, connect_timeout=2))
        terraform.apply()
    finally:
        server.stop()
    terraform.plan_fails(f"Cannot connect to PostgreSQL at {db.host}:{db.port}")
    assert "immuta_postgres_connection.main" in terraform.resources()


def test_refused_credentials_are_an_error_not_a_removal(
    terraform: Terraform, immuta_db: Database
) -> None:
    write_config(terraform, immuta_db)
    terraform.apply()
    secret = f"wrong-{uuid.uuid4().hex}"
    wrong = block("provider", "immuta", username="postgres", password=secret)
    write_config(terraform, immuta_db, provider=wrong)
    result = terraform.plan_fails("PostgreSQL refused the credentials of user 'postgres'")
    assert "wrong-" not in result.text
    assert "immuta_postgres_connection.main" in terraform.resources()


def test_not_dedicated_immuta_database_warns(terraform: Terraform, immuta_db: Database) -> None:
    with immuta_db.connect() as conn:
        conn.execute("CREATE TABLE public.etl_jobs (id int)")
    write_config(terraform, immuta_db)
    result = terraform.apply()
    assert "The Immuta database is not dedicated to Immuta" in result.text
    assert "public.etl_jobs" in result.text


# ------------------------------------------------------------------ least privilege


PASSWORD = "registrar-pw-7f3a"


@pytest.fixture
def role() -> str:
    """A fresh login role name (roles are server-wide; each test gets its own)."""
    return f"registrar_{uuid.uuid4().hex[:10]}"


def least_privilege_setup(
    server: PostgresServer,
    immuta_db: Database,
    data_dbs: list[str],
    role: str,
    omit: str | None = None,
    immuta_owner: str | None = None,
) -> None:
    """A non-superuser with exactly the documented privileges, less `omit`; it owns the
    Immuta database, unless `immuta_owner` (a role created here) does."""
    with server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                sql.Identifier(role),
                sql.SQL("NOCREATEROLE" if omit == "CREATEROLE" else "CREATEROLE"),
                sql.Literal(PASSWORD),
            )
        )
        if immuta_owner:
            conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(immuta_owner)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(immuta_db.name), sql.Identifier(immuta_owner or role)
            )
        )
        for name in data_dbs:
            if not (omit == "CONNECT" and name != "postgres"):
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {} WITH GRANT OPTION").format(
                        sql.Identifier(name), sql.Identifier(role)
                    )
                )
    for name in data_dbs:
        with server.connect(name) as conn:
            schemas = [
                r[0]
                for r in conn.execute(
                    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                    "AND nspname <> 'information_schema'"
                )
            ]
            for schema in schemas:
                if not (omit == "USAGE" and name != "postgres"):
                    conn.execute(
                        sql.SQL("GRANT USAGE ON SCHEMA {} TO {} WITH GRANT OPTION").format(
                            sql.Identifier(schema), sql.Identifier(role)
                        )
                    )
                privileges = [
                    p
                    for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
                    if not (p == omit and name != "postgres")
                ]
                conn.execute(
                    sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {} WITH GRANT OPTION").format(
                        sql.SQL(", ").join(map(sql.SQL, privileges)),
                        sql.Identifier(schema),
                        sql.Identifier(role),
                    )
                )


def registrar_provider(role: str) -> str:
    return block("provider", "immuta", username=role, password=PASSWORD)


@pytest.fixture
def plain_db(pg_server: PostgresServer):
    db = pg_server.temp_database(prefix="plain_")
    with db.connect() as conn:
        conn.execute("CREATE TABLE public.orders (id int); CREATE VIEW public.v AS SELECT 1 AS x")
    yield db
    db.drop()


def register_with_documented_privileges(
    terraform: Terraform, immuta_db: Database, data_db: Database, role: str
) -> Result:
    """Register as `role`, made with exactly Immuta's documented privileges (and the
    ownership of the Immuta database)."""
    least_privilege_setup(immuta_db.server, immuta_db, ["postgres", data_db.name], role)
    write_config(terraform, immuta_db, provider=registrar_provider(role))
    return terraform.apply()


def test_least_privilege_user_succeeds(
    terraform: Terraform, immuta_db: Database, plain_db: Database, role: str
) -> None:
    result = register_with_documented_privileges(terraform, immuta_db, plain_db, role)
    assert "Missing PostgreSQL privileges" not in result.text
    state = terraform.resources()["immuta_postgres_connection.main"]
    assert state["username"] == role and state["skipped_object_count"] == 0
    assert state["data_object_count"] == 2
    terraform.destroy()


@pytest.mark.parametrize(
    "omit, expected_line, expected_grant",
    [
        ("CREATEROLE", "- role {role}: CREATEROLE", 'ALTER ROLE "{role}" CREATEROLE;'),
        (
            "CONNECT",
            "- database {db}: CONNECT WITH GRANT OPTION",
            'GRANT CONNECT ON DATABASE "{db}" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "USAGE",
            "- schema {db}.public: USAGE WITH GRANT OPTION",
            'GRANT USAGE ON SCHEMA "public" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "SELECT",
            "- table {db}.public.orders: SELECT WITH GRANT OPTION",
            'GRANT SELECT ON TABLE "public"."orders" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "INSERT",
            "- table {db}.public.orders: INSERT WITH GRANT OPTION",
            'GRANT INSERT ON TABLE "public"."orders" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "UPDATE",
            "- view {db}.public.v: UPDATE WITH GRANT OPTION",
            'GRANT UPDATE ON TABLE "public"."v" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "DELETE",
            "- table {db}.public.orders: DELETE WITH GRANT OPTION",
            'GRANT DELETE ON TABLE "public"."orders" TO "{role}" WITH GRANT OPTION;',
        ),
        (
            "TRUNCATE",
            "- table {db}.public.orders: TRUNCATE WITH GRANT OPTION",
            'GRANT TRUNCATE ON TABLE "public"."orders" TO "{role}" WITH GRANT OPTION;',
        ),
    ],
)
def test_each_missing_privilege_is_reported(
    terraform: Terraform,
    pg_server: PostgresServer,
    immuta_db: Database,
    plain_db: Database,
    role: str,
    omit: str,
    expected_line: str,
    expected_grant: str,
) -> None:
    if pg_server.version != 17 and omit not in ("CREATEROLE", "SELECT"):
        pytest.skip("the full matrix runs on PostgreSQL 17; 16 runs two of them")
    least_privilege_setup(pg_server, immuta_db, ["postgres", plain_db.name], role, omit=omit)
    write_config(terraform, immuta_db, provider=registrar_provider(role))
    result = terraform.apply_fails()
    output = result.text
    assert "Missing PostgreSQL privileges to register connection 'Production'" in output
    assert " ".join(expected_line.format(db=plain_db.name, role=role).split()) in output
    assert " ".join(expected_grant.format(db=plain_db.name, role=role).split()) in output
    assert not schema_exists(immuta_db), "a refused registration writes nothing"


def test_skip_registers_what_can_be_governed(
    terraform: Terraform,
    pg_server: PostgresServer,
    immuta_db: Database,
    plain_db: Database,
    role: str,
) -> None:
    least_privilege_setup(pg_server, immuta_db, ["postgres", plain_db.name], role, omit="SELECT")
    write_config(
        terraform, immuta_db, provider=registrar_provider(role), on_missing_privileges="skip"
    )
    result = terraform.apply()
    assert "2 objects skipped for missing privileges" in result.text
    state = terraform.resources()["immuta_postgres_connection.main"]
    assert state["data_object_count"] == 0 and state["skipped_object_count"] == 2
    terraform.plan_is_empty()


def test_lost_privileges_warn_on_refresh(
    terraform: Terraform, pg_server: PostgresServer, immuta_db: Database, role: str
) -> None:
    with pg_server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(immuta_db.name), sql.Identifier(role)
            )
        )
    write_config(terraform, immuta_db, provider=registrar_provider(role))
    terraform.apply()
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER NOCREATEROLE").format(sql.Identifier(role)))
    result = terraform.plan()
    assert "Connection 'Production' changed since registration" in result.text
    assert f"user '{role}' is no longer a superuser" in result.text
    assert f"user '{role}' lacks CREATEROLE" in result.text
    assert "immuta_postgres_connection.main" in terraform.resources(), "a warning, not a removal"


# ------------------------------------------------------------------ the state store's privileges


@pytest.fixture
def immuta_owner(pg_server: PostgresServer) -> Iterator[str]:
    """The name of a role that owns the Immuta database (dropped after the test)."""
    name = f"immuta_owner_{uuid.uuid4().hex[:8]}"
    yield name
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(name)))
    pg_server.drop_role(name)


def preflight_hcl(db: Database) -> str:
    return data(
        "immuta_postgres_preflight", "check", hostname=db.host, port=db.port, database=db.name
    ) + "".join(
        output(name, Raw(f"data.immuta_postgres_preflight.check.{name}"))
        for name in ("ready", "missing_privileges", "grant_statements")
    )


def test_registration_needs_create_on_the_immuta_database(
    terraform: Terraform,
    pg_server: PostgresServer,
    immuta_db: Database,
    plain_db: Database,
    role: str,
    immuta_owner: str,
) -> None:
    """Exactly Immuta's documented privileges, on an Immuta database another role owns: not
    enough to keep the registration there. The preflight says so, create refuses before
    writing, and the GRANT it names is all that is missing."""
    least_privilege_setup(
        pg_server, immuta_db, ["postgres", plain_db.name], role, immuta_owner=immuta_owner
    )
    provider = registrar_provider(role)
    line = (
        f"database {immuta_db.name}: CREATE (to create the schema immuta that keeps the "
        "registration)"
    )
    grant = f'GRANT CREATE ON DATABASE "{immuta_db.name}" TO "{role}";'
    with step("the preflight says not ready, and why"):
        terraform.write(provider + preflight_hcl(immuta_db))
        terraform.apply()
        assert terraform.outputs() == {
            "ready": False,
            "missing_privileges": [line],
            "grant_statements": [grant],
        }

    with step("create refuses before writing anything"):
        terraform.write(provider + preflight_hcl(immuta_db) + connection_hcl(immuta_db))
        terraform.apply_fails(
            "Missing PostgreSQL privileges to register connection 'Production'",
            f"User '{role}' on {immuta_db.host}:{immuta_db.port} is not a superuser and lacks 1 "
            "of the privileges",
            f"- {line}",
            grant,
            "The registration is kept in the Immuta database, so its privileges are needed "
            'whatever on_missing_privileges says ("skip" cannot help).',
        )
        assert not schema_exists(immuta_db)
        assert "immuta_postgres_connection.main" not in terraform.resources()

    with step("the GRANT named: both succeed"):
        with pg_server.connect() as conn:
            conn.execute(grant)
        terraform.apply()
        assert terraform.outputs()["ready"] is True
        assert terraform.outputs()["grant_statements"] == []
        assert terraform.resources()["immuta_postgres_connection.main"]["data_object_count"] == 2
        terraform.plan_is_empty()
        terraform.destroyed()
        assert not schema_exists(immuta_db)


@pytest.mark.pg17_only
def test_mappings_written_with_other_credentials_need_the_store_privileges(
    tmp_path, pg_server: PostgresServer, immuta_db: Database, role: str
) -> None:
    """The registration made by one user, a mapping applied by another that does not own
    the store: refused before anything is written, with the GRANTs it needs."""
    registration = Terraform(tmp_path / "registration")
    write_config(registration, immuta_db)
    registration.apply()
    connection_id = registration.resources()["immuta_postgres_connection.main"]["id"]
    with pg_server.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
    mappings = Terraform(tmp_path / "mappings")
    mappings.write(
        registrar_provider(role)
        + resource(
            "immuta_user_mapping",
            "alice",
            connection_id=connection_id,
            immuta_user="alice",
            postgres=Body(mode="none"),
        )
    )
    tables = ("connections", "crawled_databases", "data_objects", "schema_version", "user_mappings")
    grants = [f'GRANT USAGE ON SCHEMA "immuta" TO "{role}";'] + [
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "immuta"."{t}" TO "{role}";' for t in tables
    ]
    try:
        before = whole_store(immuta_db)
        mappings.apply_fails(
            "Missing PostgreSQL privileges to write the mapping of 'alice' on connection "
            "'Production'",
            f"User '{role}' on {immuta_db.host}:{immuta_db.port} does not own the state store "
            f"(schema immuta in database '{immuta_db.name}', owned by 'postgres') and lacks "
            "what writing it takes (USAGE on the schema; SELECT, INSERT, UPDATE, DELETE on its "
            "tables):",
            f"- schema {immuta_db.name}.immuta: USAGE",
            f"- table {immuta_db.name}.immuta.user_mappings: SELECT, INSERT, UPDATE, DELETE",
            f"Run these statements in database '{immuta_db.name}' as 'postgres' or a "
            "superuser, then apply again:",
            *grants,
        )
        assert whole_store(immuta_db) == before
        with immuta_db.connect() as conn:
            for statement in grants:
                conn.execute(statement)
        mappings.apply()
        mappings.plan_is_empty()
        mappings.destroyed()
        registration.destroyed()
    finally:
        with immuta_db.connect() as conn:
            conn.execute("DROP SCHEMA IF EXISTS immuta CASCADE")


# ------------------------------------------------------------------ refresh: what changed


def test_lost_grants_warn_on_refresh(
    terraform: Terraform, immuta_db: Database, plain_db: Database, role: str
) -> None:
    with plain_db.connect() as conn:
        conn.execute(
            "CREATE SCHEMA many; "
            + "".join(f"CREATE TABLE many.t{i:02d} (id int); " for i in range(12))
        )
    register_with_documented_privileges(terraform, immuta_db, plain_db, role)
    db, user = plain_db.name, role

    with step("a GRANT to someone else: no warning"):
        with plain_db.connect() as conn:
            conn.execute("GRANT SELECT ON public.orders TO PUBLIC")
        assert "lost privileges" not in terraform.plan_is_empty().text

    with step("lost grant options: a warning names them, the plan stays empty"):
        with plain_db.connect() as conn:
            conn.execute(
                sql.SQL(
                    "REVOKE GRANT OPTION FOR SELECT ON public.orders FROM {0}; "
                    "REVOKE GRANT OPTION FOR USAGE ON SCHEMA public FROM {0}"
                ).format(sql.Identifier(user))
            )
        result = terraform.plan_is_empty("lost grants warn; they plan nothing")
        for expected in (
            f"Warning: Connection 'Production': user '{user}' lost privileges on 2 governed "
            "schemas and objects",
            f"On {plain_db.host}:{plain_db.port}, user '{user}' no longer holds every privilege "
            "Immuta needs (WITH GRANT OPTION) on what this connection governs, so Immuta cannot "
            "enforce policies there:",
            f"- schema {db}.public: USAGE WITH GRANT OPTION",
            f"- table {db}.public.orders: SELECT WITH GRANT OPTION",
            "Restore them as a superuser or the objects' owners:",
            f'GRANT USAGE ON SCHEMA "public" TO "{user}" WITH GRANT OPTION;',
            f'GRANT SELECT ON TABLE "public"."orders" TO "{user}" WITH GRANT OPTION;',
        ):
            assert " ".join(expected.split()) in result.text, expected

    with step("many lost: a few named, the rest counted"):
        with plain_db.connect() as conn:
            conn.execute(
                sql.SQL(
                    "REVOKE GRANT OPTION FOR DELETE ON ALL TABLES IN SCHEMA many FROM {}"
                ).format(sql.Identifier(user))
            )
        result = terraform.plan_is_empty()
        assert f"user '{user}' lost privileges on 14 governed schemas and objects" in result.text
        assert f"- table {db}.many.t08: DELETE WITH GRANT OPTION ... and 4 more" in result.text

    with step("restored: no warning"):
        with plain_db.connect() as conn:
            conn.execute(
                sql.SQL(
                    "GRANT SELECT ON public.orders TO {0} WITH GRANT OPTION; "
                    "GRANT USAGE ON SCHEMA public TO {0} WITH GRANT OPTION; "
                    "GRANT DELETE ON ALL TABLES IN SCHEMA many TO {0} WITH GRANT OPTION"
                ).format(sql.Identifier(user))
            )
        assert "lost privileges" not in terraform.plan_is_empty().text


def test_changed_server_version_and_lost_connect_warn(
    terraform: Terraform,
    pg_server: PostgresServer,
    immuta_db: Database,
    plain_db: Database,
    role: str,
) -> None:
    """A version change is made by editing the recorded one (no server is upgraded here)."""
    register_with_documented_privileges(terraform, immuta_db, plain_db, role)
    with immuta_db.connect() as conn:
        conn.execute("UPDATE immuta.connections SET server_version = '16.0'")
    with pg_server.connect() as conn:
        conn.execute(
            sql.SQL("REVOKE GRANT OPTION FOR CONNECT ON DATABASE {} FROM {}").format(
                sql.Identifier(plain_db.name), sql.Identifier(role)
            )
        )
    result = terraform.plan_is_empty("changes since registration warn; they plan nothing")
    assert "Warning: Connection 'Production' changed since registration" in result.text
    assert (
        f"On {immuta_db.host}:{immuta_db.port}: the server version changed from 16.0 to "
        f"{server_version(immuta_db)}; CONNECT WITH GRANT OPTION is missing on {plain_db.name}. "
        "Apply again (or change on_missing_privileges) to re-verify the registration."
    ) in result.text
    assert "immuta_postgres_connection.main" in terraform.resources()


# ------------------------------------------------------------------ dropped outside Terraform


def test_immuta_database_dropped_outside_terraform(
    terraform: Terraform, pg_server: PostgresServer, immuta_db: Database
) -> None:
    """The registration and its mappings lived in the Immuta database: refresh removes them
    from state, the plan creates them again, and apply says the database must exist."""
    mappings = "".join(
        resource(
            "immuta_user_mapping",
            name,
            connection_id=Raw("immuta_postgres_connection.main.id"),
            immuta_user=f"{name}@example.com",
            postgres=Body(mode="none"),
        )
        for name in ("alice", "bob")
    )
    terraform.write(provider_block(pg_server) + connection_hcl(immuta_db) + mappings)
    terraform.apply()
    immuta_db.drop()

    with step("the plan shows the connection and its mappings to be created again"):
        plan = terraform.plan_changes(
            "immuta_postgres_connection.main will be created",
            "immuta_user_mapping.alice will be created",
            "immuta_user_mapping.bob will be created",
            "Plan: 3 to add, 0 to change, 0 to destroy.",
        )
        assert "Error" not in plan.text

    with step("apply fails clearly: the database does not exist"):
        result = terraform.apply_fails(
            f"Error: Cannot connect to PostgreSQL at {immuta_db.host}:{immuta_db.port}",
            f'FATAL: database "{immuta_db.name}" does not exist',
            f"The database '{immuta_db.name}' does not exist on {immuta_db.host}:"
            f"{immuta_db.port}. Create the Immuta database first (CREATE DATABASE), or fix "
            "`database`.",
            f'database = "{immuta_db.name}"',
        )
        assert result.text.count("Error:") == 1, "the mappings wait for their connection"
        assert not terraform.resources()

    with step("the database created again: apply converges"):
        pg_server.create_database(immuta_db.name)
        terraform.apply()
        terraform.plan_is_empty()
        assert len(terraform.resources()) == 3


# ------------------------------------------------------------------ partitions


def test_partitions_are_registered_as_tables_beside_their_parent(
    terraform: Terraform, pg_server: PostgresServer, immuta_db: Database
) -> None:
    data_db = pg_server.temp_database(prefix="events_")
    try:
        with data_db.connect() as conn:
            conn.execute(
                """
                CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);
                CREATE TABLE events_2024 PARTITION OF events
                    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
                CREATE TABLE events_2025 PARTITION OF events
                    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (id);
                CREATE TABLE events_2025_odd PARTITION OF events_2025 FOR VALUES IN (1, 3, 5);
                CREATE TABLE events_other PARTITION OF events DEFAULT;
                """
            )
        write_config(terraform, immuta_db, include=Body(databases=[data_db.name]))
        terraform.apply()
        rows = state_rows(
            immuta_db,
            "SELECT schema_name, object_name, object_type FROM immuta.data_objects ORDER BY 2",
        )
        assert rows == [
            ("public", "events", "partitioned_table"),
            ("public", "events_2024", "table"),
            ("public", "events_2025", "partitioned_table"),
            ("public", "events_2025_odd", "table"),
            ("public", "events_other", "table"),
        ]
        terraform.plan_is_empty()
        terraform.destroy()
    finally:
        data_db.drop()
