"""AWS naming rules for the service principal and the rds_db_user_arn function.

Each `*_problem` function returns a sentence for the user, or None when the value is fine.
No value that may be a secret (the external ID) is ever echoed back.
"""

from __future__ import annotations

import re

from ..framework.schema import quote
from . import rules

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
DB_RESOURCE_ID = re.compile(r"^(db|cluster)-[A-Z0-9]+$")
IAM_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
IAM_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.ASCII)
IAM_PATH = re.compile(r"^/(?:[\x21-\x7e]+/)?$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)
RDS_DB_USER_ARN = re.compile(
    r"^arn:(aws[a-z-]*):rds-db:([a-z0-9-]+):(\d{12}):dbuser:([^/]+)/(.+)$", re.DOTALL
)
IAM_WILDCARDS = ("*", "?")


def region_problem(value: str) -> str | None:
    if not REGION.match(value):
        return (
            f"{quote(value)} is not an AWS region code; expected one such as us-east-1, "
            "eu-central-1 or us-gov-west-1 (lower case, no availability-zone letter)."
        )
    return None


def account_id_problem(value: str, what: str = "AWS account ID") -> str | None:
    if not ACCOUNT_ID.match(value):
        return (
            f"{quote(value)} is not an {what}: expected exactly 12 digits, such as "
            "111122223333 (keep leading zeros; quote it as a string)."
        )
    return None


def db_resource_id_problem(value: str) -> str | None:
    if not DB_RESOURCE_ID.match(value):
        return (
            f"{quote(value)} is not an RDS resource ID: expected db-... for an instance "
            "or cluster-... for an Aurora cluster, followed by upper-case letters and digits "
            "(for example db-ABCDEFGHIJKLMNOPQRSTUVWXY1). It is the DbiResourceId "
            "(DbClusterResourceId for Aurora), not the instance name or endpoint."
        )
    return None


def db_username_problem(value: str, allow_wildcards: bool = False) -> str | None:
    """A PostgreSQL role name usable in an rds-db ARN (IAM wildcards only when allowed)."""
    problem = rules.identifier_problem(value, "database username")
    if problem:
        return problem
    if "/" in value:
        return (
            f"The database username {quote(value)} contains '/', which separates the "
            "resource ID from the username in an rds-db ARN."
        )
    if not allow_wildcards and any(w in value for w in IAM_WILDCARDS):
        return (
            f"The database username {quote(value)} contains '*' or '?', which IAM reads "
            "as wildcards in an rds-db:connect policy; give the exact PostgreSQL role name."
        )
    return None


def role_name_problem(value: str) -> str | None:
    if not IAM_ROLE_NAME.match(value):
        return (
            f"{quote(value)} is not a valid IAM role name: 1 to 64 characters of "
            "letters, digits and + = , . @ _ -."
        )
    return None


def policy_name_problem(value: str) -> str | None:
    if not IAM_POLICY_NAME.match(value):
        return (
            f"{quote(value)} is not a valid IAM policy name: 1 to 128 characters of "
            "letters, digits and + = , . @ _ -."
        )
    return None


def path_problem(value: str) -> str | None:
    if len(value) > 512 or not IAM_PATH.match(value):
        return (
            f"{quote(value)} is not a valid IAM path: it starts and ends with '/', "
            "holds printable ASCII without spaces, at most 512 characters (for example "
            '"/" or "/immuta/").'
        )
    return None


def external_id_problem(value: str) -> str | None:
    # Never echo the value: it is a secret.
    if len(value) < 2 or len(value) > 1224:
        return f"The external ID is {len(value)} characters long; IAM accepts 2 to 1224."
    if not EXTERNAL_ID.match(value):
        return (
            "The external ID holds a character IAM does not accept; allowed are letters, "
            "digits and + = , . @ : / _ -."
        )
    return None


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if "-gov-" in region:
        return "aws-us-gov"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    if region.startswith("us-iso-"):
        return "aws-iso"
    return "aws"


def rds_db_user_arn(region: str, account_id: str, db_resource_id: str, db_username: str) -> str:
    """arn:aws:rds-db:REGION:ACCOUNT:dbuser:DB_RESOURCE_ID/DB_USERNAME (values already valid)."""
    return (
        f"arn:{partition(region)}:rds-db:{region}:{account_id}:dbuser:"
        f"{db_resource_id}/{db_username}"
    )


def parse_rds_db_user_arn(arn: str) -> tuple[str, str, str, str] | None:
    """(region, account, resource ID, username) of an rds-db ARN, or None."""
    match = RDS_DB_USER_ARN.match(arn)
    if not match:
        return None
    return match.group(2), match.group(3), match.group(4), match.group(5)


def policy_arn_beside(role_arn: str, path: str, policy_name: str) -> str | None:
    """The ARN a customer managed policy gets in the role's own partition and account."""
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not ACCOUNT_ID.match(parts[4]):
        return None
    return f"arn:{parts[1]}:iam::{parts[4]}:policy{path}{policy_name}"
