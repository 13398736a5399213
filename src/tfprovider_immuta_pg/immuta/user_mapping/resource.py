"""immuta_user_mapping: one Immuta user mapped to a PostgreSQL username and/or AWS principal.

Plan-time rules live here; create, read, update, delete and import run in `worker.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...framework.diagnostics import Diagnostics
from ...framework.provider import Context
from ...framework.values import UNKNOWN
from ..base import AccessResource
from ..ids import ConnectionId, InvalidId, MappingId
from ..mapping_rules import (
    VERIFIED,
    check_aws_allowed,
    known_before_apply,
    validate_aws_block,
    validate_postgres_block,
)
from .schema import REVERIFY, USER_MAPPING_SCHEMA, MappingState, flags

if TYPE_CHECKING:
    from .worker import MappingWorker


class UserMappingResource(AccessResource[MappingState]):
    type_name = "immuta_user_mapping"
    schema = USER_MAPPING_SCHEMA

    def worker(self, ctx: Context) -> MappingWorker:
        from .worker import MappingWorker  # psycopg stays off the plugin's startup path

        return MappingWorker(self.access, ctx)

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        validate_postgres_block(config.get("postgres"), diags)
        validate_aws_block(config.get("aws"), diags)

    def modify_plan(
        self,
        prior: MappingState | None,
        planned: dict[str, Any],
        config: dict[str, Any],
        ctx: Context,
    ) -> None:
        if prior is None:
            planned["id"] = planned_id(planned)
        elif REVERIFY in flags(ctx.private):
            for name in VERIFIED:
                planned[name] = UNKNOWN  # re-verify: a role or principal changed since apply
        if planned.get("postgres_user_found") is UNKNOWN:
            known_before_apply(planned)
        aws = config.get("aws")
        connection_id = planned.get("connection_id")
        if aws is not None and aws is not UNKNOWN and isinstance(connection_id, str):
            deployment = self.worker(ctx).deployment_type(connection_id)
            if deployment is not None:
                check_aws_allowed(
                    aws.get("user_type"), deployment, ConnectionId.parse(connection_id)
                )


def planned_id(planned: dict[str, Any]) -> object:
    connection_id, user = planned.get("connection_id"), planned.get("immuta_user")
    if not isinstance(connection_id, str) or not isinstance(user, str):
        return UNKNOWN
    try:
        return str(MappingId(ConnectionId.parse(connection_id), user))
    except InvalidId:
        return UNKNOWN
