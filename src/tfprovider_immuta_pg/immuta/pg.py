"""PostgreSQL connections: lazy, pooled per (server, database, credentials), cancellable,
and retried within bounds when PostgreSQL says the failure is transient.

Every failure inside a pooled connection leaves as one of `errors`' classes (`connection`
is the one place psycopg's exceptions are translated). `run` gives a unit of work a
connection and, when the failure is retriable (see `errors`: serialization failure,
deadlock, lock timeout, the session ended by an administrator, no connection slot free, a
pooled connection found broken), runs the whole unit again on a fresh connection: at most
RETRY_ATTEMPTS attempts within RETRY_SECONDS, waiting FIRST_DELAY, then twice as long each
time (up to MAX_DELAY, with jitter), and never after Terraform asked the provider to stop.
A unit that writes does so in one transaction, so a retry repeats it whole, never half.
"""

from __future__ import annotations

import random
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..framework.diagnostics import ProviderError
from ..framework.provider import Cancelled, Context
from .errors import (
    CommitInDoubt,
    ConnectTimedOut,
    PostgresFailure,
    connect_error,
    connection_lost,
    postgres_error,
)

if TYPE_CHECKING:
    import psycopg

IDLE_CHECK_SECONDS = 2.0  # a pooled connection idle longer than this is pinged before reuse
MAX_IDLE_PER_TARGET = 32  # above terraform's default -parallelism (10): no reconnect churn
RETRY_ATTEMPTS = 6
RETRY_SECONDS = 30.0
FIRST_DELAY = 0.25
MAX_DELAY = 5.0
RETRY_LIMITS = f"at most {RETRY_ATTEMPTS} attempts within {RETRY_SECONDS:.0f} s"

T = TypeVar("T")


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

    def run(
        self,
        target: Target,
        creds: Credentials,
        ctx: Context,
        work: Callable[[psycopg.Connection], T],
        doing: str = "",
    ) -> T:
        """`work(connection)`, retried whole while its failure is retriable (module doc)."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.connection(target, creds, ctx, doing) as conn:
                    return work(conn)
            except PostgresFailure as exc:
                if not exc.retriable:
                    raise
                elapsed = time.monotonic() - started
                delay = retry_delay(attempt)
                if attempt >= RETRY_ATTEMPTS or elapsed + delay > RETRY_SECONDS:
                    raise exc.gave_up(attempt, elapsed, RETRY_LIMITS) from None
                ctx.log(
                    "debug",
                    "transient PostgreSQL failure, trying again",
                    sqlstate=exc.sqlstate or "",
                    attempt=attempt,
                    delay=round(delay, 3),
                )
                _pause(ctx, delay)

    @contextmanager
    def connection(
        self, target: Target, creds: Credentials, ctx: Context, doing: str = ""
    ) -> Iterator[psycopg.Connection]:
        """A healthy connection, returned to the pool afterwards unless it broke.

        A psycopg failure inside leaves as one of `errors`' classes; `doing` says what the
        provider was doing, for the diagnostic.
        """
        key = (target, creds.key)
        pooled = self._take(key)
        conn = pooled or self._open(key, target, creds, ctx)
        try:
            with ctx.stop.cancelling(conn.cancel_safe):
                yield conn
        except Exception as exc:
            broken = conn.broken
            _discard(conn)
            failure = _translate(exc, target, creds, ctx, doing, pooled is not None, broken)
            if failure is None:
                raise
            raise failure from None
        except BaseException:
            _discard(conn)
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


def _translate(
    exc: Exception,
    target: Target,
    creds: Credentials,
    ctx: Context,
    doing: str,
    pooled: bool,
    broken: bool,
) -> ProviderError | None:
    """The diagnostic for a failure inside a connection; None: not PostgreSQL's (a bug)."""
    import psycopg

    if isinstance(exc, CommitInDoubt):
        return connection_lost(target, creds, exc, retriable=False)
    if not isinstance(exc, psycopg.Error):
        return None
    if ctx.stop.is_set() and (broken or isinstance(exc, psycopg.errors.QueryCanceled)):
        return Cancelled()  # the provider's own cancel, on Terraform's StopProvider
    if exc.sqlstate is None:
        if not (broken or isinstance(exc, psycopg.OperationalError)):
            return None  # a client-side mistake: the provider's bug, not PostgreSQL's answer
        # The socket closed. On a connection that waited in the pool, nothing of this
        # unit of work was committed (a commit that broke is CommitInDoubt): try again.
        return connection_lost(target, creds, exc, retriable=pooled)
    return postgres_error(exc, target, creds.username, doing)


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): doubling, with jitter."""
    base: float = min(FIRST_DELAY * 2.0 ** (attempt - 1), MAX_DELAY)
    return base * random.uniform(0.5, 1.0)


def _pause(ctx: Context, seconds: float) -> None:
    """Sleep, waking to stop at once when Terraform asks the provider to stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ctx.check_stop()
        time.sleep(min(left, 0.05))
    ctx.check_stop()


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
