"""immuta_user_mapping's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import TypedDict

from ...framework.schema import (
    SINGLE,
    Attribute,
    Block,
    Check,
    NestedBlock,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ...framework.types import STRING
from .. import rules
from ..mapping_rules import (
    AWS_BLOCK,
    POSTGRES_BLOCK,
    VERIFIED_ATTRIBUTES,
    AwsBlock,
    PostgresBlock,
    connection_id_attribute,
)

USER_MAPPING_SCHEMA = Schema(
    Block(
        description="Maps one Immuta user, on one registered connection, to a PostgreSQL "
        "username and/or an AWS principal. For many users of one connection, "
        "`immuta_user_mappings` holds them as one resource. Two resources never manage the "
        "same user: a mapping an `immuta_user_mappings` manages, or any mapping of a "
        "connection an exclusive one owns, is refused here, naming that resource.\n\n"
        "**Import** by `id`. The default PostgreSQL mapping can be written two ways, without "
        'a `postgres` block or as `postgres { mode = "unset" }`; the state store records '
        "which one the configuration used, so the plan right after an import is empty. "
        "Imported into a configuration that spells it the other way, the first plan is an "
        "in-place update that only records the new spelling. "
        "The mapping is written to the state store of the connection's Immuta database. A "
        "provider whose user does not own that store (mappings applied with other credentials "
        "than the registration) needs USAGE on the schema `immuta` and SELECT, INSERT, "
        "UPDATE, DELETE on its tables; apply checks that first and names the GRANT statements "
        "that are missing. A mapping whose connection or Immuta database was removed outside "
        "Terraform is removed from state, so the next plan creates it again.",
        attributes={
            "connection_id": connection_id_attribute("mapping"),
            "immuta_user": Attribute(
                STRING,
                "The Immuta username. Changing it replaces the mapping.",
                required=True,
                plan_modifiers=[RequiresReplace()],
                validators=[
                    Check(
                        lambda v: rules.text_problem(v, "Immuta username"),
                        "an Immuta username",
                        "Invalid Immuta username",
                    )
                ],
            ),
            "id": Attribute(
                STRING,
                "`connection_id` and `immuta_user` joined by `#`, the user part "
                "percent-encoded; the import ID.",
                computed=True,
                plan_modifiers=[UseStateForUnknown()],
            ),
            **VERIFIED_ATTRIBUTES,
        },
        blocks={
            "postgres": NestedBlock(POSTGRES_BLOCK, SINGLE),
            "aws": NestedBlock(AWS_BLOCK, SINGLE),
        },
    )
)


class MappingState(TypedDict):
    connection_id: str
    immuta_user: str
    id: str
    postgres: PostgresBlock | None
    aws: AwsBlock | None
    postgres_user_found: bool
    effective_postgres_username: str | None
    aws_principal_arn: str | None


# Private state: flags separated by commas.
REVERIFY = b"reverify"  # a role or principal changed since the last apply
ADOPT = b"adopt"  # imported while another resource managed it: the next apply takes it over


def flags(private: bytes) -> set[bytes]:
    return set(private.split(b",")) - {b""}


def with_flag(private: bytes, flag: bytes, on: bool) -> bytes:
    found = flags(private)
    found = found | {flag} if on else found - {flag}
    return b",".join(sorted(found))
