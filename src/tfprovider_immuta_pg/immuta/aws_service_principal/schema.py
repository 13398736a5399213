"""immuta_aws_service_principal's declaration: attributes, validators, documentation, state."""

from __future__ import annotations

from typing import Any, TypedDict

from ...framework.schema import (
    Attribute,
    Block,
    Check,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from ...framework.types import BOOL, STRING
from ...framework.values import UNKNOWN
from .. import arns, policies, shared_schema

TYPE_NAME = "immuta_aws_service_principal"
DEFAULT_DATABASE = "postgres"
POLICY_SUFFIX = "-rds-connect"


def default_policy_name(role: Any) -> Any:
    """`<role_name>-rds-connect`; unknown while the role name is."""
    return f"{role}{POLICY_SUFFIX}" if isinstance(role, str) else UNKNOWN


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
            "is the IAM role name, so `db_username` is `role_name` (a different value is "
            "refused at plan: Immuta could not log in).\n\n"
            "**External ID.** `external_id` is write-only (Terraform 1.11 or later): it is "
            "never stored in the plan or state. Terraform before 1.11 knows no write-only "
            "arguments and would keep the value in the plan and the state, so the provider "
            "refuses a configuration that sets it (at validation and again at plan, before "
            "anything is created): this resource needs Terraform 1.11 or later. An import "
            "works with any Terraform (before 1.11 with a warning), and the plan after it "
            "then needs 1.11. The provider keeps only a salted PBKDF2 hash "
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
            "error (remove the resource from state if the server is gone for good). A state "
            "whose `db_username` differs from `role_name` (written by an earlier version) is "
            "corrected by the next apply: `rds_iam` is revoked from the previous user and "
            "granted to the role name. Changing `hostname`, `port` or `database` grants on "
            "the new server and leaves the old one as it is.\n\n"
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
                "(case-sensitive, at most 63 bytes), created with LOGIN when absent. Always "
                "`role_name`: Immuta logs in with the IAM role name as username, so a "
                "different value is refused at plan. (A state written by an earlier version "
                "with another value moves `rds_iam` to `role_name` on the next apply.)",
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
            "hostname": shared_schema.hostname(
                "Endpoint of the RDS instance or Aurora cluster, where the login role is "
                "granted `rds_iam` (with the provider's PostgreSQL credentials).",
            ),
            "port": shared_schema.port("PostgreSQL port, 1 to 65535. Default 5432.", default=5432),
            "database": shared_schema.database(
                f'An existing database to connect to. Default "{DEFAULT_DATABASE}". Roles are '
                "server-wide: any database will do.",
                default=DEFAULT_DATABASE,
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


class ServicePrincipalState(TypedDict):
    role_name: str
    path: str
    policy_name: str
    region: str
    aws_account_id: str
    db_resource_id: str
    db_username: str
    immuta_account_id: str
    external_id: None  # write-only: never in state
    hostname: str | None  # null after an import, until the first apply
    port: int | None
    database: str | None
    id: str
    role_arn: str
    policy_arn: str
    db_user_arn: str
    policy_document: str | None  # null when the policy was deleted outside Terraform
    trust_policy: str
    policy_attached: bool
    rds_iam_granted: bool | None
