"""Test harness: real PostgreSQL servers and a moto (AWS mock) server."""

from .moto_server import AWS_ENV, MotoServer
from .postgres import Database, PostgresServer, PostgresServerError, pg_bin_dir

__all__ = [
    "AWS_ENV",
    "Database",
    "MotoServer",
    "PostgresServer",
    "PostgresServerError",
    "pg_bin_dir",
]
