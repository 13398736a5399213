"""Resource IDs that round-trip for any valid name.

Connection: `hostname:port/database/display_name`. Inside database and display
name, `%`, `/` and `#` are percent-encoded (so the parts split unambiguously);
every other character, spaces and unicode included, is written as is.
User mapping: `<connection id>#<immuta user>`, the user with `%` and `#` encoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..framework.diagnostics import ProviderError
from .rules import text_problem

Parsed = TypeVar("Parsed")

_PART_ESCAPES = str.maketrans({"%": "%25", "/": "%2F", "#": "%23"})
_USER_ESCAPES = str.maketrans({"%": "%25", "#": "%23"})


def _encode(text: str, escapes: dict[int, str]) -> str:
    return text.translate(escapes)


def _decode(text: str, what: str) -> str:
    """Percent-decode one part of an ID; the result must be a usable name."""
    from urllib.parse import unquote

    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidId(f"{text!r}: a percent escape in the {what} is not UTF-8.") from None
    problem = text_problem(decoded, what, 1024)
    if problem:
        raise InvalidId(problem)
    return decoded


class InvalidId(ValueError):
    pass


@dataclass(frozen=True)
class ConnectionId:
    hostname: str
    port: int
    database: str
    display_name: str

    def __str__(self) -> str:
        return (
            f"{self.hostname}:{self.port}/{_encode(self.database, _PART_ESCAPES)}/"
            f"{_encode(self.display_name, _PART_ESCAPES)}"
        )

    @classmethod
    def parse(cls, text: str) -> ConnectionId:
        server, sep, rest = text.partition("/")
        database, sep2, name = rest.partition("/")
        hostname, sep3, port = server.rpartition(":")
        if not (sep and sep2 and sep3 and hostname and database and name) or "/" in name:
            raise InvalidId(
                f"{text!r} is not a connection ID; expected hostname:port/database/display_name "
                "(for example db.example.com:5432/immuta/Production)."
            )
        if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise InvalidId(f"{text!r}: the port {port!r} is not a number from 1 to 65535.")
        return cls(
            hostname.strip("[]") if ":" in hostname else hostname,
            int(port),
            _decode(database, "database name"),
            _decode(name, "display name"),
        )


@dataclass(frozen=True)
class MappingId:
    connection: ConnectionId
    immuta_user: str

    def __str__(self) -> str:
        return f"{self.connection}#{_encode(self.immuta_user, _USER_ESCAPES)}"

    @classmethod
    def parse(cls, text: str) -> MappingId:
        connection, sep, user = text.rpartition("#")
        if not sep or not user:
            raise InvalidId(
                f"{text!r} is not a user mapping ID; expected <connection id>#<immuta user> "
                "(for example db.example.com:5432/immuta/Production#alice@example.com)."
            )
        return cls(ConnectionId.parse(connection), _decode(user, "Immuta username"))


def parse_import_id(parse: Callable[[str], Parsed], text: str) -> Parsed:
    """`parse(text)`; a malformed ID is the error `terraform import` shows."""
    try:
        return parse(text)
    except InvalidId as exc:
        raise ProviderError("Invalid import ID", str(exc)) from None


def connection_id_problem(value: str) -> str | None:
    """Plan-time check of a connection_id argument."""
    problem = text_problem(value, "connection ID", 1024)
    if problem:
        return problem
    try:
        ConnectionId.parse(value)
    except InvalidId as exc:
        return str(exc)
    return None
