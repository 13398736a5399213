"""Schema pieces that several resources and data sources declare the same way."""

from __future__ import annotations

from collections.abc import Sequence

from ..framework.schema import Attribute, Check, IntBetween, PlanModifier
from ..framework.types import NUMBER, STRING
from . import rules

HOSTNAME = Check(rules.hostname_problem, "a hostname", "Invalid hostname")
PORT = IntBetween(1, 65535)
DATABASE_NAME = Check(
    lambda v: rules.identifier_problem(v, "database name"),
    "a PostgreSQL database name",
    "Invalid database name",
)


def hostname(description: str = "Hostname or IP address of the PostgreSQL server.") -> Attribute:
    return Attribute(STRING, description, required=True, validators=[HOSTNAME])


def port(description: str, default: int | None = None) -> Attribute:
    """A PostgreSQL port; optional, with `default` in the state when given."""
    return Attribute(NUMBER, description, optional=True, default=default, validators=[PORT])


def database(
    description: str,
    default: str | None = None,
    plan_modifiers: Sequence[PlanModifier] = (),
) -> Attribute:
    """A database name; required unless it has a default."""
    return Attribute(
        STRING,
        description,
        required=default is None,
        default=default,
        validators=[DATABASE_NAME],
        plan_modifiers=plan_modifiers,
    )
