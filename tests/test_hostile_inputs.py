"""Hostile inputs: a corpus of awkward, malicious and malformed values for every string and
number attribute of every resource, data source, the provider block and the function.

Each case ends one of two ways:
(a) refused: an error diagnostic on the case's own block that names the attribute (the
    diagnostic's range is the attribute's line, or its text names it), with no traceback and
    no "Unexpected provider error"; and the state store is byte-for-byte unchanged;
(b) accepted verbatim: the value is applied and comes back exactly, from the state store
    and from Terraform's state, through refresh (an empty plan) and import.

The cases are batched: every validate-time case is one block of one configuration checked by
a single `terraform validate -json`; plan- and apply-time cases share one plan and one apply.
`python -m pytest tests/test_hostile_inputs.py -k corpus -s` prints the counts per category.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from harness import RESTRICTED_WORDS, Database, PostgresServer, Raw, Terraform, block, literal
from harness.hcl_config import PROVIDER_ADDRESS, Config
from harness.store_dump import store_dump
from harness.terraform import REQUIRED_PROVIDERS
from psycopg import sql

CONNECTION = "immuta_postgres_connection"
MAPPING = "immuta_user_mapping"
PRINCIPAL = "immuta_aws_service_principal"
PREFLIGHT = "data.immuta_postgres_preflight"
DATA_OBJECTS = "data.immuta_postgres_data_objects"
PROVIDER = "provider"
FUNCTION = "function"

KB10 = 10 * 1024
DROP_TABLE = "x'; DROP TABLE immuta.connections; --"
DROP_SCHEMA = '"; DROP SCHEMA immuta CASCADE; --'
DELETE_ALL = "'); DELETE FROM immuta.connections; --"  # never registered: refused where used
RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY1"
VALID_CID = "db.example.com:5432/immuta/Valid"

# Valid values for everything but the attribute under test.
BASES: dict[str, dict[str, Any]] = {
    CONNECTION: {
        "display_name": "Valid",
        "deployment_type": "self_managed",
        "hostname": "db.example.com",
        "port": 5432,
        "database": "immuta",
    },
    MAPPING: {"connection_id": VALID_CID, "immuta_user": "alice"},
    PRINCIPAL: {
        "role_name": "immuta-svc",
        "aws_account_id": "123456789012",
        "db_resource_id": RESOURCE_ID,
        "immuta_account_id": "210987654321",
        "external_id": "ExtId-valid-0001",
        "hostname": "db.example.com",
        "port": 5432,
    },
    PREFLIGHT: {"hostname": "db.example.com", "database": "immuta"},
    DATA_OBJECTS: {"connection_id": VALID_CID},
    PROVIDER: {"username": "postgres"},
}
FUNCTION_PARAMS = ("region", "account_id", "db_resource_id", "db_username")
FUNCTION_ARGS = {
    "region": "us-east-1",
    "account_id": "123456789012",
    "db_resource_id": RESOURCE_ID,
    "db_username": "immuta_svc",
}
# Attributes that need a sibling to be checked at all.
CONTEXT = {
    "postgres.username": {"postgres.mode": "username"},
    "aws.principal": {"aws.user_type": "iam_role"},
}
SECRETS = {"external_id", "aws.external_id"}  # never echoed in a diagnostic


@dataclass(frozen=True)
class Case:
    category: str
    target: str  # a resource type, PREFLIGHT/DATA_OBJECTS, PROVIDER or FUNCTION
    attribute: str  # dotted attribute path; for FUNCTION the parameter; "" when none applies
    value: Any  # a str (written as an exact HCL string literal), a number or a Raw expression
    extra: tuple[tuple[str, Any], ...] = ()  # other attributes of the block
    alone: bool = False  # a Terraform-level type error: the block gets no other case

    def attributes(self) -> dict[str, Any]:
        values = dict(BASES[self.target])
        values.update(CONTEXT.get(self.attribute, {}))
        values.update(dict(self.extra))
        if self.attribute:
            values[self.attribute] = self.value
        return values


def c(category: str, target: str, attribute: str, *values: Any, **kw: Any) -> list[Case]:
    return [Case(category, target, attribute, v, **kw) for v in values]


def function_call(case: Case) -> str:
    override = dict(case.extra).get("__args__")
    if override is not None:
        return f"provider::immuta::rds_db_user_arn({override})"
    args = dict(FUNCTION_ARGS)
    args[case.attribute] = case.value
    rendered = ", ".join(str(a) if isinstance(a, Raw | int) else literal(a) for a in args.values())
    return f"provider::immuta::rds_db_user_arn({rendered})"


# ---------------------------------------------------------------------- refused at validate

REFUSED_AT_VALIDATE: list[Case] = [
    # Restricted words, whole, in any case.
    *(
        Case("restricted words", CONNECTION, "display_name", variant)
        for word in RESTRICTED_WORDS
        for variant in (
            word,
            word.upper(),
            "".join(ch.upper() if i % 2 else ch for i, ch in enumerate(word)),
        )
    ),
    # Periods separate the parts of data source names.
    *c("periods", CONNECTION, "display_name", "Prod.Warehouse", ".", "Sales.", ".hidden", "a..b"),
    # Blank and whitespace-only.
    *c("blank / whitespace-only", CONNECTION, "display_name", "", "   ", "\t\n", "\u00a0\u3000"),
    *c("blank / whitespace-only", CONNECTION, "hostname", "", " "),
    *c("blank / whitespace-only", CONNECTION, "database", "", "  "),
    *c("blank / whitespace-only", MAPPING, "immuta_user", "", "   "),
    *c("blank / whitespace-only", MAPPING, "connection_id", ""),
    *c("blank / whitespace-only", MAPPING, "postgres.username", " "),
    *c("blank / whitespace-only", PRINCIPAL, "role_name", ""),
    *c("blank / whitespace-only", PRINCIPAL, "hostname", " "),
    *c("blank / whitespace-only", PRINCIPAL, "database", ""),
    *c("blank / whitespace-only", PRINCIPAL, "policy_name", " "),
    *c("blank / whitespace-only", PRINCIPAL, "external_id", " "),
    *c("blank / whitespace-only", PREFLIGHT, "hostname", ""),
    *c("blank / whitespace-only", PREFLIGHT, "database", " "),
    *c("blank / whitespace-only", DATA_OBJECTS, "connection_id", "   "),
    *c("blank / whitespace-only", PROVIDER, "username", ""),
    *c("blank / whitespace-only", PROVIDER, "sslrootcert", " "),
    *c("blank / whitespace-only", PROVIDER, "aws.region", ""),
    *c("blank / whitespace-only", PROVIDER, "aws.access_key_id", " "),
    *c("blank / whitespace-only", PROVIDER, "aws.identity_store_id", "\t"),
    *c("blank / whitespace-only", FUNCTION, "region", ""),
    *c("blank / whitespace-only", FUNCTION, "db_username", " "),
    # Leading and trailing spaces.
    *c("leading / trailing spaces", CONNECTION, "display_name", " Prod", "Prod "),
    *c("leading / trailing spaces", CONNECTION, "hostname", " db.example.com"),
    *c("leading / trailing spaces", CONNECTION, "database", "immuta "),
    *c("leading / trailing spaces", MAPPING, "immuta_user", " alice", "alice "),
    *c("leading / trailing spaces", MAPPING, "postgres.username", "alice "),
    *c("leading / trailing spaces", MAPPING, "connection_id", f" {VALID_CID}"),
    *c("leading / trailing spaces", PROVIDER, "username", " postgres"),
    *c("leading / trailing spaces", PRINCIPAL, "region", " us-east-1"),
    *c("leading / trailing spaces", PRINCIPAL, "role_name", "svc "),
    *c("leading / trailing spaces", FUNCTION, "region", "us-east-1 "),
    # Control characters (HCL \\u escapes; NUL included).
    *c(
        "control characters",
        CONNECTION,
        "display_name",
        "a\x00b",
        "a\x01b",
        "\x1b[31mred\x1b[0m",
        "tab\tinside",
        "line\nbreak",
        "del\x7f",
        "c1\x85",
    ),
    *c("control characters", MAPPING, "immuta_user", "a\x00b", "bell\x07"),
    *c("control characters", CONNECTION, "hostname", "db\x00.example.com"),
    *c("control characters", CONNECTION, "database", "imm\x1futa"),
    *c("control characters", MAPPING, "postgres.username", "a\rb"),
    *c("control characters", MAPPING, "connection_id", "db.example.com:5432/immuta/Va\x01lid"),
    *c("control characters", PROVIDER, "username", "post\x00gres"),
    *c("control characters", PRINCIPAL, "external_id", "Ext\x01Id-secret"),
    *c("control characters", PRINCIPAL, "db_username", "svc\x00"),
    *c("control characters", PREFLIGHT, "database", "a\x0bb"),
    *c("control characters", FUNCTION, "db_username", "a\x00b"),
    # Zero-width, bidi and other invisible format characters.
    *c(
        "zero-width / bidi / invisible",
        CONNECTION,
        "display_name",
        "Prod\u200b",
        "\u200d",
        "\ufeffProd",
        "Pr\u2060od",
        "\u200fProd",
        "Prod\u202e",
        "Prod\U000e0001",
        "Prod\ue000",
    ),
    *c("zero-width / bidi / invisible", MAPPING, "immuta_user", "ali\u200bce", "\u202egnp.exe"),
    *c("zero-width / bidi / invisible", CONNECTION, "hostname", "db\u200c.example.com"),
    *c("zero-width / bidi / invisible", PROVIDER, "aws.identity_store_id", "d-1234567890\u200b"),
    # Very long strings.
    *c("long strings", CONNECTION, "display_name", "A" * KB10, "B" * 256),
    *c("long strings", CONNECTION, "hostname", "h" * KB10),
    *c("long strings", CONNECTION, "database", "d" * 64, "é" * 32),
    *c("long strings", MAPPING, "immuta_user", "u" * KB10),
    *c("long strings", MAPPING, "connection_id", "db.example.com:5432/immuta/" + "n" * KB10),
    *c("long strings", MAPPING, "postgres.username", "p" * KB10),
    *c("long strings", PRINCIPAL, "role_name", "r" * 65),
    *c("long strings", PRINCIPAL, "policy_name", "p" * 129),
    *c("long strings", PRINCIPAL, "path", "/" + "a" * 512 + "/"),
    *c("long strings", PRINCIPAL, "external_id", "x" * 1225),
    *c("long strings", PRINCIPAL, "db_username", "é" * 32),
    *c("long strings", PREFLIGHT, "database", "d" * KB10),
    *c("long strings", PROVIDER, "username", "u" * KB10),
    *c("long strings", FUNCTION, "db_username", "u" * 64),
    # SQL injection where the value is not a legal one anyway.
    *c("SQL injection", CONNECTION, "display_name", DROP_TABLE),  # has a period
    *c("SQL injection", CONNECTION, "hostname", "db'; DROP TABLE immuta.connections; --"),
    *c("SQL injection", MAPPING, "connection_id", DROP_TABLE),
    *c("SQL injection", MAPPING, "aws.principal", "r'; DROP TABLE immuta.user_mappings; --"),
    *c("SQL injection", PRINCIPAL, "role_name", "svc'; DROP ROLE postgres; --"),
    *c("SQL injection", PRINCIPAL, "db_username", "svc'; DROP/*"),
    *c("SQL injection", PRINCIPAL, "external_id", "x' OR '1'='1"),
    *c("SQL injection", DATA_OBJECTS, "object_type", "table' OR '1'='1"),
    *c("SQL injection", PROVIDER, "auth_method", "password'; --"),
    *c("SQL injection", FUNCTION, "region", "us-east-1'; --"),
    # Quotes and backslashes where the grammar does not allow them.
    *c("quotes / backslashes", PRINCIPAL, "role_name", 'svc"quoted"', "svc\\x"),
    *c("quotes / backslashes", PRINCIPAL, "policy_name", "p'q"),
    *c("quotes / backslashes", PRINCIPAL, "path", "/a\\b c/"),
    *c("quotes / backslashes", MAPPING, "aws.principal", 'bob"', extra=()),
    *c("quotes / backslashes", FUNCTION, "db_resource_id", 'db-"X"'),
    # Unicode where only ASCII is allowed.
    *c("unicode", PRINCIPAL, "role_name", "rôle", "🚀"),
    *c("unicode", PRINCIPAL, "region", "us-éast-1"),
    *c("unicode", FUNCTION, "db_resource_id", "db-ÄBC"),
    # Numbers: ports and timeouts out of range, fractional, huge, of the wrong type.
    *c(
        "invalid ports / numbers",
        CONNECTION,
        "port",
        0,
        -1,
        65536,
        1.5,
        Raw("1e30"),
        Raw("99999999999999999999999"),
        Raw("-0.0001"),
    ),
    *c("invalid ports / numbers", CONNECTION, "port", "abc", True, alone=True),
    *c("invalid ports / numbers", PRINCIPAL, "port", 70000, 0.5),
    *c("invalid ports / numbers", PREFLIGHT, "port", -5, 65535.5),
    *c("invalid ports / numbers", PROVIDER, "connect_timeout", 0, 301, 1.5, -1),
    *c("invalid ports / numbers", PROVIDER, "connect_timeout", "ten", alone=True),
    # Unknown enum values (case matters).
    *c("unknown enum values", CONNECTION, "deployment_type", "SELF_MANAGED", "mysql", "", "rds "),
    *c("unknown enum values", CONNECTION, "on_missing_privileges", "ignore", "ERROR"),
    *c("unknown enum values", CONNECTION, "object_sync", "auto"),
    *c("unknown enum values", MAPPING, "postgres.mode", "USERNAME", "root"),
    *c("unknown enum values", MAPPING, "aws.user_type", "IAM_ROLE", "role"),
    *c("unknown enum values", DATA_OBJECTS, "object_type", "TABLE", "index"),
    *c("unknown enum values", PREFLIGHT, "deployment_type", "Aurora"),
    *c("unknown enum values", PROVIDER, "auth_method", "PASSWORD"),
    *c("unknown enum values", PROVIDER, "sslmode", "REQUIRE", "bogus", ""),
    # Malformed ARNs, role and policy names, paths, account and resource IDs, regions, URLs.
    *c(
        "malformed ARNs / names / IDs",
        PROVIDER,
        "aws.role_arn",
        "not-an-arn",
        "arn:aws:iam::123:role/x",
        "arn:aws:iam::123456789012:user/x",
    ),
    *c(
        "malformed ARNs / names / IDs",
        PROVIDER,
        "aws.endpoint_url",
        "ftp://x",
        "127.0.0.1:5000",
        "javascript:alert(1)",
    ),
    *c(
        "malformed ARNs / names / IDs",
        MAPPING,
        "aws.principal",
        "arn:aws:iam::12345678901:role/x",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/a b",
        "arn:aws:sts::123456789012:assumed-role/x/y",
        "role with space",
        "r" * 65,
        "arn:aws:iam::123456789012:user/bob",
        "*",
        None,
    ),
    *c(
        "malformed ARNs / names / IDs",
        MAPPING,
        "aws.principal",
        "arn:aws:iam::123456789012:role/r",
        extra=(("aws.user_type", "iam_user"),),
    ),
    *c(
        "malformed ARNs / names / IDs",
        MAPPING,
        "aws.principal",
        "someone",
        extra=(("aws.user_type", "unset"),),
    ),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "role_name", "svc/x", "a b"),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "path", "immuta", "//"),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "policy_name", "p q"),
    *c(
        "malformed ARNs / names / IDs",
        PRINCIPAL,
        "aws_account_id",
        "12345678901",
        "1234567890123",
        "12345678901a",
    ),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "immuta_account_id", "abc"),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "db_resource_id", "mydb", "db-abc", "cluster-"),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "region", "US-EAST-1", "us-east-1a"),
    *c("malformed ARNs / names / IDs", PRINCIPAL, "db_username", "*", "svc?"),
    # Email addresses and other non-IDs as IAM Identity Center User IDs.
    *c(
        "email as Identity Center ID",
        MAPPING,
        "aws.principal",
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "12345",
        "{9067c1a2b3-1c2d3e4f-5a6b-7c8d-9e0f-123456789abc}",
        "d-1234567890",
        extra=(("aws.user_type", "identity_center_user"),),
    ),
    # Malformed connection IDs.
    *c(
        "malformed connection IDs",
        MAPPING,
        "connection_id",
        "garbage",
        "db.example.com/immuta/Valid",
        "db.example.com:0/immuta/Valid",
        ":5432/immuta/Valid",
        "db.example.com:70000/immuta/Valid",
        "db.example.com:abc/immuta/Valid",
        "db.example.com:5432/immuta/",
        "db.example.com:5432//Valid",
        "db.example.com:5432/immuta/a/b",
        "db.example.com:-1/immuta/Valid",
        "db.example.com:+5432/immuta/Valid",
    ),
    *c(
        "malformed connection IDs",
        DATA_OBJECTS,
        "connection_id",
        "db.example.com:5432",
        "db.example.com:5432/immuta",
    ),
    # Bad function arguments.
    *c("bad function arguments", FUNCTION, "region", "US-EAST-1", "us-east-1a"),
    *c(
        "bad function arguments",
        FUNCTION,
        "account_id",
        "12345",
        "1234567890123",
        Raw("012345678901"),  # a number: the leading zero is lost, 11 digits remain
    ),
    *c("bad function arguments", FUNCTION, "db_resource_id", "mydb", "db-abc", ""),
    *c("bad function arguments", FUNCTION, "db_username", "", "a/b"),
    *c("bad function arguments", FUNCTION, "db_username", Raw("null")),
    *c("bad function arguments", FUNCTION, "region", Raw('["us-east-1"]')),
    *c(
        "bad function arguments",
        FUNCTION,
        "db_username",
        None,
        extra=(("__args__", '"us-east-1", "123456789012", "db-ABC"'),),
    ),
    *c(
        "bad function arguments",
        FUNCTION,
        "",
        None,
        extra=(("__args__", '"us-east-1", "123456789012", "db-ABC", "u", "extra"'),),
    ),
]

# Rules across attributes of the provider block: each in a block of its own.
PROVIDER_RULES: list[Case] = [
    Case(
        "provider cross-attribute rules",
        PROVIDER,
        "aws.region",
        None,
        extra=(("auth_method", "aws_access_key"),),
    ),
    Case(
        "provider cross-attribute rules",
        PROVIDER,
        "aws.role_arn",
        None,
        extra=(("auth_method", "aws_assumed_role"), ("aws.region", "us-east-1")),
    ),
    Case(
        "provider cross-attribute rules",
        PROVIDER,
        "username",
        "someone-else",
        extra=(
            ("auth_method", "aws_assumed_role"),
            ("aws.region", "us-east-1"),
            ("aws.role_arn", "arn:aws:iam::123456789012:role/immuta-svc"),
            ("aws.external_id", "ExtId-valid-0001"),
        ),
    ),
]

# The same rules through environment variables (one validate run per environment).
ENV_CASES: list[tuple[dict[str, str], list[tuple[str, str]]]] = [
    (
        {"IMMUTA_PG_AUTH_METHOD": "PASSWORD", "PGSSLMODE": "require ", "PGCONNECT_TIMEOUT": "1.5"},
        [
            ("auth_method", "IMMUTA_PG_AUTH_METHOD"),
            ("sslmode", "PGSSLMODE"),
            ("connect_timeout", "PGCONNECT_TIMEOUT"),
        ],
    ),
    (
        {"IMMUTA_PG_AUTH_METHOD": "aws_access_key"},
        [
            ("aws.region", "AWS_REGION"),
            ("aws.access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws.secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ],
    ),
]


def corpus_counts() -> Counter:
    counts: Counter = Counter()
    for case in REFUSED_AT_VALIDATE + PROVIDER_RULES:
        counts[(case.category, "refused at validate")] += 1
    for _, expected in ENV_CASES:
        counts[("environment variables", "refused at validate")] += len(expected)
    for case in plan_refusals(FakeWorld()) + apply_refusals(FakeWorld()):
        counts[(case.category, f"refused at {case.stage}")] += 1
    for accepted in accepted_cases():
        counts[(accepted.category, "accepted verbatim")] += 1
    return counts


# ---------------------------------------------------------------------- accepted verbatim


@dataclass(frozen=True)
class Accepted:
    category: str
    kind: str  # "display_name", "immuta_user", "postgres.username", "filter", "function"
    value: Any
    extra: Any = None


ACCEPTED_DISPLAY_NAMES = [
    ("SQL injection", DROP_SCHEMA),
    ("SQL injection", "Robert'); DROP TABLE immuta_connections;--"),
    ("SQL injection", "$$ dollar $$; COMMIT; --"),
    ("quotes / backslashes", "quote\"d 'single' `back`"),
    ("quotes / backslashes", "back\\slash \\\\ \\n \\u0000"),
    ("unicode", "🚀 Launch 🎉"),
    ("unicode", "Cafe\u0301 Zoe\u0308 a\u0336"),  # combining marks
    ("unicode", "שלום עולם"),  # right-to-left script (letters, no bidi controls)
    ("unicode", "名前 テスト"),
    ("unicode", "ＤＡＴＡ"),  # fullwidth letters: not the restricted word
    ("restricted words", "Data Lake"),  # restricted only as the whole name
    ("template sequences", "${not_interpolated} %{if true}x%{endif}"),
    ("connection ID characters", "100% /slash #hash %2F"),
    ("long strings", "L" * 255),
]
ACCEPTED_USERS = [
    ("SQL injection", DROP_TABLE),
    ("SQL injection", DROP_SCHEMA),
    ("quotes / backslashes", 'O\'Brien "the \\"quoted\\""'),
    ("quotes / backslashes", "back\\slash\\\\"),
    ("connection ID characters", "user#with#hash%25/slash@example.com"),
    ("unicode", "🙂 émoji"),
    ("unicode", "e\u0301\u0301 combining"),
    ("unicode", "עברית user"),
    ("long strings", "u" * 255),
    ("periods", "alice.smith@example.com"),
    ("restricted words", "DATA"),
    ("template sequences", "${user} %{x}"),
]
ACCEPTED_PG_USERNAMES = [
    ("SQL injection", DROP_TABLE),
    ("quotes / backslashes", '"quoted" Role\\'),
]
ACCEPTED_FILTERS = [
    ("SQL injection", "schema", DROP_TABLE),
    ("SQL injection", "database", DROP_SCHEMA),
    ("SQL injection", "name_pattern", "*'; DROP TABLE immuta.connections; --"),
    ("unicode", "schema", "Ünï\u0301 שלום"),
]
ACCEPTED_FUNCTION_CALLS = [
    # (category, arguments as HCL, expected result)
    ("IAM wildcards", '"us-east-1", "123456789012", "db-ABC", "*"', "db-ABC/*"),
    (
        "SQL injection",
        f'"us-east-1", "123456789012", "db-ABC", {literal(DROP_TABLE)}',
        f"db-ABC/{DROP_TABLE}",
    ),
    ("quotes / backslashes", '"us-east-1", "123456789012", "db-ABC", "a\\"b"', 'db-ABC/a"b'),
    ("unicode", '"us-east-1", "123456789012", "db-ABC", "名前"', "db-ABC/名前"),
    ("numbers for strings", '"us-east-1", 123456789012, "db-ABC", "u"', "db-ABC/u"),
]


def nfc(value: str) -> str:
    """Terraform holds every string in NFC (cty normalises on creation), so a combining
    sequence reaches the provider composed; from there on it must be kept byte for byte."""
    return unicodedata.normalize("NFC", value)


# A PostgreSQL login role whose name and password are hostile but legal.
WEIRD_ROLE = 'weird "user" 名 \\'
WEIRD_PASSWORD = "pa'ss\"w\\ord 🔑 $1 ;-- DROP ROLE postgres"


def accepted_cases() -> list[Accepted]:
    return (
        [Accepted(cat, "display_name", v) for cat, v in ACCEPTED_DISPLAY_NAMES]
        + [Accepted(cat, "immuta_user", v) for cat, v in ACCEPTED_USERS]
        + [Accepted(cat, "postgres.username", v) for cat, v in ACCEPTED_PG_USERNAMES]
        + [Accepted(cat, "filter", v, attr) for cat, attr, v in ACCEPTED_FILTERS]
        + [Accepted(cat, "function", args, want) for cat, args, want in ACCEPTED_FUNCTION_CALLS]
        + [Accepted("provider credentials", "provider", WEIRD_PASSWORD, WEIRD_ROLE)]
    )


# ---------------------------------------------------------------------- plan / apply time


@dataclass(frozen=True)
class Late:
    """A case refused only when Terraform plans or applies: it needs the server."""

    category: str
    stage: str  # "plan" or "apply"
    block: str  # HCL of the resource, data source or import block
    address: str
    names: str  # what the error must name (an attribute, or the import ID)
    by_id: bool = False  # an import: its diagnostics carry no address


class FakeWorld:
    """Stand-in values for counting cases without a server."""

    host, port, database, base = "127.0.0.1", 5432, "immuta_x", "Hostile Base"

    @property
    def base_id(self) -> str:
        return f"{self.host}:{self.port}/{self.database}/{self.base}"


def plan_refusals(w: Any) -> list[Late]:
    cases: list[Late] = []
    prefix = f"{w.host}:{w.port}/{w.database}"
    # (category, resource type, import ID, what the error must say). Terraform attaches no
    # address to an import's diagnostics: the ID (or its offending part) identifies it.
    imports = [
        ("malformed import IDs", CONNECTION, "garbage", "'garbage'"),
        ("malformed import IDs", CONNECTION, prefix, repr(prefix)),
        ("malformed import IDs", CONNECTION, f"{w.host}:99999/{w.database}/x", "'99999'"),
        ("malformed import IDs", CONNECTION, f"{prefix}/Not Registered", "'Not Registered'"),
        (
            "SQL injection",
            CONNECTION,
            f"{prefix}/{DELETE_ALL}",
            f"No connection named {DELETE_ALL!r}",
        ),
        ("malformed import IDs", MAPPING, "no-hash-here", "'no-hash-here'"),
        ("malformed import IDs", MAPPING, f"{w.base_id}#", repr(f"{w.base_id}#")),
        ("malformed import IDs", MAPPING, "junk-connection#alice", "'junk-connection'"),
        (
            "SQL injection",
            MAPPING,
            f"{w.base_id}#{DELETE_ALL}",
            f"Immuta user {DELETE_ALL!r}",
        ),
        ("malformed import IDs", PRINCIPAL, "not a role", '"not a role"'),
        ("malformed import IDs", PRINCIPAL, "arn:aws:iam::1:role/x", '"arn:aws:iam::1:role/x"'),
    ]
    for n, (category, resource_type, import_id, names) in enumerate(imports):
        name = f"i_{n}"
        body = {
            CONNECTION: dict(BASES[CONNECTION], display_name=f"Import {n}"),
            MAPPING: dict(BASES[MAPPING], immuta_user=f"import-{n}"),
            PRINCIPAL: dict(BASES[PRINCIPAL], role_name=f"import-{n}"),
        }[resource_type]
        config = Config()
        config.block(f'resource "{resource_type}" "{name}"', "", body)
        config.raw(block("import", to=Raw(f"{resource_type}.{name}"), id=import_id))
        cases.append(
            Late(category, "plan", config.text(), f"{resource_type}.{name}", names, by_id=True)
        )
    data = [
        (
            "SQL injection",
            PREFLIGHT,
            {"hostname": w.host, "port": w.port, "database": DROP_SCHEMA},
            "fix `database`",
        ),
        (
            "invalid ports / numbers",
            PREFLIGHT,
            {"hostname": w.host, "port": 1, "database": "x"},
            f"{w.host}:1",
        ),
        (
            "SQL injection",
            DATA_OBJECTS,
            {"connection_id": f"{prefix}/{DELETE_ALL}"},
            "connection_id",
        ),
        (
            "malformed connection IDs",
            DATA_OBJECTS,
            {"connection_id": f"{w.host}:{w.port}/no_such_db/{w.base}"},
            "no_such_db",
        ),
    ]
    for n, (category, kind, body, names) in enumerate(data):
        name = f"d_{n}"
        config = Config()
        config.block(f'data "{kind.removeprefix("data.")}" "{name}"', "", body)
        cases.append(Late(category, "plan", config.text(), f"{kind}.{name}", names))
    # An AWS mapping on a self-managed connection, refused when planned.
    config = Config()
    config.block(
        f'resource "{MAPPING}" "p_aws"',
        "",
        {"connection_id": w.base_id, "immuta_user": "bob", "aws.user_type": "unset"},
    )
    cases.append(Late("cross-resource rules", "plan", config.text(), f"{MAPPING}.p_aws", "aws"))
    return cases


def apply_refusals(w: Any) -> list[Late]:
    prefix = f"{w.host}:{w.port}/{w.database}"
    connection = dict(BASES[CONNECTION], hostname=w.host, port=w.port, database=w.database)
    resources = [
        ("SQL injection", CONNECTION, dict(connection, display_name="A1", database=DROP_SCHEMA)),
        ("duplicate in another case", CONNECTION, dict(connection, display_name=w.base.upper())),
        ("invalid ports / numbers", CONNECTION, dict(connection, display_name="A3", port=1)),
        (
            "SQL injection",
            MAPPING,
            {"connection_id": f"{prefix}/{DELETE_ALL}", "immuta_user": "alice"},
        ),
        (
            "malformed connection IDs",
            MAPPING,
            {"connection_id": f"{w.host}:{w.port}/no_such_db'--/{w.base}", "immuta_user": "a"},
        ),
    ]
    names = ["fix `database`", "display_name", f"{w.host}:1", "fix connection_id", "no_such_db"]
    cases = []
    for n, ((category, resource_type, body), name) in enumerate(zip(resources, names, strict=True)):
        config = Config()
        config.block(f'resource "{resource_type}" "a_{n}"', "", body)
        cases.append(Late(category, "apply", config.text(), f"{resource_type}.a_{n}", name))
    return cases


# ---------------------------------------------------------------------- building and checking


def case_address(case: Case, n: int) -> tuple[str, str]:
    """(block header, address) of the n-th case."""
    if case.target == PROVIDER:
        return 'provider "immuta"', f"{PROVIDER_ADDRESS}.p_{n}"
    if case.target.startswith("data."):
        kind = case.target.removeprefix("data.")
        return f'data "{kind}" "c_{n}"', f"{case.target}.c_{n}"
    return f'resource "{case.target}" "c_{n}"', f"{case.target}.c_{n}"


@dataclass
class Pack:
    """Provider cases sharing one provider block."""

    cases: list[Case]
    taken: set[str]  # attributes the cases set
    closed: bool = False  # a Terraform-level type error: nothing else in this block


def validate_config(cases: list[Case]) -> tuple[Config, dict[str, list[Case]]]:
    """One configuration holding every case; returns it and address -> cases.

    Provider cases share provider blocks (each costs a provider process): a block holds at
    most one case per attribute; a Terraform-level type error gets a block of its own.
    """
    config = Config()
    config.raw(REQUIRED_PROVIDERS)
    by_address: dict[str, list[Case]] = {}
    packs: list[Pack] = []
    provider_cases = [c for c in cases if c.target == PROVIDER]
    # Rules across attributes and Terraform-level type errors open blocks of their own first;
    # ordinary cases then fill any block whose attributes they do not touch.
    for case in sorted(provider_cases, key=lambda c: not (c.alone or c.extra)):
        if case.alone or case.extra:
            packs.append(Pack([case], {case.attribute, *dict(case.extra)}, closed=case.alone))
            continue
        pack = next((p for p in packs if not p.closed and case.attribute not in p.taken), None)
        if pack is None:
            pack = Pack([], set())
            packs.append(pack)
        pack.cases.append(case)
        pack.taken.add(case.attribute)
    for n, pack in enumerate(packs):
        members = pack.cases
        values: dict[str, Any] = {"alias": f"p_{n}", **BASES[PROVIDER]}
        for case in members:
            values.update(dict(case.extra))
            if case.value is not None:
                values[case.attribute] = case.value
        header, address = case_address(members[0], n)
        config.block(header, address, values)
        # Terraform validates only provider configurations that something uses.
        config.block(
            f'resource "{CONNECTION}" "uses_p_{n}"',
            f"{CONNECTION}.uses_p_{n}",
            {"provider": Raw(f"immuta.p_{n}"), **BASES[CONNECTION]},
        )
        by_address[address] = members
    for n, case in enumerate(cases):
        if case.target == PROVIDER:
            continue
        if case.target == FUNCTION:
            config.local(f"f_{n}", function_call(case))
            by_address[f"local.f_{n}"] = [case]
            continue
        header, address = case_address(case, n)
        values = {k: v for k, v in case.attributes().items() if v is not None}
        config.block(header, address, values)
        by_address[address] = [case]
    return config, by_address


BAD = ("Traceback", "Unexpected provider error", "This is a bug in the provider")


def diag_text(diagnostic: dict) -> str:
    return diagnostic.get("summary", "") + "\n" + diagnostic.get("detail", "")


def names_attribute(diagnostic: dict, located_attribute: str | None, case: Case) -> bool:
    """The diagnostic points at the attribute's line, or its text names it."""
    if case.target == FUNCTION:
        return not case.attribute or f'"{case.attribute}"' in diagnostic.get("detail", "")
    leaf = case.attribute.rsplit(".", 1)[-1]
    if located_attribute == case.attribute:
        return True
    text = diag_text(diagnostic)
    return case.attribute in text or f"{leaf} " in text or f"{leaf}\n" in text


def check_validate_result(
    config: Config, by_address: dict[str, list[Case]], result: dict
) -> Counter:
    """Every case refused by its own diagnostic; no diagnostic elsewhere. Outcomes counted."""
    problems: list[str] = []
    found: dict[str, list[tuple[dict, str | None]]] = {}
    for diagnostic in result["diagnostics"]:
        where = config.locate(diagnostic)
        if where is None:
            problems.append(f"diagnostic at no known block: {diagnostic}")
            continue
        if diagnostic.get("address") and diagnostic["address"] != where.address:
            problems.append(f"address {diagnostic['address']} is not {where.address}")
        found.setdefault(where.address, []).append((diagnostic, where.attribute))
        if any(b in diag_text(diagnostic) for b in BAD):
            problems.append(f"{where.address}: {diag_text(diagnostic)}")
    outcomes: Counter = Counter()
    for address, cases in by_address.items():
        diagnostics = [d for d in found.pop(address, []) if d[0]["severity"] == "error"]
        for case in cases:
            if not any(names_attribute(d, attr, case) for d, attr in diagnostics):
                problems.append(
                    f"{address} {case.attribute}={case.value!r:.80}: not refused naming the "
                    f"attribute; diagnostics: {[diag_text(d)[:200] for d, _ in diagnostics]}"
                )
                continue
            if case.attribute in SECRETS and isinstance(case.value, str):
                echoed = [d for d, _ in diagnostics if case.value in diag_text(d)]
                if echoed and len(case.value.strip()) > 1:
                    problems.append(f"{address}: the external ID is echoed: {echoed}")
            outcomes[(case.category, "refused at validate")] += 1
    for address, diagnostics in found.items():
        problems.append(
            f"unexpected diagnostics on {address}: {[diag_text(d) for d, _ in diagnostics]}"
        )
    assert not problems, "\n".join(problems)
    return outcomes


# ---------------------------------------------------------------------- fixtures


@dataclass
class World:
    pg: PostgresServer
    db: Database
    tf: Terraform
    base: str = "Hostile Base"

    @property
    def host(self) -> str:
        return self.db.host

    @property
    def port(self) -> int:
        return self.db.port

    @property
    def database(self) -> str:
        return self.db.name

    @property
    def base_id(self) -> str:
        return f"{self.host}:{self.port}/{self.database}/{self.base}"

    def provider(self, alias: str | None = None, user: str | None = None, pw: str | None = None):
        values: dict[str, Any] = {}
        if alias:
            values["alias"] = alias
        values["username"] = user or self.pg.user
        values["password"] = pw or self.pg.password
        config = Config()
        config.block('provider "immuta"', "", values)
        return config.text()

    def connection(self, name: str, display_name: str) -> str:
        config = Config()
        config.block(
            f'resource "{CONNECTION}" "{name}"',
            "",
            dict(
                BASES[CONNECTION],
                display_name=display_name,
                hostname=self.host,
                port=self.port,
                database=self.database,
            ),
        )
        return config.text()


@pytest.fixture
def world(pg17: PostgresServer, tmp_path) -> Iterator[World]:
    db = pg17.temp_database()
    with pg17.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(WEIRD_ROLE), sql.Literal(WEIRD_PASSWORD)
            )
        )
    try:
        yield World(pg17, db, Terraform(tmp_path / "accepted"))
    finally:
        db.drop()
        pg17.drop_role(WEIRD_ROLE)


def diagnostics_of(result_stdout: str) -> list[dict]:
    found = []
    for line in result_stdout.splitlines():
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("type") == "diagnostic":
                found.append(message["diagnostic"])
    return found


def print_outcomes(outcomes: Counter) -> None:
    by_category: dict[str, Counter] = {}
    for (category, outcome), count in outcomes.items():
        by_category.setdefault(category, Counter())[outcome] += count
    print(f"\nhostile cases: {sum(outcomes.values())}")
    for category in sorted(by_category):
        parts = ", ".join(f"{o} {n}" for o, n in sorted(by_category[category].items()))
        print(f"  {category}: {parts}")


# ---------------------------------------------------------------------- tests


def test_corpus_size_and_categories() -> None:
    """The corpus is big enough and covers every category the issue lists (no server)."""
    counts = corpus_counts()
    print_outcomes(counts)
    categories = {category for category, _ in counts}
    assert sum(counts.values()) >= 60
    assert categories >= {
        "restricted words",
        "periods",
        "blank / whitespace-only",
        "leading / trailing spaces",
        "control characters",
        "zero-width / bidi / invisible",
        "long strings",
        "SQL injection",
        "quotes / backslashes",
        "unicode",
        "invalid ports / numbers",
        "unknown enum values",
        "malformed ARNs / names / IDs",
        "email as Identity Center ID",
        "malformed connection IDs",
        "malformed import IDs",
        "bad function arguments",
    }
    # Every attribute of every schema that takes a string or a number is exercised.
    exercised = {(c.target, c.attribute) for c in REFUSED_AT_VALIDATE + PROVIDER_RULES}
    for target, attributes in {
        CONNECTION: ["display_name", "deployment_type", "hostname", "port", "database",
                     "on_missing_privileges", "object_sync"],
        MAPPING: ["connection_id", "immuta_user", "postgres.mode", "postgres.username",
                  "aws.user_type", "aws.principal"],
        PRINCIPAL: ["role_name", "path", "policy_name", "region", "aws_account_id",
                    "db_resource_id", "db_username", "immuta_account_id", "external_id",
                    "hostname", "port", "database"],
        PREFLIGHT: ["hostname", "port", "database", "deployment_type"],
        DATA_OBJECTS: ["connection_id", "object_type"],
        PROVIDER: ["auth_method", "username", "sslmode", "sslrootcert", "connect_timeout",
                   "aws.region", "aws.access_key_id", "aws.role_arn", "aws.endpoint_url",
                   "aws.identity_store_id"],
        FUNCTION: list(FUNCTION_PARAMS),
    }.items():  # fmt: skip
        for attribute in attributes:
            assert (target, attribute) in exercised, (target, attribute)


def test_hostile_values_are_refused_or_kept_verbatim(world: World) -> None:
    outcomes: Counter = Counter()

    # (b) Accepted values: apply them all at once, then check they come back exactly.
    display_names = {f"n_{i}": v for i, (_, v) in enumerate(ACCEPTED_DISPLAY_NAMES)}
    users = {f"u_{i}": v for i, (_, v) in enumerate(ACCEPTED_USERS)}
    pg_users = {f"pu_{i}": v for i, (_, v) in enumerate(ACCEPTED_PG_USERNAMES)}
    stored_names = {nfc(v) for v in display_names.values()}
    config = Config()
    config.raw(world.provider() + world.provider("weird", WEIRD_ROLE, WEIRD_PASSWORD))
    config.raw(world.connection("base", world.base))
    for name, display_name in display_names.items():
        config.raw(world.connection(name, display_name))
    base_ref = Raw(f"{CONNECTION}.base.id")
    for name, user in users.items():
        config.block(
            f'resource "{MAPPING}" "{name}"', "", {"connection_id": base_ref, "immuta_user": user}
        )
    for name, username in pg_users.items():
        config.block(
            f'resource "{MAPPING}" "{name}"',
            "",
            {
                "connection_id": base_ref,
                "immuta_user": f"pg-{name}",
                "postgres.mode": "username",
                "postgres.username": username,
            },
        )
    for i, (_, attribute, value) in enumerate(ACCEPTED_FILTERS):
        config.block(
            f'data "immuta_postgres_data_objects" "q_{i}"',
            "",
            {"connection_id": base_ref, attribute: value},
        )
    for i, (_, args, _) in enumerate(ACCEPTED_FUNCTION_CALLS):
        config.raw(f'output "f_{i}" {{\n  value = provider::immuta::rds_db_user_arn({args})\n}}')
    config.block(
        'data "immuta_postgres_preflight" "weird"',
        "",
        {
            "provider": Raw("immuta.weird"),
            "hostname": world.host,
            "port": world.port,
            "database": world.database,
        },
    )
    config.raw('output "weird_user" {\n  value = data.immuta_postgres_preflight.weird.username\n}')
    tf = world.tf
    tf.write(REQUIRED_PROVIDERS + config.text(), with_required_providers=False)
    applied = tf.apply()
    assert not any(b in applied.output for b in BAD), applied.output

    with world.db.connect() as conn:
        keys = {r[0] for r in conn.execute("SELECT connection_key FROM immuta.connections")}
        mappings = dict(
            conn.execute("SELECT immuta_user, postgres_username FROM immuta.user_mappings")
        )
        assert conn.execute("SELECT to_regclass('immuta.connections')").fetchone()[0]
        assert conn.execute("SELECT to_regclass('immuta.user_mappings')").fetchone()[0]
    assert keys == stored_names | {world.base}, "stored byte for byte"
    for user in users.values():
        assert nfc(user) in mappings and mappings[nfc(user)] is None
    for name, username in pg_users.items():
        assert mappings[f"pg-{name}"] == nfc(username)
    resources = tf.resources()
    for name, display_name in display_names.items():
        assert resources[f"{CONNECTION}.{name}"]["display_name"] == nfc(display_name)
    for name, user in users.items():
        assert resources[f"{MAPPING}.{name}"]["immuta_user"] == nfc(user)
    for i in range(len(ACCEPTED_FILTERS)):
        assert resources[f"data.immuta_postgres_data_objects.q_{i}"]["count"] == 0
    outputs = tf.outputs()
    for i, (_, _, tail) in enumerate(ACCEPTED_FUNCTION_CALLS):
        assert outputs[f"f_{i}"].endswith(":dbuser:" + nfc(tail)), outputs[f"f_{i}"]
    assert outputs["weird_user"] == WEIRD_ROLE, "hostile username and password used verbatim"

    # Round trip through Read (empty plan) and through import by ID.
    tf.plan_is_empty()
    managed = {a: v for a, v in resources.items() if not a.startswith("data.")}
    tf.run("state", "rm", *managed)
    imports = "".join(
        block("import", to=Raw(address), id=values["id"]) for address, values in managed.items()
    )
    tf.write(imports, name="imports.tf", with_required_providers=False)
    imported = tf.apply()
    assert f"{len(managed)} imported" in imported.text, imported.output
    after = {a: v for a, v in tf.resources().items() if not a.startswith("data.")}
    assert after == managed, "import by ID gives back exactly the applied values"
    tf.plan_is_empty()
    for case in accepted_cases():
        outcomes[(case.category, "accepted verbatim")] += 1

    before = store_dump(world.db)
    assert "-- connections: " in before and DROP_SCHEMA in before

    # (a) Refused when validated: one configuration, one `terraform validate -json`.
    cases = REFUSED_AT_VALIDATE + PROVIDER_RULES
    validate_cfg, by_address = validate_config(cases)
    checker = Terraform(world.tf.workdir.parent / "refused")
    checker.write(validate_cfg.text(), with_required_providers=False)
    result = checker.validate()
    outcomes += check_validate_result(validate_cfg, by_address, result)
    assert store_dump(world.db) == before

    # The provider block's rules through environment variables.
    env_cfg = Config()
    env_cfg.raw(REQUIRED_PROVIDERS)
    # (An empty provider block is not validated by `terraform validate`: give it something.)
    env_cfg.block('provider "immuta"', PROVIDER_ADDRESS, BASES[PROVIDER])
    env_cfg.block(f'resource "{CONNECTION}" "c"', f"{CONNECTION}.c", BASES[CONNECTION])
    checker.write(env_cfg.text(), with_required_providers=False)
    for env, expected in ENV_CASES:
        done = checker.run("validate", "-json", "-no-color", check=False, env=env)
        diagnostics = json.loads(done.stdout)["diagnostics"]
        assert len(diagnostics) == len(expected), diagnostics
        for attribute, variable in expected:
            hits = [
                d
                for d in diagnostics
                if variable in d["detail"]
                and (attribute in d["detail"] or env.get(variable, "\0") in d["detail"])
            ]
            assert hits, (attribute, variable, diagnostics)
            assert not any(b in diag_text(d) for d in hits for b in BAD)
            outcomes[("environment variables", "refused at validate")] += 1
    assert store_dump(world.db) == before

    # (a) Refused at plan: import IDs, data sources, cross-resource rules.
    late = plan_refusals(world)
    planner = Terraform(world.tf.workdir.parent / "plan")
    planner.write(world.provider() + "".join(case.block for case in late))
    planner.init()
    planned = planner.run("plan", "-json", "-no-color", "-input=false", check=False)
    outcomes += check_late(late, planned)
    assert store_dump(world.db) == before

    # (a) Refused at apply: the rest of the plan still applies nothing to the store.
    late = apply_refusals(world)
    applier = Terraform(world.tf.workdir.parent / "apply")
    applier.write(world.provider() + "".join(case.block for case in late))
    applier.init()
    applied = applier.run(
        "apply", "-json", "-auto-approve", "-no-color", "-input=false", check=False
    )
    outcomes += check_late(late, applied)
    assert store_dump(world.db) == before
    assert applier.resources() == {}

    print_outcomes(outcomes)
    assert outcomes == corpus_counts()
    tf.destroy()
    assert store_dump(world.db) == ""


def check_late(cases: list[Late], result) -> Counter:
    """Each case refused by an error of its own that names what it must; nothing else."""
    assert result.returncode == 1, result.output
    diagnostics = [d for d in diagnostics_of(result.stdout) if d["severity"] == "error"]
    problems = []
    mine: dict[str, list[dict]] = {}
    for d in diagnostics:
        owners = [
            c
            for c in cases
            if d.get("address") == c.address
            or (not d.get("address") and c.by_id and c.names in diag_text(d))
        ]
        if len(owners) != 1:
            problems.append(f"diagnostic of {len(owners)} cases: {diag_text(d)}")
            continue
        mine.setdefault(owners[0].address, []).append(d)
    outcomes: Counter = Counter()
    for case in cases:
        found = mine.get(case.address, [])
        text = " ".join(
            diag_text(d) + " " + (d.get("snippet") or {}).get("code", "") for d in found
        )
        if not found or case.names not in text:
            problems.append(f"{case.address}: not refused naming {case.names!r}: {text!r}")
        elif any(b in text for b in BAD):
            problems.append(f"{case.address}: {text}")
        else:
            outcomes[(case.category, f"refused at {case.stage}")] += 1
    assert not problems, "\n".join(problems)
    return outcomes


# ---------------------------------------------------------------------- known bugs
# Each test below shows one defect in src/ (see docs/reliability.md); strict: when the
# defect is fixed the test passes and the marker must go.


def validate_only(tmp_path, cases: list[Case], env: dict[str, str] | None = None):
    config, by_address = validate_config(cases)
    tf = Terraform(tmp_path / "tf", env=env)
    tf.write(config.text(), with_required_providers=False)
    return config, by_address, tf.validate()


def test_percent_escapes_that_are_not_utf8_are_a_clear_error(tmp_path) -> None:
    cases = [
        *c("malformed connection IDs", MAPPING, "connection_id", f"{VALID_CID}%ff"),
        *c("malformed connection IDs", MAPPING, "connection_id", "db.example.com:5432/%C0%80/V"),
        *c("malformed connection IDs", DATA_OBJECTS, "connection_id", f"{VALID_CID}%e2%82"),
    ]
    config, by_address, result = validate_only(tmp_path, cases)
    check_validate_result(config, by_address, result)


def test_percent_encoded_control_characters_in_connection_ids_are_refused(tmp_path) -> None:
    cases = [
        *c("control characters", MAPPING, "connection_id", f"{VALID_CID}%00x"),
        *c("control characters", MAPPING, "connection_id", "db.example.com:5432/imm%0Auta/V"),
        *c("control characters", DATA_OBJECTS, "connection_id", f"{VALID_CID}%1b[31m"),
    ]
    config, by_address, result = validate_only(tmp_path, cases)
    check_validate_result(config, by_address, result)


def test_non_ascii_digits_and_letters_are_not_aws_ids(tmp_path) -> None:
    arabic = "١٢٣٤٥٦٧٨٩٠١٢"
    cases = [
        *c("unicode", FUNCTION, "account_id", arabic),
        *c("unicode", FUNCTION, "region", "us-east-١"),
        *c("unicode", PRINCIPAL, "aws_account_id", arabic),
        *c("unicode", MAPPING, "aws.principal", "rôle"),
        *c("unicode", MAPPING, "aws.principal", f"arn:aws:iam::{arabic}:role/x"),
        *c("unicode", PROVIDER, "aws.role_arn", f"arn:aws:iam::{arabic}:role/x"),
    ]
    config, by_address, result = validate_only(tmp_path, cases)
    check_validate_result(config, by_address, result)


def test_environment_values_get_the_attribute_rules(tmp_path) -> None:
    config = Config()
    config.raw(REQUIRED_PROVIDERS)
    config.block('provider "immuta"', PROVIDER_ADDRESS, {"aws.region": "us-east-1"})
    config.block(f'resource "{CONNECTION}" "c"', f"{CONNECTION}.c", BASES[CONNECTION])
    tf = Terraform(tmp_path / "tf")
    tf.write(config.text(), with_required_providers=False)
    tf.init()
    for variable, value in (
        ("PGUSER", "  "),
        ("IMMUTA_AWS_ROLE_ARN", "not-an-arn"),
        ("AWS_ENDPOINT_URL", "ftp://x"),
        ("PGCONNECT_TIMEOUT", "0"),
    ):
        env = {variable: value}
        if variable == "IMMUTA_AWS_ROLE_ARN":
            env.update(IMMUTA_PG_AUTH_METHOD="aws_assumed_role", IMMUTA_AWS_EXTERNAL_ID="ExtId-1")
        done = tf.run("validate", "-json", "-no-color", check=False, env=env)
        details = [d["detail"] for d in json.loads(done.stdout)["diagnostics"]]
        assert any(variable in d for d in details), (variable, details)


def test_data_object_filters_that_sql_cannot_take_are_refused_on_the_attribute(
    world: World,
) -> None:
    tf = world.tf
    tf.write(world.provider() + world.connection("base", world.base))
    tf.apply()
    # (A NUL in database or schema is refused at validate; see the corpus.)
    filters = [("name_pattern", "[z-a]"), ("name_pattern", "[[:bogus:]]")]
    late = []
    for n, (attribute, value) in enumerate(filters):
        config = Config()
        config.block(
            f'data "immuta_postgres_data_objects" "q_{n}"',
            "",
            {"connection_id": world.base_id, attribute: value},
        )
        late.append(
            Late(
                "SQL", "plan", config.text(), f"data.immuta_postgres_data_objects.q_{n}", attribute
            )
        )
    tf.write(
        world.provider() + world.connection("base", world.base) + "".join(x.block for x in late)
    )
    try:
        planned = tf.run("plan", "-json", "-no-color", "-input=false", check=False)
        check_late(late, planned)
    finally:
        tf.write(world.provider() + world.connection("base", world.base))
        tf.destroy()
