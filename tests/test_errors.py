"""Each failure the provider branches on has its class, found from a real PostgreSQL 17.

Delete and refresh tolerate `DatabaseMissing` (the Immuta database is gone, and the
registration with it), the crawl skips `ConnectDenied` databases, the pool retries what is
`retriable`: these tests pin which server answer becomes which class, so rewording a hint
cannot change what they do. Connections lost at chosen moments go through a relay (a real
socket in front of the real server) that closes them without a word.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from harness import PostgresServer
from psycopg import sql

from tfprovider_immuta_pg.framework.provider import Cancelled, Context
from tfprovider_immuta_pg.immuta import errors, store
from tfprovider_immuta_pg.immuta.pg import (
    FIRST_DELAY,
    MAX_DELAY,
    RETRY_ATTEMPTS,
    RETRY_SECONDS,
    ConnectionPool,
    Credentials,
    Target,
    retry_delay,
)


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


# ------------------------------------------------------------------ connect-time classes


def test_no_connection_slot_left(pg17: PostgresServer, login: str) -> None:
    with pg17.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(sql.Identifier(login)))
    error = connect_failure(
        Target(pg17.host, pg17.port, "postgres"), credentials(login, "plain-pw")
    )
    assert type(error) is errors.TooManyConnections and error.retriable
    assert error.sqlstate == "53300"
    assert error.detail.endswith(
        f"Every connection slot for user {login!r} or for the server is taken "
        "(max_connections, or a CONNECTION LIMIT on the role or the database). Close idle "
        "sessions, raise the limit, or lower terraform's -parallelism."
    )


def test_text_decides_only_on_the_servers_fatal_message(pg17: PostgresServer) -> None:
    """A host name that reads like a reason does not change the class."""
    target = Target("database-does-not-exist.invalid", 5432, "postgres")
    error = connect_failure(target, credentials("u", "p"))
    assert type(error) is errors.CannotConnect


# ------------------------------------------------------------------ retries


class Proxy:
    """A TCP relay to a real server that closes a client's connection, without a word,
    when `drop(data)` says so of what the client sends next."""

    def __init__(self, server: PostgresServer) -> None:
        self.upstream = (server.host, server.port)
        self.listener = socket.create_server((server.host, 0))
        self.port = self.listener.getsockname()[1]
        self.drop: Callable[[bytes], bool] = lambda data: False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if from_client and self.drop(data):
                    break
                sink.sendall(data)
        for side in (source, sink):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy(pg17: PostgresServer) -> Iterator[Proxy]:
    relay = Proxy(pg17)
    yield relay
    relay.close()


def test_a_pooled_connection_lost_before_writing_is_replaced(
    pg17: PostgresServer, proxy: Proxy
) -> None:
    pool = ConnectionPool()
    target = Target(pg17.host, proxy.port, "postgres")
    creds = credentials(pg17.user, pg17.password)
    runs: list[int] = []

    def work(conn: psycopg.Connection) -> int:
        runs.append(conn.info.backend_pid)
        return conn.execute("SELECT 1").fetchone()[0]

    assert pool.run(target, creds, Context(), work) == 1
    armed = [True]

    def once(data: bytes) -> bool:  # the next thing the pooled connection sends is lost
        return bool(armed and armed.pop())

    proxy.drop = once
    assert pool.run(target, creds, Context(), work) == 1
    assert len(runs) == 3 and runs[1] == runs[0] != runs[2], "the pooled one, then a new one"
    pool.close()


def test_a_fresh_connection_lost_is_not_tried_again(pg17: PostgresServer, proxy: Proxy) -> None:
    pool = ConnectionPool()
    target = Target(pg17.host, proxy.port, "postgres")
    runs: list[int] = []

    def work(conn: psycopg.Connection) -> None:
        runs.append(1)
        proxy.drop = lambda data: True
        conn.execute("SELECT 1")

    with pytest.raises(errors.ConnectionLost) as caught:
        pool.run(target, credentials(pg17.user, pg17.password), Context(), work)
    assert runs == [1] and not caught.value.retriable
    assert caught.value.summary == f"Lost the connection to PostgreSQL at {pg17.host}:{proxy.port}"
    assert caught.value.detail.startswith(
        f"The connection to database 'postgres' on {pg17.host}:{proxy.port} as 'postgres' broke: "
    )


def test_a_commit_that_broke_is_in_doubt_and_not_tried_again(
    pg17: PostgresServer, proxy: Proxy
) -> None:
    db = pg17.temp_database()
    pool = ConnectionPool()
    target = Target(pg17.host, proxy.port, db.name)
    runs: list[int] = []

    def work(conn: psycopg.Connection) -> None:
        runs.append(1)
        with store.write_transaction(conn):
            proxy.drop = lambda data: b"COMMIT" in data

    try:
        with pytest.raises(errors.ConnectionLost) as caught:
            pool.run(target, credentials(pg17.user, pg17.password), Context(), work)
        assert runs == [1] and not caught.value.retriable
        assert " broke while committing: " in caught.value.detail
        assert "Whether the transaction was committed cannot be known." in caught.value.detail
    finally:
        pool.close()
        db.drop()


def test_a_stop_ends_the_retries_at_once(pg17: PostgresServer, login: str) -> None:
    with pg17.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 0").format(sql.Identifier(login)))
    ctx = Context()
    threading.Timer(0.3, ctx.stop.stop).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        ConnectionPool().run(
            Target(pg17.host, pg17.port, "postgres"),
            credentials(login, "plain-pw"),
            ctx,
            lambda conn: None,
        )
    assert time.monotonic() - started < 1.5


def test_retry_delays_double_within_the_bound() -> None:
    for attempt in range(1, RETRY_ATTEMPTS):
        base = min(FIRST_DELAY * 2 ** (attempt - 1), MAX_DELAY)
        assert all(base / 2 <= retry_delay(attempt) <= base for _ in range(50))
    longest = sum(min(FIRST_DELAY * 2**n, MAX_DELAY) for n in range(RETRY_ATTEMPTS - 1))
    assert longest < RETRY_SECONDS
