"""immuta_user_mapping end to end: real terraform, PostgreSQL 16/17 and moto."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from harness import (
    Body,
    Database,
    MotoServer,
    PostgresServer,
    Raw,
    Terraform,
    connection_block,
    provider_block,
    resource,
    step,
)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def connection_hcl(db: Database, deployment: str = "self_managed") -> str:
    return connection_block(db.host, db.port, db.name, deployment_type=deployment)


MAIN_CONNECTION_ID = Raw("immuta_postgres_connection.main.id")


def mapping_block(
    name: str,
    user: str,
    connection_id: str | Raw = MAIN_CONNECTION_ID,
    **blocks: Body,
) -> str:
    return resource(
        "immuta_user_mapping", name, connection_id=connection_id, immuta_user=user, **blocks
    )


def postgres(mode: str, username: str | None = None) -> Body:
    return Body(mode=mode) if username is None else Body(mode=mode, username=username)


def aws(user_type: str, principal: str | None = None) -> Body:
    return (
        Body(user_type=user_type)
        if principal is None
        else Body(user_type=user_type, principal=principal)
    )


def aws_provider(db: Database, moto: MotoServer, **settings: str) -> str:
    return provider_block(db.server, aws=moto.aws_block(**settings))


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
    server.create_role(alice)
    server.create_role(bob)

    def config(alice_as: str) -> str:
        return (
            provider_block(server)
            + connection_hcl(immuta_db)
            + mapping_block("by_name", "alice@example.com", postgres=postgres("username", alice_as))
            + mapping_block("fallback", bob.lower())
            + mapping_block("none", "service-account", postgres=postgres("none"))
            + mapping_block("missing", "nobody-here")
        )

    with step("each mode maps as written; a missing role is a warning, not a diff"):
        terraform.write(config(alice.upper()))
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
            missing["postgres_user_found"] is False
            and missing["effective_postgres_username"] is None
        )
        terraform.plan_is_empty("a missing role is no perpetual diff")
        rows = {r[0]: r for r in mapping_rows(immuta_db)}
        assert rows["alice@example.com"][1:4] == ("username", alice.upper(), alice)
        assert rows["service-account"][1:4] == ("none", None, None)

    with step("a change of case alone is no change"):
        terraform.write(config(alice.capitalize()))
        terraform.plan_is_empty()

    with step("a role dropped since the last apply makes the plan non-empty; apply converges"):
        server.drop_role(alice)
        terraform.plan_changes("1 to change", "postgres_user_found")
        terraform.apply()
        assert terraform.resources()["immuta_user_mapping.by_name"]["postgres_user_found"] is False
        terraform.plan_is_empty()

    with step("a role created since: the missing user is found at the next apply"):
        server.create_role("nobody-here")
        terraform.plan_changes()
        terraform.apply()
        assert terraform.resources()["immuta_user_mapping.missing"]["postgres_user_found"] is True

    with step("a mapping row deleted outside Terraform is planned again"):
        with immuta_db.connect() as conn:
            conn.execute("DELETE FROM immuta.user_mappings WHERE immuta_user = 'service-account'")
        terraform.plan_changes("1 to add")
        terraform.apply()

    with step("destroy removes every mapping"):
        terraform.destroyed()
        assert mapping_rows(immuta_db) == []
    server.drop_role(bob)
    server.drop_role("nobody-here")


def test_roles_differing_only_by_case_need_the_exact_name(
    terraform: Terraform, immuta_db: Database
) -> None:
    base = unique("dana_")
    immuta_db.server.create_role(base)
    immuta_db.server.create_role(base.upper())
    try:

        def config(username: str) -> str:
            return (
                provider_block(immuta_db.server)
                + connection_hcl(immuta_db)
                + mapping_block("m", "dana", postgres=postgres("username", username))
            )

        terraform.write(config(base.title()))
        terraform.apply_fails(
            f"PostgreSQL username '{base.title()}' is ambiguous", base, base.upper()
        )
        terraform.write(config(base.upper()))
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
    terraform.write(provider_block(immuta_db.server) + mapping_block("m", "alice", missing_id))
    terraform.apply_fails("Connection 'Nowhere' is not registered", missing_id)
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
        + mapping_block("m", user, postgres=postgres("none"))
    )
    terraform.apply()
    import_again(terraform, "immuta_user_mapping.m")
    terraform.plan_is_empty()
    assert terraform.resources()["immuta_user_mapping.m"]["immuta_user"] == user


def import_again(terraform: Terraform, address: str) -> None:
    """Forget `address` and import it by its id, as a user adopting an existing mapping."""
    mapping_id = terraform.resources()[address]["id"]
    terraform.run("state", "rm", address)
    terraform.run("import", "-no-color", address, mapping_id)


# The two spellings of the default PostgreSQL mapping.
DEFAULT_SPELLINGS = {"no block": {}, "mode unset": {"postgres": postgres("unset")}}


@pytest.mark.pg17_only
@pytest.mark.parametrize("spelling", DEFAULT_SPELLINGS.values(), ids=DEFAULT_SPELLINGS.keys())
def test_import_gives_back_the_postgres_block_as_written(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer, spelling: dict
) -> None:
    def config(blocks: dict) -> str:
        return (
            provider_block(immuta_db.server)
            + connection_hcl(immuta_db)
            + mapping_block("m", "dora", **blocks)
        )

    terraform.write(config(spelling))
    terraform.apply()
    written = terraform.resources()["immuta_user_mapping.m"]["postgres"]
    with step("an import plans empty against the configuration that wrote the mapping"):
        import_again(terraform, "immuta_user_mapping.m")
        terraform.plan_is_empty("the store recorded how the postgres block was spelled")
        assert terraform.resources()["immuta_user_mapping.m"]["postgres"] == written
    with step("the other spelling means the same: an in-place update records it, then empty"):
        other = next(s for s in DEFAULT_SPELLINGS.values() if s != spelling)
        terraform.write(config(other))
        import_again(terraform, "immuta_user_mapping.m")
        terraform.plan_changes("1 to change")
        terraform.apply()
        import_again(terraform, "immuta_user_mapping.m")
        terraform.plan_is_empty()
        assert mapping_rows(immuta_db)[0][:2] == ("dora", "unset")


@pytest.mark.pg17_only
def test_mappings_in_a_store_before_version_3_read_import_and_upgrade(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer
) -> None:
    from tfprovider_immuta_pg.immuta import store

    terraform.write(provider_block(immuta_db.server) + connection_hcl(immuta_db))
    terraform.apply()
    connection_id = terraform.resources()["immuta_postgres_connection.main"]["id"]
    with immuta_db.connect() as conn:
        # The store as provider versions before the column wrote it.
        conn.execute("ALTER TABLE immuta.user_mappings DROP COLUMN postgres_block_written")
        conn.execute("ALTER TABLE immuta.crawled_databases DROP COLUMN acl_fingerprint")
        conn.execute("ALTER TABLE immuta.user_mappings DROP COLUMN managed_by")
        conn.execute("ALTER TABLE immuta.connections DROP COLUMN mappings_owner")
        conn.execute("DELETE FROM immuta.schema_version WHERE version >= 3")
        conn.execute(
            "INSERT INTO immuta.user_mappings (connection_key, immuta_user, postgres_mode) "
            "VALUES ('Warehouse', 'old-unset', 'unset'), ('Warehouse', 'old-none', 'none')"
        )
    terraform.write(
        provider_block(immuta_db.server)
        + connection_hcl(immuta_db)
        + mapping_block("unset", "old-unset")
        + mapping_block("none", "old-none", postgres=postgres("none"))
    )
    for name, user in (("unset", "old-unset"), ("none", "old-none")):
        terraform.run(
            "import", "-no-color", f"immuta_user_mapping.{name}", f"{connection_id}#{user}"
        )
    terraform.plan_is_empty("a store at version 2 reads as before")
    terraform.write(
        provider_block(immuta_db.server)
        + connection_hcl(immuta_db)
        + mapping_block("unset", "old-unset", postgres=postgres("unset"))
        + mapping_block("none", "old-none", postgres=postgres("none"))
    )
    terraform.apply()
    with immuta_db.connect() as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM immuta.schema_version")]
        written = conn.execute(
            "SELECT immuta_user, postgres_block_written FROM immuta.user_mappings ORDER BY 1"
        ).fetchall()
    assert sorted(versions) == list(range(1, store.LATEST_VERSION + 1))
    assert written == [("old-none", True), ("old-unset", True)]
    terraform.destroyed()


def test_aws_block_refused_on_self_managed_at_plan(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer
) -> None:
    terraform.write(aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db))
    terraform.apply()
    terraform.write(
        aws_provider(immuta_db, moto_server)
        + connection_hcl(immuta_db)
        + mapping_block("m", "alice", aws=aws("unset"))
    )
    terraform.plan_fails("AWS mapping not available for this connection", "self_managed deployment")
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
    provider = aws_provider(immuta_db, moto_server, identity_store_id=store_id)

    def config(role_name: str = role) -> str:
        return (
            provider
            + connection_hcl(immuta_db, "rds")
            + mapping_block("role", "analyst", aws=aws("iam_role", role_name))
            + mapping_block("user", "etl", aws=aws("iam_user", user_arn))
            + mapping_block("sso", "sso", aws=aws("identity_center_user", idc_user))
            + mapping_block("fallback", "plain", aws=aws("unset"))
        )

    terraform.write(config())
    terraform.apply()
    resources = terraform.resources()
    assert resources["immuta_user_mapping.role"]["aws_principal_arn"] == role_arn
    assert resources["immuta_user_mapping.user"]["aws_principal_arn"] == user_arn
    assert resources["immuta_user_mapping.sso"]["aws_principal_arn"] is None
    assert resources["immuta_user_mapping.fallback"]["aws"] == {
        "user_type": "unset",
        "principal": None,
    }
    terraform.plan_is_empty()

    with step("the same role for a second Immuta user is refused, naming the holder"):
        terraform.write(
            config() + mapping_block("second", "someone-else", aws=aws("iam_role", role_arn))
        )
        terraform.apply_fails(f"IAM role '{role_arn}' is already mapped to 'analyst'")
        terraform.write(config())

    with step("a principal deleted in IAM since the last apply: the next plan is not empty"):
        iam.delete_role(RoleName=role)
        terraform.plan_changes("aws_principal_arn")
        terraform.apply_fails(f"IAM role '{role}' does not exist")

    with step("AWS names are case-sensitive"):
        make_role(iam, role)
        terraform.write(config(role.lower()))
        terraform.apply_fails(f"IAM role '{role.lower()}' does not exist")


@pytest.mark.pg17_only
def test_identity_center_rules(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer, pg_server: PostgresServer
) -> None:
    provider = aws_provider(immuta_db, moto_server, identity_store_id="d-1234567890")
    terraform.write(
        provider
        + connection_hcl(immuta_db, "aurora")
        + mapping_block("email", "sso", aws=aws("identity_center_user", "sso@example.com"))
    )
    terraform.plan_fails("looks like an email address", "User ID")
    unknown_id = str(uuid.uuid4())
    terraform.write(
        provider
        + connection_hcl(immuta_db, "aurora")
        + mapping_block("ghost", "sso", aws=aws("identity_center_user", unknown_id))
    )
    terraform.apply_fails(f"IAM Identity Center user '{unknown_id}' does not exist")
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
            + mapping_block("m", f"user{n}", connection_id, aws=aws("iam_role", role))
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
    assert mapping_rows(immuta_db) == [] and terraform.resources() == {}
