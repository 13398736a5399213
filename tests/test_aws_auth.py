"""AWS authentication end to end: real terraform, moto (STS/IAM), the RDS IAM auth front
(tests/harness/rds_front.py) and a real PostgreSQL 17 server behind it."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs

import pytest
from harness import (
    Body,
    Database,
    Key,
    MotoServer,
    PostgresServer,
    Raw,
    RdsFront,
    Result,
    Terraform,
    block,
    connection_block,
    data,
    output,
    provider_block,
    resource,
    step,
)
from psycopg import sql

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
# Fixed keys the front knows, as RDS (IAM) knows a user's keys. moto accepts any keys.
ACCESS_KEY_ID = "AKIAIMMUTATESTKEY001"
SECRET_ACCESS_KEY = "s3cr3t/Key+For+Immuta+Tests+0123456789ab"
EXTERNAL_ID = "immuta-external-id-7c1e0f2b9d"


@dataclass
class Env:
    """One test's world: an Immuta database on PostgreSQL 17 reached through an RDS front."""

    pg: PostgresServer
    db: Database
    moto: MotoServer
    front: RdsFront
    tf: Terraform

    def write(self, provider: str) -> None:
        self.tf.write(provider + connection_hcl(self.front, self.db))


def connection_hcl(front: RdsFront, db: Database) -> str:
    return connection_block(
        front.hostname, front.port, db.name, "Aurora Prod", deployment_type="rds"
    )


def provider_hcl(
    auth_method: str,
    moto: MotoServer,
    username: str | None = None,
    alias: str | None = None,
    **aws: str,
):
    """A provider block with AWS authentication; `aws` adds to the aws { } block."""
    settings: dict[str, object] = {} if alias is None else {"alias": alias}
    settings["auth_method"] = auth_method
    if username:
        settings["username"] = username
    settings["connect_timeout"] = 5
    settings["aws"] = Body(**{"region": REGION, "endpoint_url": moto.endpoint_url, **aws})
    return block("provider", "immuta", **settings)


def access_key_provider(env: Env, user: str, alias: str | None = None, **aws: str) -> str:
    keys = {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY}
    return provider_hcl("aws_access_key", env.moto, user, alias, **{**keys, **aws})


def assumed_role_provider(env: Env, role_arn: str, alias: str | None = None, **aws: str) -> str:
    # The caller's own keys (Immuta's AWS account) sign AssumeRole; moto accepts any.
    settings = {
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "role_arn": role_arn,
        "external_id": EXTERNAL_ID,
        **aws,
    }
    return provider_hcl("aws_assumed_role", env.moto, alias=alias, **settings)


def login_role(pg: PostgresServer, name: str) -> None:
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(name)))


def create_iam_role(moto: MotoServer, name: str) -> str:
    """The seed's service principal: trusts an account's root on sts:ExternalId."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
            }
        ],
    }
    iam = moto.client("iam")
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def moto_keys(moto: MotoServer):
    """Key lookup for the front: moto's (random) temporary credentials from AssumeRole."""

    def lookup(access_key_id: str) -> Key | None:
        role = moto.assumed_role(access_key_id)
        return Key(role.secret_access_key, role.session_token) if role else None

    return lookup


def moto_authorizer(moto: MotoServer):
    """As IAM would before RDS lets a token in: an assumed role must still exist."""

    def authorize(access_key_id: str | None, user: str) -> str | None:
        role = moto.assumed_role(access_key_id or "")
        if role is None:
            return None  # long-term keys: allowed
        name = role.role_arn.rsplit("/", 1)[-1]
        try:
            arn = moto.client("iam").get_role(RoleName=name)["Role"]["Arn"]
        except Exception:
            arn = None
        return None if arn == role.role_arn else f"no IAM role {role.role_arn}"

    return authorize


@pytest.fixture
def env(pg17: PostgresServer, moto_server: MotoServer, tmp_path) -> Iterator[Env]:
    db = pg17.temp_database()
    front = RdsFront(
        pg17,
        hostname="127.0.0.1",
        region=REGION,
        keys={ACCESS_KEY_ID: SECRET_ACCESS_KEY},
        lookup=moto_keys(moto_server),
        authorize=moto_authorizer(moto_server),
    ).start()
    try:
        yield Env(pg17, db, moto_server, front, Terraform(tmp_path / "tf"))
    finally:
        front.stop()
        db.drop()


@pytest.fixture
def db_user(pg17: PostgresServer) -> Iterator[str]:
    """A PostgreSQL login role for the access key's DB user (RDS: GRANT rds_iam)."""
    name = f"immuta_admin_{uuid.uuid4().hex[:8]}"
    login_role(pg17, name)
    yield name
    pg17.drop_role(name)


@pytest.fixture
def iam_role(pg17: PostgresServer, moto_server: MotoServer) -> Iterator[tuple[str, str]]:
    """(role name, role ARN): an IAM role in moto and the PostgreSQL role of the same name."""
    name = f"immuta-svc-{uuid.uuid4().hex[:8]}"
    arn = create_iam_role(moto_server, name)
    login_role(pg17, name)
    yield name, arn
    pg17.drop_role(name)


def assert_no_secret(outputs: dict[str, str], secrets: dict[str, str]) -> None:
    for where, text in outputs.items():
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in {where}"


def assert_refused(result: Result, front: RdsFront) -> None:
    assert result.returncode == 1, result.output
    assert f"Cannot connect to PostgreSQL at {front.address}" in result.text
    assert "RDS refused the IAM auth token" in result.text
    assert "Traceback" not in result.output
    assert front.refused() and not front.accepted()


# ---------------------------------------------------------------------- aws_access_key


def test_access_key_registers_through_rds_iam_auth(env: Env, db_user: str) -> None:
    env.write(access_key_provider(env, db_user))
    env.tf.apply()
    state = env.tf.resources()["immuta_postgres_connection.main"]
    assert state["auth_method"] == "aws_access_key"
    assert state["username"] == db_user
    assert state["id"] == f"{env.front.address}/{env.db.name}/Aurora Prod"
    assert state["server_version"].startswith("17")
    accepted = env.front.accepted(db_user)
    assert accepted and not env.front.refused()
    assert all(a.signature_verified and a.access_key_id == ACCESS_KEY_ID for a in accepted)
    assert {a.user for a in env.front.attempts} == {db_user}
    with env.db.connect() as conn:
        row = conn.execute("SELECT auth_method, username FROM immuta.connections").fetchone()
    assert row == ("aws_access_key", db_user)

    env.tf.plan_is_empty("refresh through the front; no changes")
    env.tf.destroy()


def test_expired_token_fails_apply_naming_the_server(env: Env, db_user: str) -> None:
    env.front.clock = lambda: time.time() + 901  # every token the provider mints is stale
    env.write(access_key_provider(env, db_user))
    result = env.tf.apply(check=False)
    assert_refused(result, env.front)
    assert f"'{db_user}'" in result.text
    assert env.front.refused()[0].reason.startswith("token expired")


def test_token_for_the_wrong_region_is_refused(env: Env, db_user: str) -> None:
    env.write(access_key_provider(env, db_user, region="eu-west-1"))
    result = env.tf.apply(check=False)
    assert_refused(result, env.front)
    assert env.front.refused()[0].reason == "token region 'eu-west-1' is not 'us-east-1'"


def test_refused_token_hint_speaks_of_iam_not_passwords(env: Env, db_user: str) -> None:
    env.write(access_key_provider(env, db_user, region="eu-west-1"))
    result = env.tf.apply(check=False)
    assert_refused(result, env.front)
    assert "PGPASSWORD" not in result.text and "password" not in result.text.lower()
    assert "rds-db:connect" in result.text and "rds_iam" in result.text
    assert "eu-west-1" in result.text, "the region the token was signed for"


# ---------------------------------------------------------------------- aws_assumed_role


def test_assumed_role_registers_as_the_role(env: Env, iam_role: tuple[str, str]) -> None:
    name, arn = iam_role
    env.write(assumed_role_provider(env, arn))
    env.tf.init()
    trace = {"TF_LOG": "TRACE"}
    applied = env.tf.run("apply", "-auto-approve", "-no-color", "-input=false", env=trace)
    state = env.tf.resources()["immuta_postgres_connection.main"]
    assert (state["auth_method"], state["username"]) == ("aws_assumed_role", name)

    accepted = env.front.accepted(name)
    assert accepted and not env.front.refused()
    assert all(a.signature_verified and a.access_key_id.startswith("ASIA") for a in accepted)
    role = env.moto.assumed_role(accepted[0].access_key_id)
    assert (role.role_arn, role.external_id) == (arn, EXTERNAL_ID)

    assert "provider.terraform-provider-immuta" in applied.output, "provider logs captured"
    plan = env.tf.run("plan", "-detailed-exitcode", "-no-color", env=trace, check=False)
    assert plan.returncode == 0, plan.output
    secrets = {
        "secret_access_key": SECRET_ACCESS_KEY,
        "external_id": EXTERNAL_ID,
        "temporary secret key": role.secret_access_key,
        "session token": role.session_token,
        **{f"RDS token #{i}": a.token for i, a in enumerate(env.front.attempts)},
    }
    assert_no_secret(
        {
            "terraform.tfstate": env.tf.state_file_text(),
            "terraform show -json": env.tf.run("show", "-json").stdout,
            "apply output (TF_LOG=TRACE)": applied.output,
            "plan output (TF_LOG=TRACE)": plan.output,
        },
        secrets,
    )
    env.tf.destroy()


def test_unknown_role_is_refused_without_showing_the_external_id(env: Env) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/no-such-role-{uuid.uuid4().hex[:8]}"
    env.write(assumed_role_provider(env, arn))
    result = env.tf.apply(check=False)
    # moto's AssumeRole succeeds for any ARN; the front then refuses, as IAM would.
    assert_refused(result, env.front)
    assert env.front.refused()[0].reason == f"no IAM role {arn}"
    assert EXTERNAL_ID not in result.output


class StsDenies(http.server.BaseHTTPRequestHandler):
    """An STS endpoint that refuses AssumeRole, as AWS does when the trust policy (e.g. its
    sts:ExternalId condition) does not match; moto itself never refuses."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.server.requests.append(body)  # type: ignore[attr-defined]
        arn = body["RoleArn"][0]
        answer = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            "<Type>Sender</Type><Code>AccessDenied</Code><Message>User: "
            f"arn:aws:iam::210987654321:user/immuta is not authorized to perform: "
            f"sts:AssumeRole on resource: {arn}</Message></Error>"
            "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sts_denies() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StsDenies)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_assume_role_denied_names_the_role_not_the_external_id(
    env: Env, iam_role: tuple[str, str], sts_denies: http.server.ThreadingHTTPServer
) -> None:
    _, arn = iam_role
    endpoint = f"http://127.0.0.1:{sts_denies.server_address[1]}"
    env.write(assumed_role_provider(env, arn, endpoint_url=endpoint))
    result = env.tf.apply_fails(f"Cannot assume role {arn}", "AccessDenied", "sts:ExternalId")
    assert EXTERNAL_ID not in result.output and "Traceback" not in result.output
    # AccessDenied is retried for a bounded time (a just-created role propagates in IAM).
    assert 1 <= len(sts_denies.requests) <= 12
    for request in sts_denies.requests:
        assert request["Action"] == ["AssumeRole"] and request["ExternalId"] == [EXTERNAL_ID]
    assert not env.front.attempts, "no connection without credentials"


def test_unknown_role_error_names_the_role_arn(env: Env) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/no-such-role-{uuid.uuid4().hex[:8]}"
    env.write(assumed_role_provider(env, arn))
    result = env.tf.apply(check=False)
    assert_refused(result, env.front)
    assert arn in result.text


# ---------------------------------------------------------------------- the matrix

DEPLOYMENTS = ("self_managed", "neon", "aurora", "rds")
METHODS = ("password", "aws_access_key", "aws_assumed_role")
CELLS = [(d, m) for d in DEPLOYMENTS for m in METHODS]
REFUSED = [(d, m) for d, m in CELLS if d in ("self_managed", "neon") and m != "password"]


def test_every_deployment_type_with_every_authentication_method(
    env: Env, db_user: str, iam_role: tuple[str, str]
) -> None:
    """All 12 cells, one provider alias per method: self_managed and neon refuse both AWS
    methods at plan (no apply needed), aurora and rds register with all three (aurora with an
    assumed role included); the preflight's auth_method_allowed agrees in every cell."""
    name, arn = iam_role
    providers = (
        provider_block(env.pg, alias="password")
        + access_key_provider(env, db_user, alias="aws_access_key")
        + assumed_role_provider(env, arn, alias="aws_assumed_role")
    )

    def where(method: str) -> dict[str, object]:
        server = env.pg if method == "password" else env.front
        return {
            "hostname": server.host if method == "password" else env.front.hostname,
            "port": server.port,
            "provider": Raw(f"immuta.{method}"),
        }

    def connection(deployment: str, method: str) -> str:
        return resource(
            "immuta_postgres_connection",
            f"{deployment}_{method}",
            display_name=f"{deployment} {method}",
            deployment_type=deployment,
            database=env.db.name,
            **where(method),
        )

    preflights = "".join(
        data(
            "immuta_postgres_preflight",
            f"{d}_{m}",
            database=env.db.name,
            deployment_type=d,
            **where(m),
        )
        for d, m in CELLS
    ) + output(
        "allowed",
        Raw(
            "{"
            + ", ".join(
                f'"{d}_{m}" = data.immuta_postgres_preflight.{d}_{m}.auth_method_allowed'
                for d, m in CELLS
            )
            + "}"
        ),
    )

    with step("the four refused cells fail at plan, each naming its deployment_type"):
        env.tf.write(providers + preflights + "".join(connection(d, m) for d, m in CELLS))
        result = env.tf.plan_fails()
        assert result.text.count("Error: Authentication method not available") == len(REFUSED)
        for d, m in REFUSED:
            assert f"with immuta_postgres_connection.{d}_{m}," in result.text
            assert (
                f'deployment_type = "{d}" allows only auth_method = "password", but the '
                f'provider is configured with "{m}".'
            ) in result.text
        assert not env.tf.resources()

    with step("the eight others register, and the preflight agrees with all twelve"):
        allowed = [cell for cell in CELLS if cell not in REFUSED]
        env.tf.write(providers + preflights + "".join(connection(d, m) for d, m in allowed))
        env.tf.apply()
        assert env.tf.outputs()["allowed"] == {f"{d}_{m}": (d, m) not in REFUSED for d, m in CELLS}
        state = env.tf.resources()
        assert {
            (v["deployment_type"], v["auth_method"])
            for a, v in state.items()
            if a.startswith("immuta_postgres_connection.")
        } == set(allowed)
        assert {
            v["username"]
            for a, v in state.items()
            if a.startswith("immuta_postgres_connection.") and a.endswith("aws_assumed_role")
        } == {name}
        env.tf.plan_is_empty()
        env.tf.destroyed()


# ---------------------------------------------------------------------- no boto3 for passwords

NO_BOTO3 = """
import sys
from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.provider import Context
from tfprovider_immuta_pg.immuta.pg import Target
from tfprovider_immuta_pg.immuta.provider import ImmutaProvider

provider = ImmutaProvider()
diags = Diagnostics()
config = {"username": "postgres", "password": sys.argv[3], "aws": None}
provider.validate(config, diags)
provider.configure(config, diags)
assert not diags.has_errors, diags
target = Target("127.0.0.1", int(sys.argv[1]), sys.argv[2])
with provider.access.connect(target, Context()) as conn:
    assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore"))
assert not loaded, loaded
print("ok")
"""


def test_password_configuration_never_imports_boto3(pg17: PostgresServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_BOTO3, str(pg17.port), "postgres", pg17.password],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
