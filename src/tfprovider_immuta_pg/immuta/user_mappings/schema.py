"""immuta_user_mappings' declaration: attributes, validators, documentation, state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ...framework.diagnostics import Diagnostics, Key, Path
from ...framework.schema import (
    MAP,
    Attribute,
    Block,
    NestedAttribute,
    Schema,
    UseStateForUnknown,
)
from ...framework.types import BOOL, STRING
from .. import rules
from ..mapping_rules import (
    AWS_ATTRIBUTE,
    POSTGRES_ATTRIBUTE,
    VERIFIED_ATTRIBUTES,
    AwsBlock,
    PostgresBlock,
    connection_id_attribute,
)


def entry_path(user: str) -> Path:
    """An entry's attribute path: errors name the entry by its key."""
    return ("mappings", Key(user))


class UserNames:
    """The map's keys are Immuta usernames."""

    description = "keys that are Immuta usernames"

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None:
        for user in value:
            problem = rules.text_problem(user, "Immuta username")
            if problem:
                diags.error("Invalid Immuta username", problem, (*path, Key(user)))


MAPPINGS_SCHEMA = Schema(
    Block(
        description="Maps many Immuta users, on one registered connection, to PostgreSQL "
        "usernames and/or AWS principals: one resource for a whole directory of users. "
        "Two resources never manage the same user: a write that would take a mapping that "
        "an `immuta_user_mapping` or another `immuta_user_mappings` manages is refused, "
        "naming the user and the other resource (remove it there, or move it: a `removed` "
        "block with `destroy = false` there, then an import here); an `exclusive` one owns "
        "every mapping of its connection. Import by connection id brings in every mapping of "
        "the connection, and the apply after it takes them over (guide: Moving many "
        "immuta_user_mapping resources to one immuta_user_mappings). Needs Terraform 1.0.9 "
        "or later.",
        attributes={
            "connection_id": connection_id_attribute("resource"),
            "exclusive": Attribute(
                BOOL,
                "`true`: this resource owns every mapping of the connection. Refresh reports "
                "mappings made elsewhere (outside Terraform) as keys to remove, and apply "
                "deletes them; no other resource may write mappings on the connection. "
                "`false`: it manages only its own keys.",
                default=False,
            ),
            "mappings": NestedAttribute(
                "The mappings, by Immuta username (case matters). Each entry takes the "
                "`postgres` and `aws` objects of `immuta_user_mapping`, with the same rules "
                "and defaults; `{}` maps the user with the defaults (PostgreSQL mode "
                "`unset`, no AWS principal). Terraform's own work on one resource grows "
                "faster than its entries: above about 2,000 users, several resources of "
                "1,000-2,000 users each (every user in exactly one) plan and apply faster.",
                required=True,
                nesting=MAP,
                attributes={
                    "postgres": POSTGRES_ATTRIBUTE,
                    "aws": AWS_ATTRIBUTE,
                    **VERIFIED_ATTRIBUTES,
                },
                validators=[UserNames()],
            ),
            "id": Attribute(
                STRING,
                "The connection ID; the import ID.",
                computed=True,
                plan_modifiers=[UseStateForUnknown()],
            ),
            "owner_id": Attribute(
                STRING,
                "Identifies this resource in the state store as the manager of its mappings; "
                "an error about a mapping another resource manages names that one's owner_id. "
                "A new one is made on import; the plan after an import shows it as known "
                "after apply, as that apply records this resource as the manager of every "
                "mapping it imported.",
                computed=True,
                plan_modifiers=[UseStateForUnknown()],
            ),
        },
    )
)


class Entry(TypedDict):
    postgres: PostgresBlock | None
    aws: AwsBlock | None
    postgres_user_found: bool
    effective_postgres_username: str | None
    aws_principal_arn: str | None


class MappingsState(TypedDict):
    connection_id: str
    exclusive: bool
    mappings: dict[str, Entry]
    id: str
    owner_id: str


@dataclass
class Private:
    """What Terraform keeps beside the state and never shows."""

    adopt: bool = False  # imported: the next apply takes over every mapping it holds
    reverify: list[str] = field(default_factory=list)  # users whose role or principal changed

    @classmethod
    def parse(cls, raw: bytes) -> Private:
        if not raw:
            return cls()
        found = json.loads(raw)
        return cls(bool(found.get("adopt")), list(found.get("reverify") or []))

    def encode(self) -> bytes:
        values: dict[str, Any] = {}
        if self.adopt:
            values["adopt"] = True
        if self.reverify:
            values["reverify"] = self.reverify
        return json.dumps(values, separators=(",", ":")).encode() if values else b""
