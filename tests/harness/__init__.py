"""Test harness: real PostgreSQL servers, a moto (AWS mock) server, the terraform CLI."""

from .hcl import (
    Body,
    Raw,
    block,
    connection_block,
    data,
    expression,
    labelled,
    literal,
    output,
    provider_block,
    resource,
)
from .moto_server import AWS_ENV, MotoServer
from .postgres import Database, PostgresServer, PostgresServerError, pg_bin_dir
from .product_rules import RESTRICTED_WORDS
from .rds_front import Attempt, Key, RdsFront, check_token
from .terraform import (
    TERRAFORM_1_0,
    Background,
    Result,
    Terraform,
    TerraformError,
    finished,
    step,
    terraform_env,
    wait_for,
)

__all__ = [
    "AWS_ENV",
    "RESTRICTED_WORDS",
    "Background",
    "finished",
    "wait_for",
    "Body",
    "Raw",
    "block",
    "data",
    "expression",
    "labelled",
    "literal",
    "output",
    "resource",
    "step",
    "Attempt",
    "Key",
    "RdsFront",
    "check_token",
    "Database",
    "MotoServer",
    "PostgresServer",
    "PostgresServerError",
    "pg_bin_dir",
    "Result",
    "TERRAFORM_1_0",
    "Terraform",
    "TerraformError",
    "connection_block",
    "provider_block",
    "terraform_env",
]
