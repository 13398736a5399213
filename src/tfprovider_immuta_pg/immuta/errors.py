"""The failures the provider tells apart, one class each, and where PostgreSQL's map to them.

Code that decides what to do after a failure (a database dropped while it was crawled, a
registration whose Immuta database is gone, a failure worth another attempt) catches one of
these classes or reads `retriable`; no code reads a message's wording to decide. Every class
is a ProviderError, so whatever is not caught reaches the user as one diagnostic that names
the server, the database and what to do, never as "a bug in the provider".

PostgreSQL errors arrive as psycopg exceptions carrying a SQLSTATE: `postgres_error` is the
one place that turns them into these classes and their messages (`_STATEMENT_ERRORS`, by
SQLSTATE and then by SQLSTATE class). A failure to connect is the exception: libpq reports
it without a SQLSTATE (psycopg 3's `sqlstate` and `diag` are empty then), so `connect_error`
reads the server's FATAL message, the one place where text decides. It uses the SQLSTATE
whenever one is given, and otherwise matches only the server's primary message (the text
after "FATAL:"), never host names or the rest of libpq's text. A server that writes its
messages in another language (lc_messages) gets the generic "cannot connect" class, with
the server's own words in the detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..framework.diagnostics import Path, ProviderError

if TYPE_CHECKING:
    import psycopg

    from .pg import Credentials, Target


class PostgresFailure(ProviderError):
    """Any failure reaching or using PostgreSQL. `retriable`: another attempt may succeed
    (nothing was committed, and the cause is transient)."""

    retriable = False
    sqlstate: str | None = None

    def gave_up(self, attempts: int, seconds: float, limits: str) -> PostgresFailure:
        """This failure, once it persisted through `attempts` attempts: no longer retriable."""
        self.detail += (
            f"\n\nThe provider tried {attempts} times over {seconds:.1f} s ({limits}) and gave up."
        )
        self.retriable = False
        return self


class CannotConnect(PostgresFailure):
    """Connecting to PostgreSQL failed (unreachable, refused, or any other reason)."""


class ConnectTimedOut(CannotConnect):
    """No answer within connect_timeout."""


class CredentialsRefused(CannotConnect):
    """The server refused the password or the RDS IAM auth token (SQLSTATE 28P01)."""


class DatabaseMissing(CannotConnect):
    """The database to connect to does not exist (SQLSTATE 3D000)."""


class ConnectDenied(CannotConnect):
    """The user may not connect to that database (SQLSTATE 42501) or log in at all (28000)."""


class TooManyConnections(CannotConnect):
    """No connection slot left for the user, the database or the server (SQLSTATE 53300)."""

    retriable = True


class ServerNotReady(CannotConnect):
    """The server is starting up, shutting down or in recovery (SQLSTATE 57P03)."""

    retriable = True


class ConnectionLost(PostgresFailure):
    """An open connection broke during an operation (no SQLSTATE: the socket closed)."""

    def __init__(self, summary: str, detail: str, retriable: bool) -> None:
        super().__init__(summary, detail)
        self.retriable = retriable


class PostgresRefused(PostgresFailure):
    """A statement failed; `sqlstate` is PostgreSQL's code for why."""

    def __init__(
        self, summary: str, detail: str, sqlstate: str | None, path: Path | None = None
    ) -> None:
        super().__init__(summary, detail, path)
        self.sqlstate = sqlstate


class PermissionDenied(PostgresRefused):
    """The statement needs a privilege the provider's user lacks (SQLSTATE 42501)."""


class ObjectMissing(PostgresRefused):
    """A table, schema, database or other object was dropped (42P01, 42704, 3F000, 3D000)."""


class ReadOnly(PostgresRefused):
    """The transaction may not write: a standby, or default_transaction_read_only (25006)."""


class OutOfResources(PostgresRefused):
    """Disk full, out of memory, or another server limit (SQLSTATE class 53)."""


class StatementCancelled(PostgresRefused):
    """statement_timeout or an administrator cancelled the statement (SQLSTATE 57014)."""


class TransientRefusal(PostgresRefused):
    """Rolled back for a transient reason: another attempt may succeed (40001, 40P01,
    55P03, 57P01, 57P02, 57P05)."""

    retriable = True


class CommitInDoubt(Exception):
    """The connection broke while COMMIT was under way: nobody can tell whether it committed.

    Raised by the state store around a commit (its cause is psycopg's error); never retried,
    since a retry could write twice.
    """


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ------------------------------------------------------------------ connecting


@dataclass(frozen=True)
class _ConnectAnswer:
    kind: type[CannotConnect]
    sqlstate: str
    pattern: re.Pattern[str]  # on the server's primary message (after "FATAL:")


def _answer(kind: type[CannotConnect], sqlstate: str, pattern: str) -> _ConnectAnswer:
    return _ConnectAnswer(kind, sqlstate, re.compile(pattern))


# The server's FATAL answers to a connection attempt, as PostgreSQL 16/17 word them.
_CONNECT_ANSWERS = (
    _answer(CredentialsRefused, "28P01", r'^password authentication failed for user "'),
    _answer(CredentialsRefused, "28000", r'^\w+ authentication failed for user "'),
    _answer(CredentialsRefused, "28000", r'^role ".*" does not exist$'),
    _answer(DatabaseMissing, "3D000", r'^database ".*" does not exist$'),
    _answer(ConnectDenied, "42501", r'^permission denied for database "'),
    _answer(ConnectDenied, "28000", r'^role ".*" is not permitted to log in$'),
    _answer(ConnectDenied, "28000", r"^no pg_hba\.conf entry for "),
    _answer(ConnectDenied, "55000", r'^database ".*" is not currently accepting connections$'),
    _answer(TooManyConnections, "53300", r"^sorry, too many clients already"),
    _answer(TooManyConnections, "53300", r"^too many connections for (role|database) "),
    _answer(TooManyConnections, "53300", r"^remaining connection slots are reserved "),
    _answer(ServerNotReady, "57P03", r"^the database system is (starting|shutting|in |not )"),
    _answer(ServerNotReady, "57P01", r"^terminating connection due to administrator command"),
)
_FATAL = re.compile(r"(?:^|\s)FATAL:\s+(.*)")
_CONNECT_KINDS: dict[str, type[CannotConnect]] = {
    "28P01": CredentialsRefused,
    "3D000": DatabaseMissing,
    "42501": ConnectDenied,
    "53300": TooManyConnections,
    "57P03": ServerNotReady,
    "57P01": ServerNotReady,
}


def _connect_kind(exc: Exception) -> tuple[type[CannotConnect], str | None]:
    """The class of a failed connection attempt, and its SQLSTATE when known."""
    import psycopg.errors

    sqlstate = getattr(exc, "sqlstate", None)
    primary = next((m.group(1).strip() for m in _FATAL.finditer(str(exc))), None)
    if sqlstate in _CONNECT_KINDS:
        return _CONNECT_KINDS[sqlstate], sqlstate
    if primary is not None:
        for answer in _CONNECT_ANSWERS:
            if answer.pattern.search(primary):
                return answer.kind, answer.sqlstate
        return CannotConnect, sqlstate
    if isinstance(exc, psycopg.errors.ConnectionTimeout) or "timeout expired" in str(exc):
        return ConnectTimedOut, None
    return CannotConnect, sqlstate


def connect_error(target: Target, creds: Credentials, exc: Exception) -> CannotConnect:
    """What a failed `psycopg.connect` means, with what to check."""
    kind, sqlstate = _connect_kind(exc)
    error = kind(
        f"Cannot connect to PostgreSQL at {target.hostname}:{target.port}",
        f"Connecting to {target.where} as {creds.username!r} failed: {_one_line(exc)}\n\n"
        + _connect_hint(kind, target, creds),
    )
    error.sqlstate = sqlstate
    return error


def _connect_hint(kind: type[CannotConnect], target: Target, creds: Credentials) -> str:
    server = f"{target.hostname}:{target.port}"
    if kind is CredentialsRefused and creds.iam_signer:
        return (
            f"RDS refused the IAM auth token for database user {creds.username!r} (signed for "
            f"{server}, {creds.iam_signer}). Check that the user exists "
            "and has GRANT rds_iam, that the AWS identity may rds-db:connect on "
            f"arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/{creds.username}, that "
            "aws.region is the server's region, and that hostname is the endpoint the token "
            "is for."
        )
    if kind is CredentialsRefused:
        return (
            f"PostgreSQL refused the credentials of user {creds.username!r}. Check the provider's "
            "username and password (or PGUSER/PGPASSWORD)."
        )
    if kind is DatabaseMissing:
        return (
            f"The database {target.database!r} does not exist on {server}. "
            "Create the Immuta database first (CREATE DATABASE), or fix `database`."
        )
    if kind is ConnectTimedOut:
        return (
            f"No answer within connect_timeout = {creds.connect_timeout} s. Check that "
            f"{server} is reachable from here (network, firewall, "
            "security group)."
        )
    if kind is ConnectDenied:
        return (
            f"User {creds.username!r} may not connect to {target.database!r}: it needs LOGIN, "
            f'CONNECT on the database (GRANT CONNECT ON DATABASE "{target.database}" TO '
            f'"{creds.username}"; as its owner or a superuser), a pg_hba.conf entry that '
            "admits it from here, and a database that allows connections."
        )
    if kind is TooManyConnections:
        return (
            f"Every connection slot for user {creds.username!r} or for the server is taken "
            "(max_connections, or a CONNECTION LIMIT on the role or the database). Close idle "
            "sessions, raise the limit, or lower terraform's -parallelism."
        )
    if kind is ServerNotReady:
        return (
            f"The server at {server} is starting up, shutting down or recovering. Wait until "
            "it accepts connections, then apply again."
        )
    return (
        f"Check that PostgreSQL listens on {server}, that the network "
        "allows it, and the provider's sslmode and credentials."
    )


# ------------------------------------------------------------------ statements


@dataclass(frozen=True)
class _Refusal:
    kind: type[PostgresRefused]
    summary: str  # {server}: host:port
    fix: str  # {server}, {database}, {user}: quoted as PostgreSQL needs where in SQL


_PERMISSION = _Refusal(
    PermissionDenied,
    "Permission denied on PostgreSQL at {server}",
    "User {user} lacks a privilege this needs. Grant it as the object's owner or a superuser, "
    "or use credentials that hold it. The state store (schema immuta in the Immuta database) "
    "needs USAGE on the schema and SELECT, INSERT, UPDATE, DELETE on its tables, or its "
    "ownership.",
)
_MISSING = _Refusal(
    ObjectMissing,
    "Object missing on PostgreSQL at {server}",
    "It was dropped outside Terraform (or while the provider was working). If it is a "
    "database or one of its objects that was registered, apply again: the crawl finds what "
    "is there now. If it belongs to the state store (schema immuta in {database}), restore it "
    "from a backup; if no other registration lives there, DROP SCHEMA immuta CASCADE and "
    "apply again to register from scratch.",
)
_TRANSIENT_FIX = (
    "The transaction was rolled back and nothing of it was written; the provider retries "
    "such failures on its own. Apply again."
)
_SHUTDOWN = _Refusal(
    TransientRefusal,
    "PostgreSQL at {server} ended the connection",
    "An administrator (pg_terminate_backend), a server shutdown or restart, or "
    "idle_session_timeout ended the session. Check that the server at {server} is up. "
    + _TRANSIENT_FIX,
)
_RESOURCES = _Refusal(
    OutOfResources,
    "PostgreSQL at {server} is out of resources",
    "The server ran out of memory, shared memory or another configured limit. Check the "
    "server's log and settings (max_locks_per_transaction, work_mem, memory), then apply "
    "again. The transaction was rolled back.",
)
_STATEMENT_ERRORS: dict[str, _Refusal] = {
    "42501": _PERMISSION,
    "42P01": _MISSING,
    "42704": _MISSING,
    "42883": _MISSING,
    "3F000": _MISSING,
    "3D000": _MISSING,
    "25006": _Refusal(
        ReadOnly,
        "PostgreSQL at {server} is read-only",
        "The transaction may not write: either hostname points at a standby (read replica), "
        "or default_transaction_read_only is on for database {database} or user {user}. "
        "Point hostname at the primary (writer) endpoint, or as a superuser run ALTER "
        "DATABASE {database} SET default_transaction_read_only = off (or ALTER ROLE {user} "
        "...). Nothing was written.",
    ),
    "53100": _Refusal(
        OutOfResources,
        "PostgreSQL at {server} is out of disk space",
        "The volume (or tablespace) holding the state store's tables in {database} is full. "
        "Free space on it, then apply again. The transaction was rolled back: nothing of it "
        "was written.",
    ),
    "57014": _Refusal(
        StatementCancelled,
        "PostgreSQL at {server} cancelled a statement",
        "The statement ran longer than statement_timeout (set for database {database} or user "
        "{user}), or an administrator cancelled it (pg_cancel_backend). The provider may wait "
        "for the state store's lock while another apply writes: find what blocks it in "
        "pg_stat_activity, or raise the limit (ALTER ROLE {user} SET statement_timeout = "
        "'5min'), then apply again. The transaction was rolled back.",
    ),
    "55P03": _Refusal(
        TransientRefusal,
        "Lock not available on PostgreSQL at {server}",
        "Another session held a lock the provider needs (another apply, or a long "
        "transaction on the state store's tables) for longer than lock_timeout. Find it in "
        "pg_locks and pg_stat_activity, or raise lock_timeout for user {user}. " + _TRANSIENT_FIX,
    ),
    "40001": _Refusal(
        TransientRefusal,
        "Serialization failure on PostgreSQL at {server}",
        "A concurrent transaction changed the same rows under SERIALIZABLE or REPEATABLE READ "
        "isolation (default_transaction_isolation). " + _TRANSIENT_FIX,
    ),
    "40P01": _Refusal(
        TransientRefusal,
        "Deadlock detected by PostgreSQL at {server}",
        "The provider's transaction and another session waited for each other's locks; "
        "PostgreSQL cancelled the provider's. " + _TRANSIENT_FIX,
    ),
    "57P01": _SHUTDOWN,
    "57P02": _SHUTDOWN,
    "57P05": _SHUTDOWN,
}
_STATEMENT_ERROR_CLASSES: dict[str, _Refusal] = {"53": _RESOURCES, "57": _SHUTDOWN}
_OTHER = _Refusal(
    PostgresRefused,
    "PostgreSQL error on {server}",
    "Check the server's log around this time for its cause, fix it, then apply again. The "
    "transaction was rolled back.",
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def postgres_error(
    exc: psycopg.Error, target: Target, user: str, doing: str = "", hint: str = ""
) -> PostgresRefused:
    """A failed statement as a diagnostic: what failed, where, and what to do.

    `doing` says what the provider was doing ("running GRANT rds_iam TO svc"); `hint` adds
    advice of the caller's own.
    """
    sqlstate = exc.sqlstate
    refusal = _STATEMENT_ERRORS.get(sqlstate or "") or _STATEMENT_ERROR_CLASSES.get(
        (sqlstate or "")[:2], _OTHER
    )
    server = f"{target.hostname}:{target.port}"
    diag = exc.diag
    text = str(exc).strip()
    lines = [
        f"On {target.where}, user {user!r}"
        + (f", {doing}" if doing else "")
        + f": {text.splitlines()[0] if text else type(exc).__name__}"
        + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
    ]
    if diag.schema_name and diag.table_name:
        lines.append(f"Object: {diag.schema_name}.{diag.table_name}")
    if diag.message_detail:
        lines.append(f"Server detail: {diag.message_detail}")
    if diag.message_hint:
        lines.append(f"Server hint: {diag.message_hint}")
    fix = refusal.fix.format(server=server, database=_quoted(target.database), user=_quoted(user))
    return refusal.kind(
        refusal.summary.format(server=server),
        "\n".join(lines) + f"\n\n{fix}" + (f"\n\n{hint}" if hint else ""),
        sqlstate,
    )


def connection_lost(
    target: Target, creds: Credentials, exc: BaseException, retriable: bool
) -> ConnectionLost:
    committing = isinstance(exc, CommitInDoubt)
    cause = exc.__cause__ if committing and exc.__cause__ else exc
    return ConnectionLost(
        f"Lost the connection to PostgreSQL at {target.hostname}:{target.port}",
        f"The connection to {target.where} as {creds.username!r} broke"
        + (" while committing" if committing else "")
        + f": {_one_line(cause)}\n\n"
        + ("Whether the transaction was committed cannot be known. " if committing else "")
        + f"Check that the server at {target.hostname}:{target.port} is up and reachable, "
        "then apply again: a re-apply finds whatever the interrupted operation did commit "
        "and converges.",
        retriable,
    )
