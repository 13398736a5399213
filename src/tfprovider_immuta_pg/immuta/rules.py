"""The product's naming rules, shared by validators and the state store."""

from __future__ import annotations

import re
import unicodedata

RESTRICTED_WORDS = (
    "data",
    "connection",
    "object",
    "crawl",
    "search",
    "settings",
    "metadata",
    "permission",
    "sync",
    "bulk",
    "upgrade",
)
DEPLOYMENT_TYPES = ("self_managed", "aurora", "rds", "neon")
AWS_DEPLOYMENTS = ("aurora", "rds")
AUTH_METHODS = ("password", "aws_access_key", "aws_assumed_role")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
MAX_NAME_LENGTH = 255
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1

_IAM_NAME = re.compile(r"^[\w+=,.@-]{1,64}$", re.ASCII)
_ARN = re.compile(
    r"^arn:aws[a-z-]*:iam::([0-9]{12}):(role|user)/((?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})$",
    re.ASCII,
)
_IDENTITY_CENTER_ID = re.compile(
    r"^([0-9a-f]{10}-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE
)


def control_character_problem(value: str) -> str | None:
    if value.isprintable():  # fast path: no control, format, private or unassigned characters
        return None
    for index, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return (
                f"contains the control or unassigned character U+{ord(char):04X} "
                f"at position {index + 1}"
            )
    return None


def text_problem(value: str, what: str, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Shared rules for any user-facing name: not blank, printable, not huge."""
    if not value.strip():
        return f"The {what} must not be blank."
    if value != value.strip():
        return f"The {what} must not start or end with whitespace."
    problem = control_character_problem(value)
    if problem:
        return f"The {what} {problem}."
    if len(value) > max_length:
        return f"The {what} is {len(value)} characters long; at most {max_length} are allowed."
    return None


def display_name_problem(value: str) -> str | None:
    """Immuta's display-name rules ("Register a PostgreSQL Connection"): no period, none of
    the restricted words in any case."""
    problem = text_problem(value, "display name")
    if problem:
        return problem
    if "." in value:
        return (
            f"The display name {value!r} contains a period; periods separate the parts of "
            "data source names (connection.database.schema.object). Use another character."
        )
    if value.lower() in RESTRICTED_WORDS:
        return (
            f"The display name {value!r} is a restricted word. These cannot be used in any case: "
            + ", ".join(RESTRICTED_WORDS)
            + "."
        )
    return None


def hostname_problem(value: str) -> str | None:
    problem = text_problem(value, "hostname", 253)
    if problem:
        return problem
    if any(c.isspace() for c in value) or "/" in value:
        return f"The hostname {value!r} contains whitespace or '/'; give a DNS name or IP address."
    return None


def identifier_problem(value: str, what: str) -> str | None:
    problem = text_problem(value, what, MAX_IDENTIFIER_BYTES)
    if problem:
        return problem
    if len(value.encode()) > MAX_IDENTIFIER_BYTES:
        return (
            f"The {what} is {len(value.encode())} bytes in UTF-8; PostgreSQL names are at most "
            f"{MAX_IDENTIFIER_BYTES} bytes."
        )
    return None


def iam_principal_problem(value: str, kind: str) -> str | None:
    """`kind` is role or user; a name or an ARN of that kind is accepted."""
    if value.startswith("arn:"):
        match = _ARN.match(value)
        if not match:
            return f"{value!r} is not a valid IAM {kind} ARN (arn:aws:iam::ACCOUNT_ID:{kind}/NAME)."
        if match.group(2) != kind:
            return f"{value!r} is an IAM {match.group(2)} ARN, but an IAM {kind} is expected here."
        return None
    if not _IAM_NAME.match(value):
        return (
            f"{value!r} is not a valid IAM {kind} name: 1 to 64 characters of letters, digits "
            "and + = , . @ _ -, or give the full ARN."
        )
    return None


def identity_center_problem(value: str) -> str | None:
    if "@" in value:
        return (
            f"{value!r} looks like an email address. IAM Identity Center mappings take the "
            "user's User ID (for example 9067c1a2b3-1c2d3e4f-5a6b-7c8d-9e0f-123456789abc), "
            "shown on the user's page in IAM Identity Center, not the email address."
        )
    if not _IDENTITY_CENTER_ID.match(value):
        return (
            f"{value!r} is not an IAM Identity Center User ID; expected an ID such as "
            "9067c1a2b3-1c2d3e4f-5a6b-7c8d-9e0f-123456789abc "
            "or 1c2d3e4f-5a6b-7c8d-9e0f-123456789abc."
        )
    return None


def same_in_any_case(a: str, b: str) -> bool:
    """Names equal as PostgreSQL's lower() sees them."""
    return a.lower() == b.lower()


def role_name_from_arn(arn: str) -> str | None:
    match = _ARN.match(arn)
    return match.group(4) if match and match.group(2) == "role" else None
