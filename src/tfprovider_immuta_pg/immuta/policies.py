"""IAM policy documents: the two the service principal writes, and comparing them as data.

IAM hands documents back URL-encoded, re-serialised and sometimes reshaped (a one-element
list for a string); none of that is a change. Two documents are the same when they parse to
the same data after the normalisations IAM itself applies: key order and whitespace never
matter, a single value equals a one-element list, and the order of statements and of values
in Action, Resource, Principal and Condition lists does not matter. Action names compare in
any case, as IAM evaluates them.

The external ID is a secret and is never kept in state: `mask_external_ids` replaces every
`sts:ExternalId` condition value with a marker saying whether it is the configured one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

POLICY_VERSION = "2012-10-17"
EXTERNAL_ID_KEY = "sts:ExternalId"

# Markers standing in for the write-only external ID in `trust_policy`.
EXTERNAL_ID_CONFIGURED = "<external_id>"
EXTERNAL_ID_CHANGED = "<external_id changed outside Terraform>"
EXTERNAL_ID_UNVERIFIED = "<external_id not verified>"

_LISTY = ("Action", "NotAction", "Resource", "NotResource")
_CASELESS = ("Action", "NotAction")


def connect_policy(db_user_arn: str) -> dict[str, Any]:
    """Step 1 of Immuta's "AWS Assumed Role" setup: allow rds-db:connect as one database user."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": db_user_arn,
            }
        ],
    }


def trust_policy(immuta_account_id: str, external_id: str, partition: str = "aws") -> dict:
    """Step 4 of Immuta's "AWS Assumed Role" setup: trust Immuta's account on the external ID."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "assumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{immuta_account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {EXTERNAL_ID_KEY: external_id}},
            }
        ],
    }


def dumps(document: Any) -> str:
    """The JSON text kept in state (compact; Terraform shows it as jsonencode)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def parse(document: Any) -> Any:
    """A document as data: dicts pass through; text is parsed, URL-decoded first if needed.

    Raises ValueError when the text is not JSON either way.
    """
    if not isinstance(document, str):
        return document
    try:
        return json.loads(document)
    except ValueError:
        return json.loads(unquote(document))


def normalise(document: Any) -> Any:
    """The comparable form of a policy document (see the module docstring)."""
    if not isinstance(document, dict):
        return document
    result: dict[str, Any] = {}
    for key, value in document.items():
        if key == "Statement":
            statements = value if isinstance(value, list) else [value]
            result[key] = _sorted([_statement(s) for s in statements])
        else:
            result[key] = value
    return result


def _statement(statement: Any) -> Any:
    if not isinstance(statement, dict):
        return statement
    result: dict[str, Any] = {}
    for key, value in statement.items():
        if key in _LISTY:
            values = _as_list(value)
            if key in _CASELESS:
                values = [v.lower() if isinstance(v, str) else v for v in values]
            result[key] = _sorted(values)
        elif key in ("Principal", "NotPrincipal") and isinstance(value, dict):
            result[key] = {k: _sorted(_as_list(v)) for k, v in value.items()}
        elif key == "Condition" and isinstance(value, dict):
            result[key] = {
                operator: (
                    {k.lower(): _sorted(_as_list(v)) for k, v in tests.items()}
                    if isinstance(tests, dict)
                    else tests
                )
                for operator, tests in value.items()
            }
        else:
            result[key] = value
    return result


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _sorted(values: list) -> list:
    return sorted(values, key=lambda v: json.dumps(v, sort_keys=True))


def same(a: Any, b: Any) -> bool:
    """Whether two policy documents (text or data) mean the same to IAM."""
    if a is None or b is None:
        return a is b
    try:
        return bool(normalise(parse(a)) == normalise(parse(b)))
    except ValueError:
        return bool(a == b)


def mask_external_ids(document: Any, verify: Callable[[str], bool] | None) -> Any:
    """A copy with each sts:ExternalId value replaced by a marker.

    `verify(value)` says whether a value is the configured external ID; None means it
    cannot be told (no record of the configured value, as after an import).
    """
    document = copy.deepcopy(document)
    if not isinstance(document, dict):
        return document
    statements = document.get("Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        condition = statement.get("Condition") if isinstance(statement, dict) else None
        if not isinstance(condition, dict):
            continue
        for tests in condition.values():
            if not isinstance(tests, dict):
                continue
            for key, value in tests.items():
                if key.lower() == EXTERNAL_ID_KEY.lower():
                    tests[key] = (
                        [_marker(v, verify) for v in value]
                        if isinstance(value, list)
                        else _marker(value, verify)
                    )
    return document


def _marker(value: Any, verify: Callable[[str], bool] | None) -> str:
    if verify is None:
        return EXTERNAL_ID_UNVERIFIED
    return (
        EXTERNAL_ID_CONFIGURED
        if isinstance(value, str) and verify(value)
        else (EXTERNAL_ID_CHANGED)
    )


def connect_resources(document: Any) -> list[str]:
    """The Resource ARNs of the Allow rds-db:connect statements of a document."""
    try:
        document = parse(document)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    found: list[str] = []
    statements = document.get("Statement")
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = [a.lower() for a in _as_list(statement.get("Action")) if isinstance(a, str)]
        if "rds-db:connect" in actions:
            found += [r for r in _as_list(statement.get("Resource")) if isinstance(r, str)]
    return found


def trusted_account(document: Any) -> str | None:
    """The account whose root the trust policy trusts (arn:...:iam::ACCOUNT:root)."""
    try:
        document = parse(document)
    except ValueError:
        return None
    statements = document.get("Statement") if isinstance(document, dict) else None
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        if not isinstance(principal, dict):
            continue
        for arn in _as_list(principal.get("AWS")):
            parts = arn.split(":") if isinstance(arn, str) else []
            if len(parts) == 6 and parts[2] == "iam" and parts[5] == "root":
                return parts[4]
            if isinstance(arn, str) and arn.isdigit() and len(arn) == 12:
                return arn
    return None
