"""immuta_user_mapping end to end: real terraform, PostgreSQL 16/17 and moto."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from harness import (
    Database,
    MotoServer,
    PostgresServer,
    Terraform,
    connection_block,
    hcl_string,
    provider_block,
)
from psycopg import sql


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def connection_hcl(db: Database, deployment: str = "self_managed") -> str:
    return "\n" + connection_block(
        db.host, db.port, db.name, deployment_type=hcl_string(deployment)
    )


def mapping_block(name: str, user: str, body: str = "") -> str:
    return f"""
resource "immuta_user_mapping" "{name}" {{
  connection_id = immuta_postgres_connection.main.id
  immuta_user   = {hcl_string(user)}
{body}
}}
"""


def aws_body(user_type: str, principal: str | None = None) -> str:
    line = f'\n    principal = "{principal}"' if principal else ""
    return f'  aws {{\n    user_type = "{user_type}"{line}\n  }}'


def aws_provider(db: Database, moto: MotoServer, **extra: str) -> str:
    aws = {
        "region": '"us-east-1"',
        "access_key_id": '"testing"',
        "secret_access_key": '"testing"',
        "endpoint_url": hcl_string(moto.endpoint_url),
        **extra,
    }
    inner = "\n".join(f"    {k} = {v}" for k, v in aws.items())
    return provider_block(db.server)[:-2] + f"\n  aws {{\n{inner}\n  }}\n}}\n"


def create_role(server: PostgresServer, name: str) -> None:
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))


def mapping_rows(db: Database) -> list[tuple]:
    with db.connect() as conn:
        if not conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]:
            return []
        return conn.execute(
            "SELECT immuta_user, postgres_mode, postgres_username, postgres_role, aws_user_type, "
            "aws_principal, aws_principal_arn FROM immuta.user_mappings ORDER BY 1"
        ).fetchall()


def test_postgres_modes(terraform: Terraform, immuta_db: Database) -> None:
    server = immuta_db.server
    alice, bob = unique("alice_"), unique("Bob_")
    create_role(server, alice)
    create_role(server, bob)
    terraform.write(
        provider_block(server)
        + connection_hcl(immuta_db)
        + mapping_block(
            "by_name",
            "alice@example.com",
            f'  postgres {{\n    mode = "username"\n    username = "{alice.upper()}"\n  }}',
        )
        + mapping_block("fallback", bob.lower())
        + mapping_block("none", "service-account", '  postgres {\n    mode = "none"\n  }')
        + mapping_block("missing", "nobody-here")
    )
    result = terraform.apply()
    assert "PostgreSQL role 'nobody-here' not found" in result.text
    resources = terraform.resources()
    by_name = resources["immuta_user_mapping.by_name"]
    assert by_name["postgres_user_found"] is True
    assert by_name["effective_postgres_username"] == alice
    assert by_name["postgres"] == {"mode": "username", "username": alice.upper()}
    assert by_name["id"].endswith("/Warehouse#alice@example.com")
    fallback = resources["immuta_user_mapping.fallback"]
    assert fallback["effective_postgres_username"] == bob and fallback["postgres"] is None
    none = resources["immuta_user_mapping.none"]
    assert none["postgres_user_found"] is False and none["effective_postgres_username"] is None
    missing = resources["immuta_user_mapping.missing"]
    assert (
        missing["postgres_user_found"] is False and missing["effective_postgres_username"] is None
    )
    assert terraform.plan().returncode == 0, "a missing role is no perpetual diff"
    rows = {r[0]: r for r in mapping_rows(immuta_db)}
    assert rows["alice@example.com"][1:4] == ("username", alice.upper(), alice)
    assert rows["service-account"][1:4] == ("none", None, None)

    # A change of case alone is no change.
    terraform.write(
        (terraform.workdir / "main.tf").read_text().replace(alice.upper(), alice.capitalize()),
        with_required_providers=False,
    )
    assert terraform.plan().returncode == 0

    # A role dropped since the last apply makes the next plan non-empty; apply converges.
    server.drop_role(alice)
    drift = terraform.plan()
    assert drift.returncode == 2 and "1 to change" in drift.stdout
    assert "postgres_user_found" in drift.stdout
    terraform.apply()
    assert terraform.resources()["immuta_user_mapping.by_name"]["postgres_user_found"] is False
    assert terraform.plan().returncode == 0

    # A role created since: the missing user is found at the next apply.
    create_role(server, "nobody-here")
    assert terraform.plan().returncode == 2
    terraform.apply()
    assert terraform.resources()["immuta_user_mapping.missing"]["postgres_user_found"] is True

    # The mapping row deleted outside Terraform is planned again.
    with immuta_db.connect() as conn:
        conn.execute("DELETE FROM immuta.user_mappings WHERE immuta_user = 'service-account'")
    drift = terraform.plan()
    assert drift.returncode == 2 and "1 to add" in drift.stdout
    terraform.apply()
    terraform.destroy()
    assert mapping_rows(immuta_db) == []
    server.drop_role(bob)
    server.drop_role("nobody-here")


def test_roles_differing_only_by_case_need_the_exact_name(
    terraform: Terraform, immuta_db: Database
) -> None:
    base = unique("dana_")
    create_role(immuta_db.server, base)
    create_role(immuta_db.server, base.upper())
    try:
        terraform.write(
            provider_block(immuta_db.server)
            + connection_hcl(immuta_db)
            + mapping_block(
                "m",
                "dana",
                f'  postgres {{\n    mode = "username"\n    username = "{base.title()}"\n  }}',
            )
        )
        result = terraform.apply(check=False)
        assert result.returncode == 1
        assert f"PostgreSQL username '{base.title()}' is ambiguous" in result.text
        assert base in result.text and base.upper() in result.text
        terraform.write(
            provider_block(immuta_db.server)
            + connection_hcl(immuta_db)
            + mapping_block(
                "m",
                "dana",
                f'  postgres {{\n    mode = "username"\n    username = "{base.upper()}"\n  }}',
            )
        )
        terraform.apply()
        assert (
            terraform.resources()["immuta_user_mapping.m"]["effective_postgres_username"]
            == base.upper()
        )
    finally:
        immuta_db.server.drop_role(base)
        immuta_db.server.drop_role(base.upper())


def test_unregistered_connection_is_named(terraform: Terraform, immuta_db: Database) -> None:
    missing_id = f"{immuta_db.host}:{immuta_db.port}/{immuta_db.name}/Nowhere"
    terraform.write(
        provider_block(immuta_db.server)
        + f'resource "immuta_user_mapping" "m" {{\n  connection_id = "{missing_id}"\n'
        '  immuta_user = "alice"\n}\n'
    )
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert "Connection 'Nowhere' is not registered" in result.text
    assert missing_id in result.text
    assert mapping_rows(immuta_db) == []


@pytest.mark.pg17_only
@pytest.mark.parametrize(
    "user",
    ["alice@example.com", "team/data eng", 'o\'brien "quoted"', "Zoë 名前", "hash#percent%"],
)
def test_import_round_trip(
    terraform: Terraform, immuta_db: Database, user: str, pg_server: PostgresServer
) -> None:
    terraform.write(
        provider_block(immuta_db.server)
        + connection_hcl(immuta_db)
        + mapping_block("m", user, '  postgres {\n    mode = "none"\n  }')
    )
    terraform.apply()
    mapping_id = terraform.resources()["immuta_user_mapping.m"]["id"]
    terraform.run("state", "rm", "immuta_user_mapping.m")
    terraform.run("import", "-no-color", "immuta_user_mapping.m", mapping_id)
    assert terraform.plan().returncode == 0
    assert terraform.resources()["immuta_user_mapping.m"]["immuta_user"] == user


def test_aws_block_refused_on_self_managed_at_plan(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer
) -> None:
    terraform.write(aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db))
    terraform.apply()
    terraform.write(
        aws_provider(immuta_db, moto_server)
        + connection_hcl(immuta_db)
        + mapping_block("m", "alice", '  aws {\n    user_type = "unset"\n  }')
    )
    result = terraform.plan()
    assert result.returncode == 1
    assert "AWS mapping not available for this connection" in result.text
    assert "self_managed deployment" in result.text
    assert mapping_rows(immuta_db) == []


# ------------------------------------------------------------------ AWS principals


@pytest.fixture
def iam(moto_server: MotoServer):
    return moto_server.client("iam")


def make_role(iam, name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


@pytest.mark.pg17_only
def test_aws_principals(
    terraform: Terraform,
    immuta_db: Database,
    moto_server: MotoServer,
    iam,
    pg_server: PostgresServer,
) -> None:
    role, user = unique("Analyst"), unique("etl-")
    role_arn = make_role(iam, role)
    user_arn = iam.create_user(UserName=user)["User"]["Arn"]
    store_id = moto_server.client("identitystore").meta and "d-1234567890"
    idc_user = moto_server.client("identitystore").create_user(
        IdentityStoreId=store_id,
        UserName=unique("sso"),
        DisplayName="SSO User",
        Name={"GivenName": "S", "FamilyName": "U"},
    )["UserId"]
    provider = aws_provider(immuta_db, moto_server, identity_store_id=f'"{store_id}"')
    config = (
        provider
        + connection_hcl(immuta_db, "rds")
        + mapping_block(
            "role",
            "analyst",
            f'  aws {{\n    user_type = "iam_role"\n    principal = "{role}"\n  }}',
        )
        + mapping_block(
            "user",
            "etl",
            f'  aws {{\n    user_type = "iam_user"\n    principal = "{user_arn}"\n  }}',
        )
        + mapping_block(
            "sso",
            "sso",
            f'  aws {{\n    user_type = "identity_center_user"\n    principal = "{idc_user}"\n  }}',
        )
        + mapping_block("fallback", "plain", '  aws {\n    user_type = "unset"\n  }')
    )
    terraform.write(config)
    terraform.apply()
    resources = terraform.resources()
    assert resources["immuta_user_mapping.role"]["aws_principal_arn"] == role_arn
    assert resources["immuta_user_mapping.user"]["aws_principal_arn"] == user_arn
    assert resources["immuta_user_mapping.sso"]["aws_principal_arn"] is None
    assert resources["immuta_user_mapping.fallback"]["aws"] == {
        "user_type": "unset",
        "principal": None,
    }
    assert terraform.plan().returncode == 0

    # The same role for a second Immuta user on this connection is refused, naming the holder.
    terraform.write(
        config
        + mapping_block(
            "second",
            "someone-else",
            f'  aws {{\n    user_type = "iam_role"\n    principal = "{role_arn}"\n  }}',
        )
    )
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert f"IAM role '{role_arn}' is already mapped to 'analyst'" in result.text
    terraform.write(config)

    # A principal deleted in IAM since the last apply: the next plan is not empty.
    iam.delete_role(RoleName=role)
    drift = terraform.plan()
    assert drift.returncode == 2 and "aws_principal_arn" in drift.stdout
    result = terraform.apply(check=False)
    assert result.returncode == 1 and f"IAM role '{role}' does not exist" in result.text
    # AWS names are case-sensitive.
    make_role(iam, role)
    terraform.write(config.replace(f'principal = "{role}"', f'principal = "{role.lower()}"'))
    result = terraform.apply(check=False)
    assert result.returncode == 1 and f"IAM role '{role.lower()}' does not exist" in result.text


@pytest.mark.pg17_only
def test_identity_center_rules(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer, pg_server: PostgresServer
) -> None:
    provider = aws_provider(immuta_db, moto_server, identity_store_id='"d-1234567890"')
    terraform.write(
        provider
        + connection_hcl(immuta_db, "aurora")
        + mapping_block(
            "email",
            "sso",
            aws_body("identity_center_user", "sso@example.com"),
        )
    )
    result = terraform.plan()
    assert result.returncode == 1
    assert "looks like an email address" in result.text and "User ID" in result.text
    unknown_id = str(uuid.uuid4())
    terraform.write(
        provider
        + connection_hcl(immuta_db, "aurora")
        + mapping_block(
            "ghost",
            "sso",
            aws_body("identity_center_user", unknown_id),
        )
    )
    result = terraform.apply(check=False)
    assert result.returncode == 1
    assert f"IAM Identity Center user '{unknown_id}' does not exist" in result.text
    assert [r[0] for r in mapping_rows(immuta_db)] == []


@pytest.mark.pg17_only
def test_concurrent_applies_map_one_role_once(
    tmp_path, immuta_db: Database, moto_server: MotoServer, iam, pg_server: PostgresServer
) -> None:
    role = unique("Shared")
    make_role(iam, role)
    owner = Terraform(tmp_path / "owner")
    owner.write(aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db, "rds"))
    owner.apply()
    connection_id = owner.resources()["immuta_postgres_connection.main"]["id"]
    contenders = []
    for n in range(2):
        tf = Terraform(tmp_path / f"contender{n}")
        tf.write(
            aws_provider(immuta_db, moto_server)
            + f'resource "immuta_user_mapping" "m" {{\n  connection_id = "{connection_id}"\n'
            f'  immuta_user = "user{n}"\n  aws {{\n    user_type = "iam_role"\n'
            f'    principal = "{role}"\n  }}\n}}\n'
        )
        tf.init()
        contenders.append(tf)
    results = [None, None]

    def run(n: int) -> None:
        results[n] = contenders[n].apply(check=False)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [r.output for r in results]
    loser = next(r for r in results if r.returncode == 1)
    assert "is already mapped to 'user" in loser.text
    rows = mapping_rows(immuta_db)
    assert len(rows) == 1 and rows[0][4] == "iam_role"


@pytest.mark.pg17_only
def test_plaintext_transport_when_terraform_disables_tls(
    terraform: Terraform, immuta_db: Database
) -> None:
    """TF_DISABLE_PLUGIN_TLS: grpc-go speaks plaintext HTTP/2 to the provider's own server."""
    terraform.write(
        provider_block(immuta_db.server)
        + connection_hcl(immuta_db)
        + "".join(mapping_block(f"m{n}", f"user{n}@example.com") for n in range(3))
    )
    plaintext = {"TF_DISABLE_PLUGIN_TLS": "1", "TF_LOG": "debug"}
    terraform.init()
    applied = terraform.run("apply", "-auto-approve", env=plaintext)
    assert applied.returncode == 0, applied.text
    assert "configuring client automatic mTLS" not in applied.text  # it really was plaintext
    assert [row[0] for row in mapping_rows(immuta_db)] == [f"user{n}@example.com" for n in range(3)]
    assert terraform.run("plan", "-detailed-exitcode", env=plaintext, check=False).returncode == 0
    terraform.run("destroy", "-auto-approve", env=plaintext)
    assert mapping_rows(immuta_db) == []
