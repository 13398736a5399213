"""Validators shared by the schemas that take the same kind of value."""

from __future__ import annotations

from ..framework.schema import Check, IntBetween
from . import rules

HOSTNAME = Check(rules.hostname_problem, "a hostname", "Invalid hostname")
PORT = IntBetween(1, 65535)
DATABASE_NAME = Check(
    lambda v: rules.identifier_problem(v, "database name"),
    "a PostgreSQL database name",
    "Invalid database name",
)
