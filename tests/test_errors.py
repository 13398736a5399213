"""Each failure the provider branches on has its class, found from a real PostgreSQL 17.

Delete and refresh tolerate `DatabaseMissing` (the Immuta database is gone, and the
registration with it), the crawl skips `ConnectDenied` databases: these tests pin which
server answer becomes which class, so rewording a hint cannot change what they do.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from harness import PostgresServer
from psycopg import sql

from tfprovider_immuta_pg.framework.provider import Context
from tfprovider_immuta_pg.immuta import errors
from tfprovider_immuta_pg.immuta.pg import ConnectionPool, Credentials, Target


def credentials(user: str, password: str) -> Credentials:
    return Credentials(
        username=user,
        password=lambda target: password,
        sslmode="disable",
        sslrootcert=None,
        connect_timeout=5,
        key=f"test:{user}",
    )


def connect_failure(target: Target, creds: Credentials) -> errors.CannotConnect:
    with (
        pytest.raises(errors.CannotConnect) as caught,
        ConnectionPool().connection(target, creds, Context()),
    ):
        pass
    return caught.value


@pytest.fixture
def login(pg17: PostgresServer) -> Iterator[str]:
    """A login role with a password and no other privilege."""
    role = f"plain_{uuid.uuid4().hex[:8]}"
    with pg17.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'plain-pw'").format(sql.Identifier(role))
        )
    yield role
    pg17.drop_role(role)


def test_a_missing_database(pg17: PostgresServer) -> None:
    target = Target(pg17.host, pg17.port, "no_such_db")
    error = connect_failure(target, credentials(pg17.user, pg17.password))
    assert type(error) is errors.DatabaseMissing
    assert error.detail.endswith(
        f"The database 'no_such_db' does not exist on {pg17.host}:{pg17.port}. Create the "
        "Immuta database first (CREATE DATABASE), or fix `database`."
    )


def test_refused_credentials(pg17: PostgresServer) -> None:
    target = Target(pg17.host, pg17.port, "postgres")
    error = connect_failure(target, credentials(pg17.user, "wrong-password"))
    assert type(error) is errors.CredentialsRefused
    assert f"PostgreSQL refused the credentials of user {pg17.user!r}" in error.detail


def test_no_connect_privilege(pg17: PostgresServer, login: str) -> None:
    db = pg17.temp_database(prefix="closed_")
    try:
        with pg17.connect() as conn:
            conn.execute(
                sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db.name))
            )
        error = connect_failure(
            Target(pg17.host, pg17.port, db.name), credentials(login, "plain-pw")
        )
        assert type(error) is errors.ConnectDenied
        assert "permission denied for database" in error.detail
    finally:
        db.drop()


def test_a_role_that_may_not_log_in(pg17: PostgresServer, login: str) -> None:
    with pg17.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(login)))
    error = connect_failure(
        Target(pg17.host, pg17.port, "postgres"), credentials(login, "plain-pw")
    )
    assert type(error) is errors.ConnectDenied


def test_nothing_listening(pg17: PostgresServer) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind((pg17.host, 0))
        port = probe.getsockname()[1]
    error = connect_failure(Target(pg17.host, port, "postgres"), credentials("u", "p"))
    assert type(error) is errors.CannotConnect
    assert f"Check that PostgreSQL listens on {pg17.host}:{port}" in error.detail


def test_a_refused_statement_keeps_its_sqlstate(pg17: PostgresServer, login: str) -> None:
    target = Target(pg17.host, pg17.port, "postgres")
    conninfo = psycopg.conninfo.make_conninfo(
        host=pg17.host, port=pg17.port, user=login, password="plain-pw", dbname="postgres"
    )
    with psycopg.connect(conninfo, autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute("CREATE ROLE not_allowed_here")
    error = errors.postgres_error(
        caught.value, target, login, "running CREATE ROLE not_allowed_here", "Hint."
    )
    assert type(error) is errors.PermissionDenied
    assert error.sqlstate == "42501"
    assert error.summary == f"Permission denied on PostgreSQL at {pg17.host}:{pg17.port}"
    assert error.detail.startswith(
        f"On database 'postgres' on {pg17.host}:{pg17.port}, user {login!r}, running CREATE "
        "ROLE not_allowed_here: permission denied to create role (SQLSTATE 42501)\n"
        "Server detail: Only roles with the CREATEROLE attribute may create roles.\n\n"
        f'User "{login}" lacks a privilege this needs.'
    )
    assert error.detail.endswith("\n\nHint.")
