"""The work behind immuta_postgres_data_objects: the registered objects, filtered in SQL."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from ...framework.diagnostics import ProviderError
from ...framework.provider import Context
from .. import store
from ..access import Access
from ..ids import ConnectionId, InvalidId
from ..pg import Target
from .schema import DataObject, DataObjectsState


def glob_to_regex(pattern: str) -> str:
    """A shell-style pattern as an anchored POSIX regular expression for PostgreSQL's `~`."""
    out, i = ["^"], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            start = i + 1 + (pattern[i + 1 : i + 2] == "!")
            start += pattern[start : start + 1] == "]"  # a leading ] is a literal member
            end = pattern.find("]", start)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    out.append("$")
    return "".join(out)


def read(access: Access, config: dict[str, Any], ctx: Context) -> DataObjectsState:
    try:
        cid = ConnectionId.parse(config["connection_id"])
    except InvalidId as exc:
        raise ProviderError("Invalid connection_id", str(exc), ("connection_id",)) from None
    target = Target(cid.hostname, cid.port, cid.database)
    conditions: list[sql.Composable] = [sql.SQL("connection_key = %s")]
    params: list[Any] = [cid.display_name]
    for column, name in (
        ("database_name", "database"),
        ("schema_name", "schema"),
        ("object_type", "object_type"),
    ):
        if config.get(name) is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(config[name])
    if config.get("name_pattern") is not None:
        conditions.append(sql.SQL("object_name ~ %s"))
        params.append(glob_to_regex(config["name_pattern"]))
    query = sql.SQL(
        "SELECT database_name, schema_name, object_name, object_type FROM {}.data_objects "
        "WHERE {} ORDER BY database_name, schema_name, object_name"
    ).format(sql.Identifier(store.SCHEMA), sql.SQL(" AND ").join(conditions))

    def look(conn: psycopg.Connection) -> list[tuple[str, str, str, str]]:
        if store.get_connection(conn, cid.display_name) is None:
            raise ProviderError(
                f"Connection {cid.display_name!r} is not registered",
                f"No connection {str(cid)!r} is registered in {target.where}.",
                ("connection_id",),
            )
        with conn.cursor() as cur:
            try:
                if config.get("name_pattern") is not None:
                    # Compiled here, so a bad pattern fails even when no row would test it.
                    cur.execute("SELECT '' ~ %s", (glob_to_regex(config["name_pattern"]),))
                cur.execute(query, params)
            except psycopg.errors.InvalidRegularExpression:
                raise ProviderError(
                    "Invalid name pattern",
                    f"{config['name_pattern']!r} is not a valid shell-style pattern (check its "
                    "[...] sets: ranges must run upwards, classes look like [[:alpha:]]).",
                    ("name_pattern",),
                ) from None
            return cur.fetchall()

    rows = access.run(target, ctx, look, f"reading the objects of {cid.display_name!r}")
    prefix = cid.display_name + "."
    objects = [
        DataObject(database=d, schema=s, name=n, object_type=t, full_name=f"{prefix}{d}.{s}.{n}")
        for d, s, n, t in rows
    ]
    return DataObjectsState(
        connection_id=config["connection_id"],
        database=config.get("database"),
        schema=config.get("schema"),
        object_type=config.get("object_type"),
        name_pattern=config.get("name_pattern"),
        objects=objects,
        count=len(objects),
    )
