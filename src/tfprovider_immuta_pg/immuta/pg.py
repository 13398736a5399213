"""PostgreSQL connections: lazy, pooled per (server, database, credentials), cancellable."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..framework.diagnostics import ProviderError
from ..framework.provider import Context

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


class ConnectTimedOut(ProviderError):
    """No answer within connect_timeout."""


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
                raise lost_connection(target, creds, exc) from None
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
            since, error = self._timed_out.get(key, (None, None))
        ago = time.monotonic() - since if since is not None else None
        if error is not None and ago < creds.connect_timeout:
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


def _readable(conn: psycopg.Connection) -> bool:
    """An idle connection has nothing to read unless the server said goodbye (FATAL, EOF)."""
    try:
        return bool(select.select([conn.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _is_operational(exc: BaseException) -> bool:
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


def lost_connection(target: Target, creds: Credentials, exc: BaseException) -> ProviderError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ProviderError(
        f"Lost the connection to PostgreSQL at {target.hostname}:{target.port}",
        f"The connection to {target.where} as {creds.username!r} broke: {reason}\n\n"
        f"Check that the server at {target.hostname}:{target.port} is up and reachable, then "
        "apply again: a re-apply finds whatever the interrupted operation did commit and "
        "converges.",
    )


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
    params = {
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
        raise connection_error(target, creds, exc) from None


def connection_error(target: Target, creds: Credentials, exc: Exception) -> ProviderError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    text = str(exc).lower()
    refused = "password authentication failed" in text or "pam authentication failed" in text
    timed_out = "timeout" in text or "timed out" in text
    if refused and creds.iam_signer:
        hint = (
            f"RDS refused the IAM auth token for database user {creds.username!r} (signed for "
            f"{target.hostname}:{target.port}, {creds.iam_signer}). Check that the user exists "
            "and has GRANT rds_iam, that the AWS identity may rds-db:connect on "
            f"arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/{creds.username}, that "
            "aws.region is the server's region, and that hostname is the endpoint the token "
            "is for."
        )
    elif refused:
        hint = (
            f"PostgreSQL refused the credentials of user {creds.username!r}. Check the provider's "
            "username and password (or PGUSER/PGPASSWORD)."
        )
    elif "does not exist" in text and "database" in text:
        hint = (
            f"The database {target.database!r} does not exist on {target.hostname}:{target.port}. "
            "Create the Immuta database first (CREATE DATABASE), or fix `database`."
        )
    elif timed_out:
        hint = (
            f"No answer within connect_timeout = {creds.connect_timeout} s. Check that "
            f"{target.hostname}:{target.port} is reachable from here (network, firewall, "
            "security group)."
        )
    else:
        hint = (
            f"Check that PostgreSQL listens on {target.hostname}:{target.port}, that the network "
            "allows it, and the provider's sslmode and credentials."
        )
    return (ConnectTimedOut if timed_out else ProviderError)(
        f"Cannot connect to PostgreSQL at {target.hostname}:{target.port}",
        f"Connecting to {target.where} as {creds.username!r} failed: {reason}\n\n{hint}",
    )
