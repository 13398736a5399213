"""The provider block: its schema, environment fallbacks and the rules across its values."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..framework.diagnostics import Diagnostics, Path
from ..framework.schema import (
    SINGLE,
    Attribute,
    Block,
    Check,
    IntBetween,
    NestedBlock,
    OneOf,
    Schema,
)
from ..framework.types import NUMBER, STRING
from ..framework.values import UNKNOWN
from . import rules

DEFAULT_AUTH_METHOD = "password"
DEFAULT_SSLMODE = "prefer"
DEFAULT_CONNECT_TIMEOUT = 10


def _text(what: str) -> Check:
    return Check(lambda v: rules.text_problem(v, what), f"a non-blank {what}")


def _arn(value: str) -> str | None:
    return (
        rules.iam_principal_problem(value, "role")
        if value.startswith("arn:")
        else (f"{value!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT_ID:role/NAME).")
    )


AWS_BLOCK = Block(
    description="AWS settings for `aws_access_key` and `aws_assumed_role` authentication and "
    "for verifying AWS principals in user mappings.",
    attributes={
        "region": Attribute(
            STRING,
            "AWS region of the RDS or Aurora servers, used to sign IAM auth tokens.",
            optional=True,
            env=("AWS_REGION", "AWS_DEFAULT_REGION"),
            validators=[_text("region")],
        ),
        "access_key_id": Attribute(
            STRING,
            "AWS access key ID (`aws_access_key`).",
            optional=True,
            env=("AWS_ACCESS_KEY_ID",),
            validators=[_text("access key ID")],
        ),
        "secret_access_key": Attribute(
            STRING,
            "AWS secret access key (`aws_access_key`).",
            optional=True,
            sensitive=True,
            env=("AWS_SECRET_ACCESS_KEY",),
        ),
        "session_token": Attribute(
            STRING,
            "AWS session token for temporary access keys.",
            optional=True,
            sensitive=True,
            env=("AWS_SESSION_TOKEN",),
        ),
        "role_arn": Attribute(
            STRING,
            "ARN of the IAM role to assume (`aws_assumed_role`).",
            optional=True,
            env=("IMMUTA_AWS_ROLE_ARN",),
            validators=[Check(_arn, "an IAM role ARN")],
        ),
        "external_id": Attribute(
            STRING,
            "External ID the role's trust policy requires (`aws_assumed_role`).",
            optional=True,
            sensitive=True,
            env=("IMMUTA_AWS_EXTERNAL_ID",),
        ),
        "endpoint_url": Attribute(
            STRING,
            "Endpoint for every AWS API call (an AWS-compatible endpoint such as a "
            "local test server).",
            optional=True,
            env=("AWS_ENDPOINT_URL",),
            validators=[
                Check(
                    lambda v: (
                        None
                        if v.startswith(("http://", "https://"))
                        else f"{v!r} is not an http:// or https:// URL."
                    ),
                    "a URL",
                )
            ],
        ),
        "identity_store_id": Attribute(
            STRING,
            "IAM Identity Center identity store ID, to verify Identity Center user IDs "
            "in user mappings.",
            optional=True,
            env=("IMMUTA_IDENTITY_STORE_ID",),
            validators=[_text("identity store ID")],
        ),
    },
)

PROVIDER_SCHEMA = Schema(
    Block(
        description="Registers PostgreSQL 16/17 servers as Immuta connections and maps users.",
        attributes={
            "auth_method": Attribute(
                STRING,
                "How to authenticate to PostgreSQL: `password`, `aws_access_key` or "
                "`aws_assumed_role`. Default `password`.",
                optional=True,
                env=("IMMUTA_PG_AUTH_METHOD",),
                validators=[OneOf(rules.AUTH_METHODS)],
            ),
            "username": Attribute(
                STRING,
                "PostgreSQL user that registers connections; for `aws_assumed_role` the "
                "IAM role name (taken from `aws.role_arn` when unset).",
                optional=True,
                env=("PGUSER",),
                validators=[_text("username")],
            ),
            "password": Attribute(
                STRING,
                "PostgreSQL password (`password` authentication).",
                optional=True,
                sensitive=True,
                env=("PGPASSWORD",),
            ),
            "sslmode": Attribute(
                STRING,
                "libpq sslmode: " + ", ".join(rules.SSL_MODES) + ". Default `prefer`.",
                optional=True,
                env=("PGSSLMODE",),
                validators=[OneOf(rules.SSL_MODES)],
            ),
            "sslrootcert": Attribute(
                STRING,
                "Path of the CA certificate file for `verify-ca` and `verify-full`.",
                optional=True,
                env=("PGSSLROOTCERT",),
                validators=[_text("sslrootcert path")],
            ),
            "connect_timeout": Attribute(
                NUMBER,
                "Seconds to wait for each connection attempt (1 to 300). Default 10.",
                optional=True,
                env=("PGCONNECT_TIMEOUT",),
                validators=[IntBetween(1, 300)],
            ),
        },
        blocks={"aws": NestedBlock(AWS_BLOCK, SINGLE)},
    )
)


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    endpoint_url: str | None = None
    identity_store_id: str | None = None


@dataclass(frozen=True)
class Settings:
    """The provider block with environment fallbacks applied."""

    auth_method: str = DEFAULT_AUTH_METHOD
    username: str | None = None
    password: str | None = None
    sslmode: str = DEFAULT_SSLMODE
    sslrootcert: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    aws: AwsSettings = AwsSettings()


def effective(config: dict[str, Any] | None, block: Block) -> dict[str, Any]:
    """Configured values, else the first environment variable set, for one block."""
    if config is UNKNOWN:
        return dict.fromkeys(block.attributes, UNKNOWN)
    config = config or {}
    values: dict[str, Any] = {}
    for name, attr in block.attributes.items():
        value = config.get(name)
        if value is None:
            value = next((os.environ[e] for e in attr.env if os.environ.get(e)), None)
        values[name] = value
    return values


def _env_number(value: Any, variable: str, diags: Diagnostics, path: Path) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            diags.error("Invalid value", f"{variable}={value!r} is not a whole number.", path)
            return None
    return value


def or_default(value: Any, default: Any) -> Any:
    """`value` unless it is null; unknown values stay unknown."""
    return default if value is None else value


def settings_from(config: dict[str, Any], diags: Diagnostics) -> Settings:
    top = effective(config, PROVIDER_SCHEMA.block)
    aws = effective(config.get("aws"), AWS_BLOCK)
    top["connect_timeout"] = _env_number(
        top["connect_timeout"], "PGCONNECT_TIMEOUT", diags, ("connect_timeout",)
    )
    return Settings(
        auth_method=or_default(top["auth_method"], DEFAULT_AUTH_METHOD),
        username=top["username"],
        password=top["password"],
        sslmode=or_default(top["sslmode"], DEFAULT_SSLMODE),
        sslrootcert=top["sslrootcert"],
        connect_timeout=or_default(top["connect_timeout"], DEFAULT_CONNECT_TIMEOUT),
        aws=AwsSettings(**aws),
    )


def validate(config: dict[str, Any], diags: Diagnostics) -> None:
    """Rules that need more than one value; environment fallbacks count."""
    top = effective(config, PROVIDER_SCHEMA.block)
    aws = effective(config.get("aws"), AWS_BLOCK)
    aws_config = config.get("aws")
    _validate_environment(PROVIDER_SCHEMA.block, config, top, (), diags)
    _validate_environment(
        AWS_BLOCK, aws_config if isinstance(aws_config, dict) else {}, aws, ("aws",), diags
    )
    method = or_default(top["auth_method"], DEFAULT_AUTH_METHOD)
    if method is UNKNOWN or method not in rules.AUTH_METHODS:
        return
    if method == "password":
        return
    where = "aws_assumed_role" if method == "aws_assumed_role" else "aws_access_key"
    needed = ["region"] + (
        ["role_arn", "external_id"]
        if method == "aws_assumed_role"
        else ["access_key_id", "secret_access_key"]
    )
    for name in needed:
        if aws[name] is None:
            variable = AWS_BLOCK.attributes[name].env[0]
            diags.error(
                "Missing required argument",
                f'auth_method = "{where}" needs aws.{name} (or the {variable} '
                "environment variable).",
                ("aws", name),
            )
    if method == "aws_assumed_role":
        _check_role_username(top, aws, diags)


def _validate_environment(
    block: Block,
    configured: dict[str, Any],
    values: dict[str, Any],
    prefix: Path,
    diags: Diagnostics,
) -> None:
    """Values taken from environment variables obey the attribute's rules too."""
    for name, attr in block.attributes.items():
        value = values[name]
        if configured.get(name) is not None or value is None or value is UNKNOWN:
            continue
        variable = next(e for e in attr.env if os.environ.get(e))
        path = (*prefix, name)
        if attr.type == NUMBER:
            value = _env_number(value, variable, diags, path)
            if value is None:
                continue
        found = Diagnostics()
        for validator in attr.validators:
            validator(value, path, found)
        for d in found:
            diags.error(d.summary, f"From {variable}: {d.detail}", path)


def _check_role_username(top: dict[str, Any], aws: dict[str, Any], diags: Diagnostics) -> None:
    arn, username = aws["role_arn"], top["username"]
    if arn is UNKNOWN or username is UNKNOWN or arn is None or username is None:
        return
    role = rules.role_name_from_arn(arn)
    if role is not None and username != role:
        diags.error(
            "Username does not match the assumed role",
            f'With auth_method = "aws_assumed_role" the PostgreSQL username is the IAM role '
            f"name: {role!r} for {arn}, not {username!r}. Remove username or set it to "
            f"{role!r}.",
            ("username",),
        )
