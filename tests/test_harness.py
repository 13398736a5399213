"""Checks that the test harness provides what it promises."""

from __future__ import annotations

import os
import pwd

import psycopg
import pytest


@pytest.mark.parametrize("version", [15, 16, 17])
def test_server_major_version(request: pytest.FixtureRequest, version: int) -> None:
    server = request.getfixturevalue(f"pg{version}")
    assert server.version == version
    with server.connect() as conn:
        num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    assert num // 10000 == version


def test_pg_server_is_a_supported_version(pg_server) -> None:
    with pg_server.connect() as conn:
        num = int(conn.execute("SHOW server_version_num").fetchone()[0])
    assert num // 10000 == pg_server.version
    assert pg_server.version in (16, 17)


def test_password_auth_on_tcp(pg_server) -> None:
    with pg_server.connect() as conn:
        row = conn.execute(
            "SELECT inet_server_addr()::text, current_user,"
            " (SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres')"
        ).fetchone()
    assert row == ("127.0.0.1/32", "postgres", True)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=pg_server.host, port=pg_server.port, user="postgres",
            password="wrong", dbname="postgres", connect_timeout=5,
        )  # fmt: skip


def test_immuta_db_is_fresh_and_exists(immuta_db, pg_server) -> None:
    assert immuta_db.name.startswith("immuta_")
    with pg_server.connect() as conn:
        exists = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (immuta_db.name,)
        ).fetchone()[0]
    assert exists == 1
    with immuta_db.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == immuta_db.name
        user_tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        ).fetchone()[0]
        assert user_tables == 0
        conn.execute("CREATE TABLE t (id int)")  # dirty it; the next test must not see it


def test_immuta_db_is_dropped_afterwards(pg_server) -> None:
    db = pg_server.temp_database()
    db.drop()
    with pg_server.connect() as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (db.name,)
        ).fetchone()[0]
    assert left == 0


@pytest.mark.parametrize("version", [15, 16, 17])
def test_postgres_runs_as_nobody(request: pytest.FixtureRequest, version: int) -> None:
    server = request.getfixturevalue(f"pg{version}")
    with server.connect() as conn:
        data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
        backend_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        expected = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        assert pwd.getpwuid(os.stat(data_dir).st_uid).pw_name == expected
        assert oct(os.stat(data_dir).st_mode & 0o777) == oct(0o700)
        # Both the postmaster and this connection's backend run as that user.
        for pid in (server.proc.pid, backend_pid):
            assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == expected
    assert len(str(server.socket_dir / f".s.PGSQL.{server.port}")) < 100
    assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()


def test_moto_answers_sts_get_caller_identity(moto_server) -> None:
    sts = moto_server.client("sts")
    ident = sts.get_caller_identity()
    assert ident["Account"].isdigit() and len(ident["Account"]) == 12
    assert ident["Arn"].startswith("arn:aws:")
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")
