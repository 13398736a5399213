"""What examples/aws_assumed_role needs around it: PostgreSQL standing in for RDS, moto for
IAM and STS, and the RDS front that checks IAM auth tokens.

`assumed_role_setup` yields the example's variables and environment (TF_VAR_* and the admin
AWS keys) and undoes everything after: the front, the Immuta database, the login role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql

from .moto_server import MotoServer
from .postgres import Database, PostgresServer
from .rds_front import Key, RdsFront

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
IMMUTA_ACCOUNT = "210987654321"
RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY1"
# The administrator's AWS keys (moto accepts any; the front knows this pair).
ACCESS_KEY_ID = "AKIAIMMUTAEXAMPLE001"
SECRET_ACCESS_KEY = "example/Secret+Key+For+Immuta+0123456789ab"


def ensure_rds_iam(pg: PostgresServer) -> None:
    """RDS and Aurora servers have this role; server-wide, shared by tests, never dropped."""
    with pg.connect() as conn:
        conn.execute(
            "DO $$ BEGIN CREATE ROLE rds_iam NOLOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )


@dataclass
class AssumedRoleSetup:
    front: RdsFront
    database: Database  # the Immuta database
    variables: dict[str, str]  # the example's input variables
    env: dict[str, str]  # TF_VAR_* and the admin AWS keys


@contextmanager
def assumed_role_setup(
    pg: PostgresServer, moto: MotoServer, role: str, external_id: str
) -> Iterator[AssumedRoleSetup]:
    """The login role `role` (superuser: the privileges Immuta needs, granted once by the
    master user), a fresh Immuta database and a started RdsFront relaying to `pg`, which
    accepts tokens signed with the admin keys or with credentials of a role assumed in moto."""

    def lookup(access_key_id: str) -> Key | None:
        assumed = moto.assumed_role(access_key_id)
        return Key(assumed.secret_access_key, assumed.session_token) if assumed else None

    ensure_rds_iam(pg)
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
    db: Database | None = None
    front = RdsFront(pg, region=REGION, keys={ACCESS_KEY_ID: SECRET_ACCESS_KEY}, lookup=lookup)
    try:
        db = pg.temp_database()
        front.start()
        variables = {
            "pg_host": pg.host,
            "pg_port": str(pg.port),
            "pg_username": pg.user,
            "pg_password": pg.password,
            "pg_sslmode": "prefer",
            "iam_host": front.hostname,
            "iam_port": str(front.port),
            "immuta_database": db.name,
            "aws_region": REGION,
            "aws_endpoint_url": moto.endpoint_url,
            "aws_account_id": ACCOUNT,
            "db_resource_id": RESOURCE_ID,
            "role_name": role,
            "immuta_account_id": IMMUTA_ACCOUNT,
            "immuta_external_id": external_id,
        }
        env = {f"TF_VAR_{k}": v for k, v in variables.items()}
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY)
        yield AssumedRoleSetup(front, db, variables, env)
    finally:
        front.stop()
        if db is not None:
            db.drop()
        pg.drop_role(role)
