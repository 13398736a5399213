"""immuta_aws_service_principal: the IAM role Immuta assumes, and its database login.

The seed's "AWS Assumed Role" steps 1-5 as one resource: an `rds-db:connect` policy for one
database user, an IAM role trusting Immuta's AWS account on an external ID, the attachment,
and `GRANT rds_iam` to the PostgreSQL login role. The AWS and PostgreSQL work lives in
`principal_worker`, imported on first use so boto3 and psycopg stay off the startup path.

The external ID is write-only: Terraform never stores it. What the provider keeps, in the
resource's private state, is a salted PBKDF2 hash of it, enough to tell at plan time
whether the configured value changed (rotation) and at refresh whether the role's trust
policy still holds it (drift), without being able to recover it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..framework.diagnostics import Diagnostics
from ..framework.provider import Context, Resource
from ..framework.schema import (
    Attribute,
    Block,
    Check,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ..framework.secrets import register
from ..framework.types import BOOL, NUMBER, STRING
from ..framework.values import UNKNOWN
from . import arns, checks, policies

if TYPE_CHECKING:
    from .principal_worker import PrincipalWorker
    from .provider import ImmutaProvider

TYPE_NAME = "immuta_aws_service_principal"
DEFAULT_DATABASE = "postgres"
POLICY_SUFFIX = "-rds-connect"


SERVICE_PRINCIPAL_SCHEMA = Schema(
    Block(
        description=(
            "The AWS service principal Immuta assumes to reach an Amazon RDS or Aurora "
            "PostgreSQL server (Immuta's *AWS Assumed Role* setup, steps 1 to 5, as one "
            "resource):\n\n"
            "1. an IAM policy allowing `rds-db:connect` as `db_username` "
            "(`arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/DB_USERNAME`);\n"
            "2. an IAM role trusting `arn:aws:iam::IMMUTA_ACCOUNT_ID:root` on the condition "
            "`sts:ExternalId`;\n"
            "3. the policy attached to the role;\n"
            "4. in PostgreSQL, the login role `db_username` (created when absent) granted "
            "`rds_iam`.\n\n"
            "Use `role_arn` and the same external ID in a provider block with "
            '`auth_method = "aws_assumed_role"` (or give them to Immuta). The Immuta username '
            "is the IAM role name, so `db_username` defaults to `role_name`.\n\n"
            "**External ID.** `external_id` is write-only (Terraform 1.11 or later): it is "
            "never stored in the plan or state. The provider keeps only a salted PBKDF2 hash "
            "of it in the resource's private state. Changing the value rotates it in place "
            "(the plan shows `trust_policy` as known after apply); a trust policy whose "
            "external ID was changed outside Terraform shows "
            f'`"{policies.EXTERNAL_ID_CHANGED}"` in `trust_policy` and is restored by the '
            f"next apply. In `trust_policy` the value always reads "
            f'`"{policies.EXTERNAL_ID_CONFIGURED}"`.\n\n'
            "**Drift.** Refresh compares the trust policy and the policy's default version "
            "with what Terraform wrote, as data (key order, whitespace, URL encoding and "
            "one-element lists never make a diff), checks the attachment and the `rds_iam` "
            "membership. Anything changed outside Terraform makes the next plan an in-place "
            "update that restores it; a deleted role is created again (its policy, left "
            "behind, is taken over: on create an existing policy of the same name is reused "
            "when it only allows `rds-db:connect`; any other existing policy or role of that "
            "name is an error, nothing is overwritten). IAM is eventually consistent: calls on "
            "a just-created role or policy are retried for a few seconds.\n\n"
            "**Destroy** revokes `rds_iam` from `db_username` but leaves the PostgreSQL login "
            "role itself (it may own objects; drop it yourself if nothing uses it), then "
            "detaches the policy, deletes it (with its old versions) and deletes the role. "
            "Anything already gone is skipped; an unreachable server stops the destroy with an "
            "error (remove the resource from state if the server is gone for good). Changing "
            "`db_username` revokes `rds_iam` from the previous user and grants it to the new "
            "one; changing `hostname`, `port` or `database` grants on the new server and "
            "leaves the old one as it is.\n\n"
            "**Import** by role name. The external ID cannot be read back from AWS, nor the "
            "PostgreSQL server from IAM: the first plan after an import is an in-place update "
            "that records `hostname`, `port` and `database` and rewrites the trust policy "
            "with the configured external ID (`trust_policy` reads "
            f'`"{policies.EXTERNAL_ID_UNVERIFIED}"` until then).'
        ),
        attributes={
            "role_name": Attribute(
                STRING,
                "Name of the IAM role (1 to 64 of letters, digits and `+=,.@_-`). Changing it "
                "replaces the service principal. The Immuta username is this name.",
                required=True,
                validators=[Check(arns.role_name_problem, "an IAM role name", "Invalid role name")],
                plan_modifiers=[RequiresReplace()],
            ),
            "path": Attribute(
                STRING,
                'IAM path of the role and of the policy, such as "/immuta/". Default "/". '
                "Changing it replaces the service principal.",
                default="/",
                validators=[Check(arns.path_problem, "an IAM path", "Invalid IAM path")],
                plan_modifiers=[RequiresReplace()],
            ),
            "policy_name": Attribute(
                STRING,
                f'Name of the IAM policy. Default "<role_name>{POLICY_SUFFIX}". Changing it '
                "creates the policy under the new name, attaches it and deletes the old one.",
                optional=True,
                computed=True,
                validators=[
                    Check(arns.policy_name_problem, "an IAM policy name", "Invalid policy name")
                ],
            ),
            "region": Attribute(
                STRING,
                "AWS region of the database, such as `us-east-1`. Default: the provider's "
                "`aws.region`.",
                optional=True,
                computed=True,
                validators=[Check(arns.region_problem, "an AWS region", "Invalid region")],
            ),
            "aws_account_id": Attribute(
                STRING,
                "12-digit ID of the AWS account that owns the database.",
                required=True,
                validators=[
                    Check(arns.account_id_problem, "an AWS account ID", "Invalid account ID")
                ],
            ),
            "db_resource_id": Attribute(
                STRING,
                "Resource ID of the RDS instance (`DbiResourceId`, `db-...`) or Aurora cluster "
                "(`DbClusterResourceId`, `cluster-...`).",
                required=True,
                validators=[
                    Check(arns.db_resource_id_problem, "an RDS resource ID", "Invalid resource ID")
                ],
            ),
            "db_username": Attribute(
                STRING,
                "PostgreSQL login role the principal connects as with IAM auth tokens "
                "(case-sensitive, at most 63 bytes). Default: `role_name`, since Immuta logs "
                "in with the IAM role name as username. Created with LOGIN when absent.",
                optional=True,
                computed=True,
                validators=[
                    Check(
                        arns.db_username_problem,
                        "a PostgreSQL role name",
                        "Invalid database username",
                    )
                ],
            ),
            "immuta_account_id": Attribute(
                STRING,
                "12-digit ID of Immuta's AWS account, trusted to assume the role (from your "
                "Immuta representative).",
                required=True,
                validators=[
                    Check(
                        lambda v: arns.account_id_problem(v, "AWS account ID for Immuta"),
                        "an AWS account ID",
                        "Invalid account ID",
                    )
                ],
            ),
            "external_id": Attribute(
                STRING,
                "External ID the trust policy requires (`sts:ExternalId`, from your Immuta "
                "representative; 2 to 1224 of letters, digits and `+=,.@:/_-`). Write-only: "
                "never stored; change it to rotate.",
                required=True,
                sensitive=True,
                write_only=True,
                validators=[
                    Check(arns.external_id_problem, "an external ID", "Invalid external ID")
                ],
            ),
            "hostname": Attribute(
                STRING,
                "Endpoint of the RDS instance or Aurora cluster, where the login role is "
                "granted `rds_iam` (with the provider's PostgreSQL credentials).",
                required=True,
                validators=[checks.HOSTNAME],
            ),
            "port": Attribute(
                NUMBER,
                "PostgreSQL port, 1 to 65535. Default 5432.",
                default=5432,
                validators=[checks.PORT],
            ),
            "database": Attribute(
                STRING,
                f'An existing database to connect to. Default "{DEFAULT_DATABASE}". Roles are '
                "server-wide: any database will do.",
                default=DEFAULT_DATABASE,
                validators=[checks.DATABASE_NAME],
            ),
            "id": Attribute(
                STRING,
                "The role name; the import ID.",
                computed=True,
                plan_modifiers=[UseStateForUnknown()],
            ),
            "role_arn": Attribute(
                STRING,
                "ARN of the IAM role (Immuta's Role ARN).",
                computed=True,
            ),
            "policy_arn": Attribute(
                STRING,
                "ARN of the rds-db:connect policy.",
                computed=True,
            ),
            "db_user_arn": Attribute(
                STRING,
                "The rds-db ARN the policy allows connecting as "
                "(`arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/DB_USERNAME`).",
                computed=True,
            ),
            "policy_document": Attribute(
                STRING,
                "The policy's document (JSON), as written; compared as data on refresh.",
                computed=True,
            ),
            "trust_policy": Attribute(
                STRING,
                "The role's trust policy (JSON), as written, the external ID replaced by "
                f'`"{policies.EXTERNAL_ID_CONFIGURED}"`.',
                computed=True,
            ),
            "policy_attached": Attribute(
                BOOL,
                "Whether the policy is attached to the role (false: detached outside "
                "Terraform; the next apply attaches it again).",
                computed=True,
            ),
            "rds_iam_granted": Attribute(
                BOOL,
                "Whether `db_username` is a member of `rds_iam` (false: revoked or dropped "
                "outside Terraform; the next apply grants it again). Null after an import "
                "until the first apply.",
                computed=True,
            ),
        },
    )
)

# ------------------------------------------------------------------ the write-only secret

PBKDF2_ITERATIONS = 100_000


def _digest(value: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", value.encode(), salt, iterations)


def seal_external_id(value: str) -> bytes:
    """Private state recording a salted hash of the external ID (never the value)."""
    salt = os.urandom(16)
    record = {
        "salt": salt.hex(),
        "pbkdf2_sha256": _digest(value, salt, PBKDF2_ITERATIONS).hex(),
        "iterations": PBKDF2_ITERATIONS,
    }
    return json.dumps({"version": 1, "external_id": record}, separators=(",", ":")).encode()


def external_id_checker(private: bytes) -> Callable[[str], bool] | None:
    """A test for "is this the recorded external ID?", or None when nothing is recorded."""
    try:
        record = json.loads(private.decode())["external_id"]
        salt = bytes.fromhex(record["salt"])
        digest = bytes.fromhex(record["pbkdf2_sha256"])
        iterations = int(record["iterations"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    cache: dict[str, bool] = {}

    def check(value: str) -> bool:
        if value not in cache:
            cache[value] = hmac.compare_digest(_digest(value, salt, iterations), digest)
        return cache[value]

    return check


# ------------------------------------------------------------------ the resource


class ServicePrincipalResource(Resource):
    type_name = TYPE_NAME
    schema = SERVICE_PRINCIPAL_SCHEMA

    def __init__(self, provider: ImmutaProvider) -> None:
        self.provider = provider

    def _worker(self, ctx: Context) -> PrincipalWorker:
        from .principal_worker import PrincipalWorker  # boto3/psycopg off the startup path

        return PrincipalWorker(self.provider, ctx)

    def validate(self, config: dict, diags: Diagnostics) -> None:
        external_id = config.get("external_id")
        if isinstance(external_id, str):
            register(external_id)

    def modify_plan(self, prior: dict | None, planned: dict, config: dict, ctx: Context) -> None:
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
                        f"db_username defaults to role_name. {problem} Set db_username.",
                        ("db_username",),
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
        settings = self.provider.settings
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

    def create(self, planned: dict, ctx: Context) -> dict:
        return self._worker(ctx).create(planned)

    def read(self, state: dict, ctx: Context) -> dict | None:
        return self._worker(ctx).read(state)

    def update(self, prior: dict, planned: dict, ctx: Context) -> dict:
        return self._worker(ctx).update(prior, planned)

    def delete(self, state: dict, ctx: Context) -> None:
        self._worker(ctx).delete(state)

    def import_state(self, import_id: str, ctx: Context) -> dict:
        return self._worker(ctx).import_role(import_id)


def default_policy_name(role: Any) -> Any:
    return f"{role}{POLICY_SUFFIX}" if isinstance(role, str) else UNKNOWN


def planned_db_user_arn(values: dict) -> Any:
    parts = [values.get(a) for a in ("region", "aws_account_id", "db_resource_id", "db_username")]
    if not all(isinstance(p, str) for p in parts):
        return UNKNOWN
    return arns.rds_db_user_arn(*parts)


def planned_policy_arn(prior: dict | None, planned: dict) -> Any:
    """Unchanged with the same role and policy name; else derived from the role's ARN."""
    name = planned.get("policy_name")
    if prior is not None and prior.get("policy_name") == name and prior.get("policy_arn"):
        return prior["policy_arn"]
    role_arn, path = planned.get("role_arn"), planned.get("path")
    if isinstance(role_arn, str) and isinstance(path, str) and isinstance(name, str):
        return arns.policy_arn_beside(role_arn, path, name) or UNKNOWN
    return UNKNOWN


def _keep_if_same(prior: dict | None, name: str, wanted: str) -> str:
    """The prior text when it means the same as `wanted`: no diff from formatting alone."""
    before = prior.get(name) if prior else None
    return before if before is not None and policies.same(before, wanted) else wanted
