"""immuta_aws_service_principal: the IAM role Immuta assumes, and its database login.

Immuta's "AWS Assumed Role" setup, steps 1-5, as one resource: an `rds-db:connect` policy for
one database user, an IAM role trusting Immuta's AWS account on an external ID, the
attachment, and `GRANT rds_iam` to the PostgreSQL login role. Plan-time rules live here; the
AWS and PostgreSQL work runs in `worker.py`. The external ID is write-only; see
`external_id.py` for what the provider remembers of it.
"""

from __future__ import annotations

from typing import Any

from ...framework.diagnostics import Diagnostics
from ...framework.provider import Context, Worker
from ...framework.secrets import register
from ...framework.values import UNKNOWN
from .. import arns, policies
from ..base import AccessResource
from .external_id import external_id_checker
from .schema import (
    SERVICE_PRINCIPAL_SCHEMA,
    TYPE_NAME,
    ServicePrincipalState,
    default_policy_name,
)


class ServicePrincipalResource(AccessResource[ServicePrincipalState]):
    type_name = TYPE_NAME
    schema = SERVICE_PRINCIPAL_SCHEMA

    def worker(self, ctx: Context) -> Worker[ServicePrincipalState]:
        from .worker import PrincipalWorker  # boto3 and psycopg stay off the startup path

        return PrincipalWorker(self.access, ctx)

    def validate(self, config: dict[str, Any], diags: Diagnostics) -> None:
        external_id = config.get("external_id")
        if isinstance(external_id, str):
            register(external_id)
        role, db_username = config.get("role_name"), config.get("db_username")
        if isinstance(role, str) and isinstance(db_username, str) and db_username != role:
            diags.error(
                "db_username must be the role name",
                f'db_username = "{db_username}" but role_name = "{role}". Immuta logs in to '
                "PostgreSQL with the IAM role name as its username, so the rds-db:connect "
                f'policy and the rds_iam grant must be for the database user "{role}": with '
                "any other db_username, Immuta could not log in. Remove db_username (it "
                "defaults to role_name) or set it to role_name.",
                ("db_username",),
            )

    def modify_plan(
        self,
        prior: ServicePrincipalState | None,
        planned: dict[str, Any],
        config: dict[str, Any],
        ctx: Context,
    ) -> None:
        external_id = config.get("external_id")
        if isinstance(external_id, str):
            register(external_id)
        role = planned.get("role_name")
        if config.get("db_username") is None:
            planned["db_username"] = role
            if isinstance(role, str):
                problem = arns.db_username_problem(role)
                if problem:
                    ctx.diags.error(
                        "Role name is not a usable database username",
                        f"Immuta logs in to PostgreSQL as the role name. {problem} Choose "
                        "another role_name.",
                        ("role_name",),
                    )
        if config.get("policy_name") is None:
            planned["policy_name"] = default_policy_name(role)
        if config.get("region") is None:
            planned["region"] = self._default_region(ctx.diags)
        planned["id"] = role
        planned["policy_attached"] = True
        planned["rds_iam_granted"] = True

        same_role = prior is not None and all(
            prior.get(a) == planned.get(a) for a in ("role_name", "path")
        )
        planned["role_arn"] = prior.get("role_arn") if same_role and prior else UNKNOWN
        planned["policy_arn"] = planned_policy_arn(prior if same_role else None, planned)

        user_arn = planned_db_user_arn(planned)
        planned["db_user_arn"] = user_arn
        planned["policy_document"] = (
            _keep_if_same(
                prior, "policy_document", policies.dumps(policies.connect_policy(user_arn))
            )
            if isinstance(user_arn, str)
            else UNKNOWN
        )

        planned["trust_policy"] = UNKNOWN
        account, region = planned.get("immuta_account_id"), planned.get("region")
        if isinstance(account, str) and isinstance(region, str):
            wanted = policies.dumps(
                policies.trust_policy(
                    account, policies.EXTERNAL_ID_CONFIGURED, arns.partition(region)
                )
            )
            if prior is None or not self._external_id_changed(external_id, ctx.private):
                planned["trust_policy"] = _keep_if_same(prior, "trust_policy", wanted)

    def _default_region(self, diags: Diagnostics) -> Any:
        settings = self.access.settings_if_configured
        region = settings.aws.region if settings is not None else None
        if region is None:
            diags.error(
                "Missing region",
                "Set region here or aws.region in the provider block (or AWS_REGION): the "
                "rds-db ARN names the database's region.",
                ("region",),
            )
        elif region is not UNKNOWN:
            problem = arns.region_problem(region)
            if problem:
                diags.error(
                    "Invalid region", f"From the provider's aws.region: {problem}", ("region",)
                )
        return region

    @staticmethod
    def _external_id_changed(external_id: Any, private: bytes) -> bool:
        """True when the configured external ID is not the one last applied (or unknown)."""
        if not isinstance(external_id, str):
            return True
        check = external_id_checker(private)
        return check is None or not check(external_id)


def planned_db_user_arn(values: dict[str, Any]) -> Any:
    region, account, resource_id, username = (
        values.get(a) for a in ("region", "aws_account_id", "db_resource_id", "db_username")
    )
    if not (
        isinstance(region, str)
        and isinstance(account, str)
        and isinstance(resource_id, str)
        and isinstance(username, str)
    ):
        return UNKNOWN
    return arns.rds_db_user_arn(region, account, resource_id, username)


def planned_policy_arn(prior: ServicePrincipalState | None, planned: dict[str, Any]) -> Any:
    """Unchanged with the same role and policy name; else derived from the role's ARN."""
    name = planned.get("policy_name")
    if prior is not None and prior.get("policy_name") == name and prior.get("policy_arn"):
        return prior["policy_arn"]
    role_arn, path = planned.get("role_arn"), planned.get("path")
    if isinstance(role_arn, str) and isinstance(path, str) and isinstance(name, str):
        return arns.policy_arn_beside(role_arn, path, name) or UNKNOWN
    return UNKNOWN


def _keep_if_same(prior: ServicePrincipalState | None, name: str, wanted: str) -> str:
    """The prior text when it means the same as `wanted`: no diff from formatting alone."""
    before: Any = prior.get(name) if prior else None
    return before if before is not None and policies.same(before, wanted) else wanted
