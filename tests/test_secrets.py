"""No secret leaks: every secret the provider handles, through plan, apply, refresh, destroy
and failures, with TF_LOG=TRACE, is absent from every artifact Terraform leaves behind.

Secrets: the PostgreSQL password (provider block literal, and PGPASSWORD), aws.secret_access_key
(literal, and AWS_SECRET_ACCESS_KEY), aws.session_token, aws.external_id (the provider's) and
the service principal's write-only external_id, the RDS IAM auth tokens the RDS front saw (and
their signatures), and the STS temporary credentials moto issued; wrong passwords too.

Artifacts: terraform.tfstate and its backup (with the private blobs decoded), `terraform show
-json`, `terraform plan -json` output, the saved plan as `terraform show -json tfplan`, the
TRACE log of every command (TF_LOG_PATH, with the provider's own log lines), and the output of
every command, failed ones included (wrong password, refused token).

A saved plan holds Terraform's own copies of the user's input: the configuration's constant
expressions (a password written literally in a provider block) and the values of
non-ephemeral input variables (sensitive or not). Those two sections are Terraform's, not the
provider's: they are left out of the scan of that artifact, except for secrets that only
ever came from the environment, for which the whole saved plan is scanned.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote

from harness import (
    Body,
    Database,
    Key,
    MotoServer,
    PostgresServer,
    Raw,
    Result,
    Terraform,
    block,
    resource,
)
from harness.aws_example import (
    SECRET_ACCESS_KEY as ADMIN_SECRET_ACCESS_KEY,
)
from harness.aws_example import (
    assumed_role_setup,
)
from harness.leaks import LeakScanner, decoded_private_state, without_input_copies
from harness.postgres import SUPERUSER_PASSWORD
from psycopg import sql

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aws_assumed_role"
PROVIDER_LOG_LINE = "provider.terraform-provider-immuta"


def distinctive(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"


class Traced:
    """Runs terraform commands with TF_LOG=TRACE into one log file per command and feeds
    every output, log and state file to the scanner."""

    def __init__(self, tf: Terraform, scanner: LeakScanner, logs: Path) -> None:
        self.tf, self.scanner, self.logs = tf, scanner, logs
        logs.mkdir(parents=True, exist_ok=True)
        self.provider_logged = False

    def run(self, step: str, *args: str, check: bool = True, env: dict | None = None) -> Result:
        log = self.logs / f"{len(list(self.logs.iterdir())):02d}-{step}.log"
        trace = {"TF_LOG": "TRACE", "TF_LOG_PATH": str(log), **(env or {})}
        result = self.tf.run(*args, check=check, env=trace)
        self.scanner.add_result(f"terraform {step}", result)
        self.scanner.add_file(f"TRACE log of {step}", log)
        self.provider_logged |= log.exists() and PROVIDER_LOG_LINE in log.read_text()
        self.states(step)
        return result

    def states(self, step: str) -> None:
        for name in ("terraform.tfstate", "terraform.tfstate.backup"):
            path = self.tf.workdir / name
            if path.exists():
                text = path.read_text()
                self.scanner.add(f"{name} after {step}", text)
                self.scanner.add(f"{name} private state after {step}", decoded_private_state(text))

    def lifecycle(self, env_only: set[str]) -> None:
        """plan -out (JSON), the saved plan as JSON, apply it, refresh, an empty plan, show."""
        self.tf.init()
        self.run("plan", "plan", "-json", "-out=tfplan", "-input=false")
        shown = self.tf.run("show", "-json", "tfplan").stdout
        self.scanner.add(
            "terraform show -json tfplan (input copies left out)", without_input_copies(shown)
        )
        for name in env_only:
            assert self.scanner.secrets[name] not in shown, f"{name} in the saved plan"
        self.run("apply", "apply", "-no-color", "-input=false", "tfplan")
        self.run("refresh", "apply", "-refresh-only", "-auto-approve", "-no-color", "-input=false")
        again = self.run("plan again", "plan", "-detailed-exitcode", "-no-color", check=False)
        assert again.returncode == 0, again.output
        self.scanner.add("terraform show -json", self.tf.run("show", "-json").stdout)


def assert_no_leaks(scanner: LeakScanner, traced: Traced) -> None:
    assert traced.provider_logged, "the provider's own log lines are in the TRACE logs"
    leaks = scanner.scan()
    print(f"\nsecrets scan: {scanner.summary()}; leaks: {len(leaks)}")
    assert not leaks, "\n".join(f"{x.secret} in {x.artifact} (as {x.form!r})" for x in leaks)


def create_login_role(pg: PostgresServer, name: str, password: str) -> None:
    with pg.connect() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )


# ---------------------------------------------------------------------- passwords


def password_config(
    db: Database, literal_user: str, literal_pw: str, env_user: str, extra: bool = False
) -> str:
    def resources(name: str, provider: str) -> str:
        return resource(
            "immuta_postgres_connection",
            name,
            provider=Raw(provider),
            display_name=f"Secret {name}",
            deployment_type="self_managed",
            hostname=db.host,
            port=db.port,
            database=db.name,
        ) + resource(
            "immuta_user_mapping",
            name,
            provider=Raw(provider),
            connection_id=Raw(f"immuta_postgres_connection.{name}.id"),
            immuta_user="alice@example.com",
        )

    return (
        block("provider", "immuta", alias="literal", username=literal_user, password=literal_pw)
        + block("provider", "immuta", username=env_user)  # the password from PGPASSWORD
        + resources("literal", "immuta.literal")
        + resources("env", "immuta")
        + (
            resources("literal_new", "immuta.literal") + resources("env_new", "immuta")
            if extra
            else ""
        )
    )


def test_passwords_never_leak(pg17: PostgresServer, immuta: Database, tmp_path: Path) -> None:
    scanner = LeakScanner()
    literal_user, env_user = (f"secret_{k}_{uuid.uuid4().hex[:8]}" for k in ("lit", "env"))
    literal_pw, env_pw = distinctive("LiteralPassword"), distinctive("EnvPassword")
    wrong_literal, wrong_env = distinctive("WrongLiteral"), distinctive("WrongEnv")
    for name, value in (
        ("password (provider block)", literal_pw),
        ("password (PGPASSWORD)", env_pw),
        ("wrong password (provider block)", wrong_literal),
        ("wrong password (PGPASSWORD)", wrong_env),
    ):
        scanner.secret(name, value)
    create_login_role(pg17, literal_user, literal_pw)
    create_login_role(pg17, env_user, env_pw)
    try:
        tf = Terraform(tmp_path / "tf", env={"PGPASSWORD": env_pw})
        traced = Traced(tf, scanner, tmp_path / "logs")
        tf.write(password_config(immuta, literal_user, literal_pw, env_user))
        traced.lifecycle(env_only={"password (PGPASSWORD)"})
        assert len(tf.resources()) == 4

        # Refused credentials: refresh fails with an error naming the user, not the password.
        tf.write(password_config(immuta, literal_user, wrong_literal, env_user))
        wrong = {"PGPASSWORD": wrong_env}
        failed = traced.run("plan (wrong passwords)", "plan", "-no-color", check=False, env=wrong)
        assert failed.returncode == 1
        for user in (literal_user, env_user):
            assert f"PostgreSQL refused the credentials of user '{user}'" in failed.text
        # ... and a create fails the same way.
        tf.write(password_config(immuta, literal_user, wrong_literal, env_user, extra=True))
        args = ("apply", "-auto-approve", "-no-color", "-refresh=false")
        failed = traced.run("apply (wrong passwords)", *args, check=False, env=wrong)
        assert failed.returncode == 1
        for user in (literal_user, env_user):
            assert f"PostgreSQL refused the credentials of user '{user}'" in failed.text
        assert len(tf.resources()) == 4

        tf.write(password_config(immuta, literal_user, literal_pw, env_user))
        traced.run("destroy", "destroy", "-auto-approve", "-no-color")
        assert tf.resources() == {}
        assert_no_leaks(scanner, traced)
    finally:
        pg17.drop_role(literal_user)
        pg17.drop_role(env_user)


# ---------------------------------------------------------------------- AWS


def keys_config(session_user: str, akid: str, secret: str, token: str) -> str:
    """A second provider, aws_access_key with temporary keys (a session token), and a second
    connection through the RDS front."""
    return block(
        "provider",
        "immuta",
        alias="keys",
        auth_method="aws_access_key",
        username=session_user,
        aws=Body(
            region=Raw("var.aws_region"),
            access_key_id=akid,
            secret_access_key=secret,
            session_token=token,
            endpoint_url=Raw("var.aws_endpoint_url"),
        ),
    ) + resource(
        "immuta_postgres_connection",
        "keys",
        provider=Raw("immuta.keys"),
        display_name="Secret keys",
        deployment_type="aurora",
        hostname=Raw("var.iam_host"),
        port=Raw("var.iam_port"),
        database=Raw("var.immuta_database"),
    )


def test_aws_secrets_never_leak(pg17: PostgresServer, moto_server: MotoServer, tmp_path: Path):
    scanner = LeakScanner()
    role = f"immuta-svc-{uuid.uuid4().hex[:8]}"
    external_id = distinctive("ExternalId")
    keys_akid = "ASIAIMMUTA" + uuid.uuid4().hex[:10].upper()
    keys_secret, keys_token = distinctive("KeysSecret"), distinctive("KeysSessionToken")
    scanner.secret("PostgreSQL password (sensitive variable)", SUPERUSER_PASSWORD)
    scanner.secret("aws.secret_access_key (AWS_SECRET_ACCESS_KEY)", ADMIN_SECRET_ACCESS_KEY)
    scanner.secret(
        "aws.external_id and the service principal's write-only external_id", external_id
    )
    scanner.secret("aws.secret_access_key (provider block)", keys_secret)
    scanner.secret("aws.session_token (provider block)", keys_token)
    with assumed_role_setup(pg17, moto_server, role, external_id) as setup:
        front = setup.front
        front.register_key(keys_akid, Key(keys_secret, keys_token))
        front.require_signature = True
        workdir = tmp_path / "example"
        shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns(".terraform*", "tests"))
        (workdir / "keys.tf").write_text(keys_config(role, keys_akid, keys_secret, keys_token))
        tf = Terraform(workdir, env=setup.env)
        traced = Traced(tf, scanner, tmp_path / "logs")
        traced.lifecycle(env_only={"aws.secret_access_key (AWS_SECRET_ACCESS_KEY)"})
        resources = tf.resources()
        assert resources["immuta_postgres_connection.rds"]["auth_method"] == "aws_assumed_role"
        assert resources["immuta_postgres_connection.keys"]["auth_method"] == "aws_access_key"
        accepted = front.accepted(role)
        assert {a.access_key_id for a in accepted} >= {keys_akid}
        assumed = [a for a in accepted if a.access_key_id != keys_akid]
        assert assumed and all(a.access_key_id.startswith("ASIA") for a in assumed)

        # A refused token: refresh fails naming the server, never showing the token.
        front.refuse_all = "refused by the test"
        failed = traced.run("plan (refused token)", "plan", "-no-color", check=False)
        assert failed.returncode == 1 and "RDS refused the IAM auth token" in failed.text
        front.refuse_all = None

        traced.run("destroy", "destroy", "-auto-approve", "-no-color")
        assert tf.resources() == {}

        # What the front and moto saw: every token, its signature, every temporary key.
        for n, attempt in enumerate(front.attempts):
            scanner.secret(f"RDS token #{n}", attempt.token)
            signature = re.search(r"X-Amz-Signature=([0-9a-f]{64})", attempt.token)
            if signature:
                scanner.secret(f"RDS token #{n} signature", signature.group(1))
            assumed = moto_server.assumed_role(attempt.access_key_id or "")
            if assumed is not None:
                scanner.secret(f"STS secret key {assumed.access_key_id}", assumed.secret_access_key)
                scanner.secret(f"STS session token {assumed.access_key_id}", assumed.session_token)
        assert len(front.attempts) >= 4 and front.refused()
        assert_no_leaks(scanner, traced)


def test_the_scanner_finds_a_secret_in_every_form() -> None:
    """The scan itself: a secret written escaped, encoded or in a private blob is found."""
    secret = 'Sec&ret<"/+=' + uuid.uuid4().hex
    state = {
        "resources": [{"instances": [{"private": base64.b64encode(secret.encode()).decode()}]}]
    }
    texts = {
        "as is": f"x {secret} y",
        "JSON": json.dumps({"v": secret}),
        "JSON as Go writes it": json.dumps({"v": secret})
        .replace("&", "\\u0026")
        .replace("<", "\\u003c"),
        "URL-encoded": "token=" + quote(secret, safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "private state": decoded_private_state(json.dumps(state)),
    }
    scanner = LeakScanner()
    scanner.secret("s", secret)
    for name, text in texts.items():
        scanner.add(name, text)
    assert {leak.artifact for leak in scanner.scan()} == set(texts)
