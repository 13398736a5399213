"""Terraform 1.0.3, the oldest release the provider supports, end to end.

Terraform 1.0 speaks plugin protocol 6.0: it sends no client capabilities and knows no
write-only attributes, provider functions, or import, check, moved and removed blocks.
What it can express runs a real lifecycle here (create, empty plan, drift, import, update,
destroy) against PostgreSQL 17 and moto; what it cannot is refused clearly, by Terraform
itself or by the provider, never as "Provider produced invalid plan". The server version
does not matter to any of this, so PostgreSQL 16 is left to the rest of the suite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from harness import (
    Body,
    Database,
    MotoServer,
    PostgresServer,
    Raw,
    Terraform,
    connection_block,
    data,
    output,
    provider_block,
    resource,
    step,
)
from harness.aws_example import ACCOUNT, IMMUTA_ACCOUNT, REGION, RESOURCE_ID, ensure_rds_iam
from harness.leaks import LeakScanner

# Never in the output of a refused configuration: Terraform's own words for a provider bug.
PROVIDER_BUG = ("Provider produced invalid plan", "bug in the provider")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def immuta(pg17: PostgresServer) -> Iterator[Database]:
    db = pg17.temp_database(prefix="immuta_")
    yield db
    db.drop()


@pytest.fixture
def sales(pg17: PostgresServer) -> Iterator[Database]:
    db = pg17.temp_database(prefix="sales_")
    with db.connect() as conn:
        conn.execute("CREATE TABLE public.orders (id int); CREATE VIEW public.v AS SELECT 1 x")
    yield db
    db.drop()


# ---------------------------------------------------------------------- what 1.0 can express


def test_lifecycle_of_everything_terraform_1_0_can_express(
    terraform_1_0: Terraform,
    pg17: PostgresServer,
    immuta: Database,
    sales: Database,
    moto_server: MotoServer,
) -> None:
    tf = terraform_1_0
    alice, alice_new, bob = unique("alice_"), unique("alice_new_"), unique("bob_")
    for role in (alice, alice_new, bob):
        pg17.create_role(role)
    analyst = unique("Analyst-")
    analyst_arn = moto_server.client("iam").create_role(
        RoleName=analyst, AssumeRolePolicyDocument='{"Version":"2012-10-17"}'
    )["Role"]["Arn"]
    connection_id = Raw("immuta_postgres_connection.main.id")

    def mapping(name: str, user: str, **blocks: Body) -> str:
        return resource(
            "immuta_user_mapping", name, connection_id=connection_id, immuta_user=user, **blocks
        )

    def config(alice_role: str = alice, on_missing_privileges: str = "error") -> str:
        return (
            provider_block(pg17, aws=moto_server.aws_block())
            + connection_block(
                immuta.host,
                immuta.port,
                immuta.name,
                deployment_type="rds",
                on_missing_privileges=on_missing_privileges,
            )
            + mapping(
                "alice", "alice@example.com", postgres=Body(mode="username", username=alice_role)
            )
            # The default mode, spelled out: an import must give the block back.
            + mapping("bob", bob, postgres=Body(mode="unset"))
            + mapping("analyst", "analyst", aws=Body(user_type="iam_role", principal=analyst))
            + data(
                "immuta_postgres_preflight",
                "check",
                hostname=immuta.host,
                port=immuta.port,
                database=immuta.name,
            )
            + output("ready", Raw("data.immuta_postgres_preflight.check.supported"))
            + data(
                "immuta_postgres_data_objects",
                "sales",
                connection_id=connection_id,
                database=sales.name,
            )
            + output(
                "sales_objects", Raw("data.immuta_postgres_data_objects.sales.objects[*].full_name")
            )
        )

    addresses = [
        "immuta_postgres_connection.main",
        "immuta_user_mapping.alice",
        "immuta_user_mapping.bob",
        "immuta_user_mapping.analyst",
    ]
    try:
        with step("create: the connection, three mappings, both data sources"):
            tf.write(config())
            tf.apply()
            resources = tf.resources()
            assert resources["immuta_user_mapping.alice"]["effective_postgres_username"] == alice
            assert resources["immuta_user_mapping.bob"]["postgres"] == {
                "mode": "unset",
                "username": None,
            }
            assert resources["immuta_user_mapping.analyst"]["aws_principal_arn"] == analyst_arn
            outputs = tf.outputs()
            assert outputs["ready"] is True
            assert sorted(outputs["sales_objects"]) == [
                f"Warehouse.{sales.name}.public.orders",
                f"Warehouse.{sales.name}.public.v",
            ]

        with step("a plan right after the apply is empty"):
            tf.plan_is_empty()

        with step("drift: a mapping deleted and a table created outside Terraform"):
            with immuta.connect() as conn:
                conn.execute("DELETE FROM immuta.user_mappings WHERE immuta_user = 'analyst'")
            with sales.connect() as conn:
                conn.execute("CREATE TABLE public.returns (id int)")
            tf.plan_changes("1 to add, 1 to change")
            tf.apply()
            tf.plan_is_empty("converged")
            assert f"Warehouse.{sales.name}.public.returns" in tf.outputs()["sales_objects"]

        with step("import: every resource, by its id, plans empty"):
            ids = {address: tf.resources()[address]["id"] for address in addresses}
            tf.run("state", "rm", *addresses)
            for address in addresses:
                tf.run("import", "-no-color", address, ids[address])
            tf.plan_is_empty("imports match the configuration")
            assert tf.resources()["immuta_user_mapping.bob"]["postgres"]["mode"] == "unset"

        with step("update in place: a mapping's role and the connection's privileges rule"):
            tf.write(config(alice_new, on_missing_privileges="skip"))
            tf.plan_changes("0 to add, 2 to change, 0 to destroy")
            tf.apply()
            resources = tf.resources()
            assert resources["immuta_user_mapping.alice"]["effective_postgres_username"] == (
                alice_new
            )
            assert resources["immuta_postgres_connection.main"]["on_missing_privileges"] == "skip"
            tf.plan_is_empty()

        with step("destroy (Terraform 1.0 plans no destroy with the provider)"):
            tf.destroyed()
            with immuta.connect() as conn:
                assert conn.execute("SELECT to_regnamespace('immuta')").fetchone()[0] is None
    finally:
        moto_server.client("iam").delete_role(RoleName=analyst)
        for role in (alice, alice_new, bob):
            pg17.drop_role(role)


# ---------------------------------------------------------------------- write-only


def service_principal(role: str, pg: PostgresServer) -> str:
    return resource(
        "immuta_aws_service_principal",
        "svc",
        role_name=role,
        aws_account_id=ACCOUNT,
        db_resource_id=RESOURCE_ID,
        immuta_account_id=IMMUTA_ACCOUNT,
        external_id=Raw("var.external_id"),
        hostname=pg.host,
        port=pg.port,
    )


EXTERNAL_ID_VARIABLE = 'variable "external_id" {\n  type      = string\n  sensitive = true\n}\n'
REFUSAL = (
    "external_id needs Terraform 1.11 or later",
    "external_id of immuta_aws_service_principal is a write-only argument: Terraform keeps its "
    "value out of the plan and the state only from version 1.11 on. This Terraform does not "
    "support write-only arguments and would keep the value in the plan and the state, so the "
    "provider refuses it before anything is planned or created. external_id is required, so "
    "immuta_aws_service_principal cannot be used before Terraform 1.11: upgrade Terraform.",
)


def test_write_only_external_id_is_refused_and_nothing_is_written(
    terraform_1_0: Terraform, pg17: PostgresServer, moto_server: MotoServer, tmp_path: Path
) -> None:
    ensure_rds_iam(pg17)
    role, external_id = unique("immuta-svc-"), unique("ExtId-1-0-")
    tf = terraform_1_0
    tf.env.update(TF_VAR_external_id=external_id)
    tf.write(
        provider_block(pg17, aws=moto_server.aws_block())
        + EXTERNAL_ID_VARIABLE
        + service_principal(role, pg17)
    )
    scanner = LeakScanner()
    scanner.secret("external ID", external_id)
    trace = {"TF_LOG": "trace", "TF_LOG_PATH": str(tmp_path / "trace.log")}

    with step("validate: an error on the attribute, with what to do"):
        tf.init()
        validated = json.loads(tf.run("validate", "-json", check=False, env=trace).stdout)
        [diagnostic] = validated["diagnostics"]
        assert (diagnostic["summary"], diagnostic["detail"]) == REFUSAL
        main_tf = (tf.workdir / "main.tf").read_text().splitlines()
        assert "external_id" in main_tf[diagnostic["range"]["start"]["line"] - 1]
        scanner.add_file("validate trace log", tmp_path / "trace.log")

    with step("plan and apply: the same refusal, never an invalid plan"):
        for name, result in (
            ("plan", tf.plan_fails(*REFUSAL)),
            ("apply", tf.apply_fails(*REFUSAL)),
        ):
            assert not any(bug in result.text for bug in PROVIDER_BUG), result.output
            scanner.add_result(name, result)
        traced = tf.run("apply", "-auto-approve", "-no-color", check=False, env=trace)
        assert traced.returncode == 1
        scanner.add_file("apply trace log", tmp_path / "trace.log")

    with step("nothing written: no state, no IAM role, no login role; the value nowhere"):
        assert tf.resources() == {}
        roles = moto_server.client("iam").list_roles()["Roles"]
        assert role not in [r["RoleName"] for r in roles]
        with pg17.connect() as conn:
            assert (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                is None
            )
        scanner.add("terraform.tfstate", tf.state_file_text())
        assert scanner.scan() == [], scanner.summary()


def test_import_of_a_service_principal_warns_and_the_next_plan_refuses(
    terraform_1_0: Terraform, pg17: PostgresServer, moto_server: MotoServer
) -> None:
    """Import needs no configuration, so it works; the plan that follows refuses, and so does
    a destroy with the block in the configuration (Terraform validates it first)."""
    role = unique("immuta-svc-")
    iam = moto_server.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{IMMUTA_ACCOUNT}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "made-outside-terraform"}},
            }
        ],
    }
    connect = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{RESOURCE_ID}/{role}",
            }
        ],
    }
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    policy = iam.create_policy(PolicyName=f"{role}-rds-connect", PolicyDocument=json.dumps(connect))
    iam.attach_role_policy(RoleName=role, PolicyArn=policy["Policy"]["Arn"])
    tf = terraform_1_0
    tf.env.update(TF_VAR_external_id=unique("ExtId-"))
    tf.write(
        provider_block(pg17, aws=moto_server.aws_block())
        + EXTERNAL_ID_VARIABLE
        + service_principal(role, pg17)
    )
    try:
        tf.init()
        imported = tf.run("import", "-no-color", "immuta_aws_service_principal.svc", role)
        assert "immuta_aws_service_principal imported, but this Terraform cannot plan it" in (
            imported.text
        )
        assert tf.resources()["immuta_aws_service_principal.svc"]["role_arn"].endswith(role)
        tf.plan_fails(*REFUSAL)
        with step("destroy validates the configuration too; without the block, apply deletes"):
            assert tf.destroy(check=False).returncode == 1
            tf.write(provider_block(pg17, aws=moto_server.aws_block()))
            tf.apply()
            assert tf.resources() == {}
            assert role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
            local = iam.list_policies(Scope="Local")["Policies"]
            assert policy["Policy"]["Arn"] not in [p["Arn"] for p in local]
    finally:
        with suppress(iam.exceptions.NoSuchEntityException):
            iam.detach_role_policy(RoleName=role, PolicyArn=policy["Policy"]["Arn"])
        with suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_policy(PolicyArn=policy["Policy"]["Arn"])
        with suppress(iam.exceptions.NoSuchEntityException):
            iam.delete_role(RoleName=role)


# ---------------------------------------------------------------------- refused by Terraform


NEWER_LANGUAGE = {
    "provider function (1.8)": (
        'output "arn" {\n  value = provider::immuta::rds_db_user_arn("us-east-1", '
        '"111122223333", "db-ABCDEFGHIJKLMNOPQRSTUVWXY1", "svc")\n}\n',
        (
            "Error: Missing newline after argument",
            "An argument definition must end with a newline.",
        ),
    ),
    "import block (1.5)": (
        'import {\n  to = immuta_postgres_connection.main\n  id = "h:5432/immuta/W"\n}\n',
        ("Error: Unsupported block type", 'Blocks of type "import" are not expected here.'),
    ),
    "check block (1.5)": (
        'check "ready" {\n  assert {\n    condition     = true\n    error_message = "no"\n  }\n}\n',
        ("Error: Unsupported block type", 'Blocks of type "check" are not expected here.'),
    ),
    "moved block (1.1)": (
        "moved {\n  from = immuta_user_mapping.a\n  to   = immuta_user_mapping.b\n}\n",
        ("Error: Unsupported block type", 'Blocks of type "moved" are not expected here.'),
    ),
    "removed block (1.7)": (
        "removed {\n  from = immuta_user_mapping.a\n}\n",
        ("Error: Unsupported block type", 'Blocks of type "removed" are not expected here.'),
    ),
    "ephemeral variable (1.10)": (
        'variable "password" {\n  type      = string\n  ephemeral = true\n}\n',
        ("Error: Unsupported argument", 'An argument named "ephemeral" is not expected here.'),
    ),
}


@pytest.mark.parametrize(("snippet", "message"), NEWER_LANGUAGE.values(), ids=list(NEWER_LANGUAGE))
def test_newer_language_is_refused_by_terraform_itself(
    terraform_1_0: Terraform, snippet: str, message: tuple[str, str]
) -> None:
    terraform_1_0.write(snippet)
    refused = terraform_1_0.run("init", "-no-color", check=False)
    assert refused.returncode == 1 and all(part in refused.text for part in message), refused.output
    assert not any(bug in refused.text for bug in PROVIDER_BUG)
