"""Provider-defined functions: provider::immuta::NAME(...)."""

from __future__ import annotations

from ..framework.provider import Function, FunctionError, Parameter
from ..framework.types import STRING
from . import arns


class RdsDbUserArn(Function):
    name = "rds_db_user_arn"
    summary = "The rds-db ARN an IAM policy grants rds-db:connect on"
    description = (
        "Builds `arn:aws:rds-db:REGION:ACCOUNT_ID:dbuser:DB_RESOURCE_ID/DB_USERNAME`, the "
        "resource of the `rds-db:connect` policy that lets an IAM principal log in to an RDS "
        "or Aurora PostgreSQL server as `DB_USERNAME` with an IAM auth token (step 1 of "
        "Immuta's AWS assumed-role setup). The partition follows the region (`aws-cn` for "
        "`cn-*`, `aws-us-gov` for `us-gov-*`).\n\n"
        "Every argument is checked: `region` is a region code such as `us-east-1`; "
        "`account_id` is 12 digits (pass it as a string to keep leading zeros); "
        "`db_resource_id` is the instance's `DbiResourceId` (`db-...`) or the Aurora "
        "cluster's `DbClusterResourceId` (`cluster-...`), not its name or endpoint; "
        "`db_username` is a PostgreSQL role name (at most 63 bytes, no `/`, no control "
        "characters). IAM reads `*` and `?` in the username as wildcards, so "
        '`db_username = "*"` gives a policy for every database user of that resource; the '
        "function allows it on purpose, the `immuta_aws_service_principal` resource does not."
    )
    parameters = (
        Parameter("region", STRING, "AWS region code of the database, such as `us-east-1`."),
        Parameter("account_id", STRING, "12-digit ID of the AWS account that owns the database."),
        Parameter(
            "db_resource_id",
            STRING,
            "Resource ID of the RDS instance (`db-...`) or Aurora cluster (`cluster-...`).",
        ),
        Parameter(
            "db_username",
            STRING,
            "PostgreSQL role the principal logs in as (case-sensitive; `*` and `?` are IAM "
            "wildcards).",
        ),
    )
    returns = STRING

    def call(self, region: str, account_id: str, db_resource_id: str, db_username: str) -> str:
        checks = (
            arns.region_problem(region),
            arns.account_id_problem(account_id),
            arns.db_resource_id_problem(db_resource_id),
            arns.db_username_problem(db_username, allow_wildcards=True),
        )
        for index, problem in enumerate(checks):
            if problem:
                # Terraform prints 'Invalid value for "NAME" parameter: TEXT.'
                raise FunctionError(problem.rstrip("."), index)
        return arns.rds_db_user_arn(region, account_id, db_resource_id, db_username)


def all_functions() -> dict[str, Function]:
    return {f.name: f for f in (RdsDbUserArn(),)}
