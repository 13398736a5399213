"""The failures the provider tells apart, one class each, and where PostgreSQL's map to them.

Code that decides what to do after a failure (a database dropped while it was crawled, a
registration whose Immuta database is gone) catches one of these classes; no code reads a
message's wording to decide. Every class is a ProviderError, so whatever is not caught
reaches the user as one diagnostic with the same summary and detail.

PostgreSQL errors arrive as psycopg's SQLSTATE classes (`psycopg.errors.*`):
`postgres_error` is the one place that turns them into these classes and their messages.
A failure to connect is the exception: libpq reports it without a SQLSTATE, so
`connect_error` reads the server's FATAL message (the only place where text decides).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..framework.diagnostics import ProviderError

if TYPE_CHECKING:
    import psycopg

    from .pg import Credentials, Target


class CannotConnect(ProviderError):
    """Connecting to PostgreSQL failed (unreachable, refused, or any other reason)."""


class ConnectTimedOut(CannotConnect):
    """No answer within connect_timeout."""


class CredentialsRefused(CannotConnect):
    """The server refused the password or the RDS IAM auth token (SQLSTATE 28P01)."""


class DatabaseMissing(CannotConnect):
    """The database to connect to does not exist (SQLSTATE 3D000)."""


class ConnectDenied(CannotConnect):
    """The user may not connect to that database (SQLSTATE 42501) or log in at all (28000)."""


class ConnectionLost(ProviderError):
    """An open connection broke during an operation."""


class PostgresRefused(ProviderError):
    """A statement failed; `sqlstate` is PostgreSQL's code for why."""

    def __init__(self, summary: str, detail: str, sqlstate: str | None) -> None:
        super().__init__(summary, detail)
        self.sqlstate = sqlstate


class PermissionDenied(PostgresRefused):
    """The statement needs a privilege the provider's user lacks (SQLSTATE 42501)."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def connect_error(target: Target, creds: Credentials, exc: Exception) -> CannotConnect:
    """What a failed `psycopg.connect` means, with what to check."""
    reason = _one_line(exc)
    text = str(exc).lower()
    kind: type[CannotConnect] = CannotConnect
    if "password authentication failed" in text or "pam authentication failed" in text:
        kind = CredentialsRefused
    elif "does not exist" in text and "database" in text:
        kind = DatabaseMissing
    elif "timeout" in text or "timed out" in text:
        kind = ConnectTimedOut
    elif "permission denied" in text or "not permitted" in text:
        kind = ConnectDenied
    return kind(
        f"Cannot connect to PostgreSQL at {target.hostname}:{target.port}",
        f"Connecting to {target.where} as {creds.username!r} failed: {reason}\n\n"
        + _connect_hint(kind, target, creds),
    )


def _connect_hint(kind: type[CannotConnect], target: Target, creds: Credentials) -> str:
    if kind is CredentialsRefused and creds.iam_signer:
        return (
            f"RDS refused the IAM auth token for database user {creds.username!r} (signed for "
            f"{target.hostname}:{target.port}, {creds.iam_signer}). Check that the user exists "
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
            f"The database {target.database!r} does not exist on {target.hostname}:{target.port}. "
            "Create the Immuta database first (CREATE DATABASE), or fix `database`."
        )
    if kind is ConnectTimedOut:
        return (
            f"No answer within connect_timeout = {creds.connect_timeout} s. Check that "
            f"{target.hostname}:{target.port} is reachable from here (network, firewall, "
            "security group)."
        )
    return (
        f"Check that PostgreSQL listens on {target.hostname}:{target.port}, that the network "
        "allows it, and the provider's sslmode and credentials."
    )


def connection_lost(target: Target, creds: Credentials, exc: BaseException) -> ConnectionLost:
    return ConnectionLost(
        f"Lost the connection to PostgreSQL at {target.hostname}:{target.port}",
        f"The connection to {target.where} as {creds.username!r} broke: {_one_line(exc)}\n\n"
        f"Check that the server at {target.hostname}:{target.port} is up and reachable, then "
        "apply again: a re-apply finds whatever the interrupted operation did commit and "
        "converges.",
    )


def postgres_error(
    exc: psycopg.Error, target: Target, statement: str, hint: str
) -> PostgresRefused:
    """A failed statement (`statement` as the user would type it, or empty) as a diagnostic."""
    import psycopg.errors

    text = str(exc).strip()
    reason = text.splitlines()[0] if text else type(exc).__name__
    doing = f" running {statement}" if statement else ""
    kind = PermissionDenied if isinstance(exc, psycopg.errors.InsufficientPrivilege) else None
    return (kind or PostgresRefused)(
        f"PostgreSQL refused{doing}" if statement else f"PostgreSQL error on {target.where}",
        f"On {target.where}{doing}: {reason}\n\n{hint}",
        exc.sqlstate,
    )
