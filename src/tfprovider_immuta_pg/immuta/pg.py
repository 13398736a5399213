"""PostgreSQL connections: lazy, pooled per (server, database, credentials), cancellable."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..framework.provider import Context
from .errors import ConnectTimedOut, connect_error, connection_lost

if TYPE_CHECKING:
    import psycopg

IDLE_CHECK_SECONDS = 2.0  # a pooled connection idle longer than this is pinged before reuse
MAX_IDLE_PER_TARGET = 32  # above terraform's default -parallelism (10): no reconnect churn


@dataclass(frozen=True)
class Target:
    """Where to connect: one database on one server."""

    hostname: str
    port: int
    database: str

    @property
    def where(self) -> str:
        return f"database {self.database!r} on {self.hostname}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    """Who connects. `password` is called for every new connection (RDS tokens expire)."""

    username: str
    password: Callable[[Target], str | None]
    sslmode: str
    sslrootcert: str | None
    connect_timeout: int
    key: str  # distinguishes credential sets in the pool without holding secrets twice
    # For RDS IAM authentication: what signed the token ("region R, role ARN" ...), for errors.
    iam_signer: str | None = None


class ConnectionPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Target, str], list[tuple[psycopg.Connection, float]]] = {}
        # The last connect to a target that got no answer, for connect_timeout seconds: the
        # reads of 1000 mappings on an unreachable server then fail at once, instead of each
        # waiting connect_timeout in turn.
        self._timed_out: dict[tuple[Target, str], tuple[float, ConnectTimedOut]] = {}

    @contextmanager
    def connection(
        self, target: Target, creds: Credentials, ctx: Context
    ) -> Iterator[psycopg.Connection]:
        """A healthy connection, returned to the pool afterwards unless it broke."""
        key = (target, creds.key)
        conn = self._take(key) or self._open(key, target, creds, ctx)
        try:
            with ctx.stop.cancelling(conn.cancel_safe):
                yield conn
        except BaseException as exc:
            lost = conn.broken and _is_operational(exc)
            _discard(conn)
            if lost:
                raise connection_lost(target, creds, exc) from None
            raise
        if conn.broken or conn.closed or conn.info.transaction_status != 0:
            _discard(conn)
            return
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_PER_TARGET:
                idle.append((conn, time.monotonic()))
                return
        _discard(conn)

    def _take(self, key: tuple[Target, str]) -> psycopg.Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn, since = idle.pop()
            if conn.closed or conn.broken:
                continue
            stale = time.monotonic() - since > IDLE_CHECK_SECONDS or _readable(conn)
            if stale and not _alive(conn):
                _discard(conn)
                continue  # dropped by the server meanwhile: replace it transparently
            return conn

    def _open(
        self, key: tuple[Target, str], target: Target, creds: Credentials, ctx: Context
    ) -> psycopg.Connection:
        with self._lock:
            last = self._timed_out.get(key)
        if last is not None and time.monotonic() - last[0] < creds.connect_timeout:
            since, error = last
            ago = time.monotonic() - since
            raise ConnectTimedOut(
                error.summary,
                f"{error.detail}\n\nNot retried: an attempt {ago:.1f} s ago got no answer "
                f"either, and the provider waits connect_timeout ({creds.connect_timeout} s) "
                "before trying this server again.",
            )
        try:
            conn = _connect(target, creds, ctx)
        except ConnectTimedOut as exc:
            with self._lock:
                self._timed_out[key] = (time.monotonic(), exc)
            raise
        with self._lock:
            self._timed_out.pop(key, None)
        return conn

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                _discard(conn)


def one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, a lookup of self)."""
    row: tuple[Any, ...] | None = cursor.fetchone()
    if row is None:
        raise RuntimeError("a query expected to return one row returned none")
    return row


def _readable(conn: psycopg.Connection) -> bool:
    """An idle connection has nothing to read unless the server said goodbye (FATAL, EOF)."""
    try:
        return bool(select.select([conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _is_operational(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def _alive(conn: psycopg.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _discard(conn: psycopg.Connection) -> None:
    with suppress(Exception):
        conn.close()


def _connect(target: Target, creds: Credentials, ctx: Context) -> psycopg.Connection:
    import psycopg

    ctx.check_stop()
    params: dict[str, Any] = {
        "host": target.hostname,
        "port": target.port,
        "dbname": target.database,
        "user": creds.username,
        "sslmode": creds.sslmode,
        "connect_timeout": creds.connect_timeout,
        "application_name": "terraform-provider-immuta",
        "keepalives": 1,
        "keepalives_idle": max(creds.connect_timeout, 5),
        "keepalives_interval": max(creds.connect_timeout // 3, 1),
        "keepalives_count": 3,
        "tcp_user_timeout": creds.connect_timeout * 1000,
    }
    password = creds.password(target)
    if password:
        params["password"] = password
    if creds.sslrootcert:
        params["sslrootcert"] = creds.sslrootcert
    try:
        return psycopg.connect(autocommit=True, **params)
    except psycopg.OperationalError as exc:
        raise connect_error(target, creds, exc) from None
