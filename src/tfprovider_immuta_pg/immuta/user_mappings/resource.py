"""immuta_user_mappings: many Immuta users of one connection, as one resource.

Plan-time rules live here; create, read, update, delete and import run in `worker.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...framework.diagnostics import Diagnostics
from ...framework.provider import Context
from ...framework.values import UNKNOWN
from ..base import AccessResource
from ..mapping_rules import VERIFIED, known_before_apply, same_iam_role
from .schema import MAPPINGS_SCHEMA, MappingsState, Private, entry_path

if TYPE_CHECKING:
    from .worker import MappingsWorker

# Terraform 1.0.0 to 1.0.8 crash on a map of nested objects (fixed in 1.0.9).
MINIMUM_TERRAFORM = "1.0.9"


class UserMappingsResource(AccessResource[MappingsState]):
    type_name = "immuta_user_mappings"
    schema = MAPPINGS_SCHEMA
    minimum_terraform = MINIMUM_TERRAFORM

    def worker(self, ctx: Context) -> MappingsWorker:
        from .worker import MappingsWorker  # psycopg stays off the plugin's startup path

        return MappingsWorker(self.access, ctx)

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        mappings = config.get("mappings")
        if isinstance(mappings, dict):
            same_iam_role(mappings, entry_path, diags)

    def modify_plan(
        self,
        prior: MappingsState | None,
        planned: dict[str, Any],
        config: dict[str, Any],
        ctx: Context,
    ) -> None:
        connection_id = planned.get("connection_id")
        if prior is None and isinstance(connection_id, str):
            planned["id"] = connection_id
        mappings = planned.get("mappings")
        if not isinstance(mappings, dict):
            return
        private = Private.parse(ctx.private)
        if prior is not None and private.adopt:
            # Imported: only an apply records this resource as the manager of what it took
            # over, and Terraform applies only a plan that changes something.
            planned["owner_id"] = UNKNOWN
        for user in private.reverify:  # a role or principal changed since the last apply
            entry = mappings.get(user)
            if isinstance(entry, dict):
                for name in VERIFIED:
                    entry[name] = UNKNOWN
        for entry in mappings.values():
            if isinstance(entry, dict) and entry.get("postgres_user_found") is UNKNOWN:
                known_before_apply(entry)
        if not isinstance(connection_id, str):
            return  # the connection is not registered yet: apply checks
        before = prior["mappings"] if prior is not None else {}
        new = [user for user in mappings if user not in before]
        changed_aws = {  # user -> aws.user_type, for the aws objects new or changed
            user: aws["user_type"]
            for user, entry in mappings.items()
            if isinstance(entry, dict)
            and isinstance(aws := entry.get("aws"), dict)
            and isinstance(aws.get("user_type"), str)
            and (user not in before or aws != before[user].get("aws"))
        }
        claims_all = planned.get("exclusive") is True and (
            prior is None or prior.get("exclusive") is not True
        )
        if new or changed_aws or claims_all:  # else no need to look (nor to load psycopg)
            self.worker(ctx).check_plan(
                connection_id,
                planned.get("owner_id"),
                new,
                changed_aws,
                list(mappings) if claims_all else None,
                private.adopt,
            )
