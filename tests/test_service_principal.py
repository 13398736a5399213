"""immuta_aws_service_principal end to end: real terraform, moto (IAM) and PostgreSQL 17.

PostgreSQL stands in for RDS: each server gets the `rds_iam` role RDS has. Also unit tests
of the semantic comparison of policy documents.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from harness import MotoServer, PostgresServer, Terraform, provider_block, resource
from harness.aws_example import (
    ACCOUNT,
    IMMUTA_ACCOUNT,
    REGION,
    RESOURCE_ID,
    assumed_role_setup,
    ensure_rds_iam,
)
from psycopg import sql

from tfprovider_immuta_pg.immuta import policies
from tfprovider_immuta_pg.immuta.aws_service_principal.external_id import (
    external_id_checker,
    seal_external_id,
)

ADDRESS = "immuta_aws_service_principal.svc"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def documented_trust(external_id: str, account: str = IMMUTA_ACCOUNT) -> dict:
    """The trust policy of step 4 of Immuta's "AWS Assumed Role" setup, verbatim."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "assumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def documented_policy(user: str, resource_id: str = RESOURCE_ID) -> dict:
    """The rds-db:connect policy of step 1 of Immuta's "AWS Assumed Role" setup, verbatim."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{resource_id}/{user}",
            }
        ],
    }


@dataclass
class World:
    pg: PostgresServer
    moto: MotoServer
    tf: Terraform
    role: str
    external_id: str

    @property
    def iam(self):
        return self.moto.client("iam")

    @property
    def policy_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:policy/{self.role}-rds-connect"

    def provider(self) -> str:
        return provider_block(
            self.pg,
            aws=self.moto.aws_block(region=REGION),
        )

    def resource(self, external_id: str | None = None, **extra: str) -> str:
        values: dict[str, object] = {
            "role_name": self.role,
            "aws_account_id": ACCOUNT,
            "db_resource_id": RESOURCE_ID,
            "immuta_account_id": IMMUTA_ACCOUNT,
            "external_id": external_id or self.external_id,
            "hostname": self.pg.host,
            "port": self.pg.port,
        }
        return resource("immuta_aws_service_principal", "svc", **{**values, **extra})

    def write(self, external_id: str | None = None, **extra: str) -> None:
        self.tf.write(self.provider() + self.resource(external_id, **extra))

    def state(self) -> dict:
        return self.tf.resources()[ADDRESS]

    def trust(self) -> dict:
        return self.iam.get_role(RoleName=self.role)["Role"]["AssumeRolePolicyDocument"]

    def policy_document(self, arn: str | None = None) -> dict:
        arn = arn or self.policy_arn
        policy = self.iam.get_policy(PolicyArn=arn)["Policy"]
        version = self.iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
        return version["PolicyVersion"]["Document"]

    def attached(self) -> list[str]:
        found = self.iam.list_attached_role_policies(RoleName=self.role)["AttachedPolicies"]
        return [p["PolicyArn"] for p in found]

    def role_exists(self) -> bool:
        return any(r["RoleName"] == self.role for r in self.iam.list_roles()["Roles"])

    def policy_exists(self, arn: str | None = None) -> bool:
        arns = [p["Arn"] for p in self.iam.list_policies(Scope="Local")["Policies"]]
        return (arn or self.policy_arn) in arns

    def membership(self, user: str | None = None) -> tuple[bool, bool] | None:
        """(login role can log in, member of rds_iam), or None when the role is absent."""
        with self.pg.connect() as conn:
            row = conn.execute(
                "SELECT rolcanlogin, pg_has_role(oid, 'rds_iam', 'MEMBER') FROM pg_roles "
                "WHERE rolname = %s",
                (user or self.role,),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def pg_execute(self, statement: sql.Composable) -> None:
        with self.pg.connect() as conn:
            conn.execute(statement)


@pytest.fixture
def world(pg17: PostgresServer, moto_server: MotoServer, terraform: Terraform) -> Iterator[World]:
    ensure_rds_iam(pg17)
    world = World(pg17, moto_server, terraform, unique("immuta-svc-"), unique("ExtId-") + "x")
    try:
        yield world
    finally:
        pg17.drop_role(world.role)


def assert_no_external_id(world: World, *outputs: str, external_id: str | None = None) -> None:
    secret = external_id or world.external_id
    places = {
        "terraform.tfstate": world.tf.state_file_text(),
        "terraform show -json": world.tf.run("show", "-json").stdout,
        **{f"output #{i}": text for i, text in enumerate(outputs)},
    }
    for where, text in places.items():
        assert secret not in text, f"the external ID appears in {where}"


# ---------------------------------------------------------------------- create


def test_create_matches_the_documented_setup_and_plans_clean(world: World) -> None:
    world.write()
    applied = world.tf.apply()
    state = world.state()
    assert state["id"] == world.role
    assert state["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/{world.role}"
    assert state["policy_arn"] == world.policy_arn
    assert state["policy_name"] == f"{world.role}-rds-connect"
    assert (state["region"], state["db_username"], state["path"]) == (REGION, world.role, "/")
    assert (state["port"], state["database"]) == (world.pg.port, "postgres")
    user_arn = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{RESOURCE_ID}/{world.role}"
    assert state["db_user_arn"] == user_arn
    assert state["external_id"] is None
    assert state["policy_attached"] is True and state["rds_iam_granted"] is True
    assert json.loads(state["policy_document"]) == documented_policy(world.role)
    assert json.loads(state["trust_policy"]) == documented_trust(policies.EXTERNAL_ID_CONFIGURED)

    # In IAM: exactly the documented policies, the policy attached.
    assert world.trust() == documented_trust(world.external_id)
    assert world.policy_document() == documented_policy(world.role)
    assert world.attached() == [world.policy_arn]
    # In PostgreSQL: the login role, a member of rds_iam.
    assert world.membership() == (True, True)

    plan = world.tf.plan_is_empty()
    debug = world.tf.run(
        "plan", "-detailed-exitcode", "-no-color", env={"TF_LOG_PROVIDER": "DEBUG"}, check=False
    )
    assert debug.returncode == 0 and "provider.terraform-provider-immuta" in debug.output
    assert_no_external_id(world, applied.output, plan.output, debug.output)


def test_existing_role_is_refused_and_nothing_is_left_behind(world: World) -> None:
    world.iam.create_role(
        RoleName=world.role, AssumeRolePolicyDocument=json.dumps(documented_trust("someone-else"))
    )
    world.write()
    world.tf.apply_fails(
        f"IAM role '{world.role}' already exists",
        f"terraform import immuta_aws_service_principal.<name> {world.role}",
    )
    assert not world.policy_exists(), "the policy created before the failure is rolled back"
    assert world.membership() is None
    assert world.trust() == documented_trust("someone-else"), "the existing role is untouched"
    world.iam.delete_role(RoleName=world.role)


def test_unreachable_database_fails_before_iam(world: World) -> None:
    # A database that does not exist: the connection fails before anything is created.
    world.write(database="no_such_database")
    world.tf.apply_fails("no_such_database", "does not exist")
    assert not world.role_exists() and not world.policy_exists()


# ---------------------------------------------------------------------- drift


def test_trust_policy_drift(world: World) -> None:
    world.write()
    world.tf.apply()

    # The same document, keys reordered, whitespace and a one-element list: no diff.
    same = (
        '{ "Statement" : [ { "Condition": {"StringEquals": {"sts:ExternalId": ["'
        + world.external_id
        + '"]}},\n  "Action": ["sts:AssumeRole"], "Principal": {"AWS": "arn:aws:iam::'
        + IMMUTA_ACCOUNT
        + ':root"}, "Effect": "Allow", "Sid": "assumeRole" } ],\n "Version": "2012-10-17" }'
    )
    world.iam.update_assume_role_policy(RoleName=world.role, PolicyDocument=same)
    world.tf.plan_is_empty()

    # Another external ID written outside Terraform: drift, restored by apply.
    world.iam.update_assume_role_policy(
        RoleName=world.role, PolicyDocument=json.dumps(documented_trust("attacker-chosen-id"))
    )
    drift = world.tf.plan_changes("1 to change", "0 to add")
    assert policies.EXTERNAL_ID_CHANGED in drift.output
    assert "attacker-chosen-id" not in drift.output
    world.tf.apply()
    assert world.trust() == documented_trust(world.external_id)
    world.tf.plan_is_empty()

    # Another trusted account: drift too.
    world.iam.update_assume_role_policy(
        RoleName=world.role, PolicyDocument=json.dumps(documented_trust(world.external_id, ACCOUNT))
    )
    world.tf.plan_changes()
    applied = world.tf.apply()
    assert world.trust() == documented_trust(world.external_id)
    assert_no_external_id(world, drift.output, applied.output)


def test_detached_revoked_and_edited_are_restored(world: World) -> None:
    world.write()
    world.tf.apply()

    world.iam.detach_role_policy(RoleName=world.role, PolicyArn=world.policy_arn)
    world.tf.plan_changes("1 to change", "policy_attached")
    world.tf.apply()
    assert world.attached() == [world.policy_arn]

    world.pg_execute(sql.SQL("REVOKE rds_iam FROM {}").format(sql.Identifier(world.role)))
    world.tf.plan_changes("rds_iam_granted")
    world.tf.apply()
    assert world.membership() == (True, True)

    # The PostgreSQL role dropped: created and granted again.
    world.pg_execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(world.role)))
    world.tf.plan_changes()
    world.tf.apply()
    assert world.membership() == (True, True)

    # A new default policy version written by hand: drift; the same content reformatted: none.
    other = documented_policy("someone_else")
    world.iam.create_policy_version(
        PolicyArn=world.policy_arn, PolicyDocument=json.dumps(other), SetAsDefault=True
    )
    world.tf.plan_changes("someone_else")
    world.tf.apply()
    assert world.policy_document() == documented_policy(world.role)
    reformatted = json.dumps(
        {
            "Statement": {
                "Resource": [documented_policy(world.role)["Statement"][0]["Resource"]],
                "Action": ["RDS-DB:Connect"],
                "Effect": "Allow",
            },
            "Version": "2012-10-17",
        },
        indent=4,
    )
    world.iam.create_policy_version(
        PolicyArn=world.policy_arn, PolicyDocument=reformatted, SetAsDefault=True
    )
    world.tf.plan_is_empty()


def test_role_deleted_outside_is_created_again(world: World) -> None:
    world.write()
    world.tf.apply()
    world.iam.detach_role_policy(RoleName=world.role, PolicyArn=world.policy_arn)
    world.iam.delete_role(RoleName=world.role)

    world.tf.plan_changes("1 to add", "0 to destroy")
    world.tf.apply()  # the policy left behind is taken over, not duplicated
    assert world.trust() == documented_trust(world.external_id)
    assert world.attached() == [world.policy_arn]
    world.tf.plan_is_empty()


# ---------------------------------------------------------------------- updates


def test_external_id_rotation_and_policy_changes_update_in_place(world: World) -> None:
    world.write()
    world.tf.apply()
    role_id = world.iam.get_role(RoleName=world.role)["Role"]["RoleId"]

    rotated = unique("Rotated-") + "y"
    world.write(external_id=rotated)
    plan = world.tf.plan_changes("1 to change", "0 to destroy", "trust_policy")
    applied = world.tf.apply()
    assert world.trust() == documented_trust(rotated)
    assert world.iam.get_role(RoleName=world.role)["Role"]["RoleId"] == role_id, "not replaced"
    world.tf.plan_is_empty()
    assert_no_external_id(world, plan.output, applied.output, external_id=rotated)
    assert_no_external_id(world, plan.output, applied.output)

    # Five versions already: the oldest non-default one makes room for the new default.
    for i in range(4):
        world.iam.create_policy_version(
            PolicyArn=world.policy_arn,
            PolicyDocument=json.dumps(documented_policy(world.role)),
            SetAsDefault=i == 3,
        )
    new_id = "cluster-ZYXWVUTSRQPONMLKJIHGFEDCBA1"
    world.write(external_id=rotated, db_resource_id=new_id)
    world.tf.plan_changes("1 to change", "0 to destroy")
    world.tf.apply()
    assert world.policy_document() == documented_policy(world.role, new_id)
    versions = world.iam.list_policy_versions(PolicyArn=world.policy_arn)["Versions"]
    assert len(versions) == 5 and "v1" not in {v["VersionId"] for v in versions}
    state = world.state()
    assert state["db_user_arn"].endswith(f":dbuser:{new_id}/{world.role}")
    world.tf.plan_is_empty()


def test_db_username_other_than_the_role_name_is_refused_at_plan(world: World) -> None:
    other = unique("svc_user_")
    world.write(db_username=other)
    result = world.tf.plan_fails(
        "db_username must be the role name",
        f'db_username = "{other}" but role_name = "{world.role}". Immuta logs in to PostgreSQL '
        "with the IAM role name as its username",
        "Remove db_username (it defaults to role_name) or set it to role_name.",
    )
    assert 'db_username = "' in result.text, "the error points at the db_username line"
    assert not world.role_exists() and world.membership(other) is None, "nothing created"
    world.write(db_username=world.role)
    world.tf.apply()
    world.tf.plan_is_empty()


def test_a_state_with_another_db_username_is_corrected(world: World) -> None:
    """A state written by an earlier version, whose db_username differs from role_name:
    the next apply moves rds_iam to the role name and rewrites the policy for it."""
    world.write()
    world.tf.apply()
    other = unique("svc_user_")
    try:
        world.pg_execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE rds_iam").format(sql.Identifier(other))
        )
        world.pg_execute(sql.SQL("REVOKE rds_iam FROM {}").format(sql.Identifier(world.role)))
        pulled = json.loads(world.tf.run("state", "pull").stdout)
        attributes = pulled["resources"][0]["instances"][0]["attributes"]
        attributes["db_username"] = other
        pulled["serial"] += 1
        (world.tf.workdir / "edited.tfstate").write_text(json.dumps(pulled))
        world.tf.run("state", "push", "edited.tfstate")

        world.tf.plan_changes("1 to change", f'~ db_username = "{other}" -> "{world.role}"')
        world.tf.apply()
        assert world.membership() == (True, True), "rds_iam granted to the role name"
        assert world.membership(other) == (True, False), "revoked from the other login role"
        assert world.policy_document() == documented_policy(world.role)
        world.tf.plan_is_empty()
    finally:
        world.pg.drop_role(other)


def test_destroy_removes_iam_and_revokes_rds_iam(world: World) -> None:
    world.write()
    world.tf.apply()
    # A stale non-default version too: DeletePolicy needs them gone first on AWS.
    world.iam.create_policy_version(
        PolicyArn=world.policy_arn,
        PolicyDocument=json.dumps(documented_policy("x")),
        SetAsDefault=False,
    )
    world.tf.destroy()
    assert world.tf.resources() == {}
    assert not world.role_exists()
    assert not world.policy_exists()
    assert world.membership() == (True, False), "login role left (it may own objects)"


# ---------------------------------------------------------------------- import


def test_import_by_role_name(world: World) -> None:
    # Steps 1-5 of the documented setup done by hand.
    iam = world.iam
    policy_arn = iam.create_policy(
        PolicyName=f"{world.role}-rds-connect",
        PolicyDocument=json.dumps(documented_policy(world.role)),
    )["Policy"]["Arn"]
    iam.create_role(
        RoleName=world.role,
        AssumeRolePolicyDocument=json.dumps(documented_trust(world.external_id)),
    )
    iam.attach_role_policy(RoleName=world.role, PolicyArn=policy_arn)
    world.pg_execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(world.role)))
    world.pg_execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(world.role)))

    world.write()
    world.tf.init()
    world.tf.run("import", "-no-color", ADDRESS, world.role)
    state = world.state()
    assert state["policy_arn"] == policy_arn
    assert (state["db_username"], state["db_resource_id"]) == (world.role, RESOURCE_ID)
    assert (state["immuta_account_id"], state["aws_account_id"]) == (IMMUTA_ACCOUNT, ACCOUNT)
    assert json.loads(state["trust_policy"]) == documented_trust(policies.EXTERNAL_ID_UNVERIFIED)
    assert state["hostname"] is None and state["rds_iam_granted"] is None

    # Documented: the external ID and the server cannot be read back, so the first plan is
    # an in-place update recording them; nothing is replaced.
    plan = world.tf.plan_changes("1 to change", "0 to add", "0 to destroy")
    for name in ("hostname", "trust_policy", "rds_iam_granted"):
        assert name in plan.output
    world.tf.apply()
    assert world.trust() == documented_trust(world.external_id)
    world.tf.plan_is_empty()
    assert_no_external_id(world, plan.output)


def test_import_of_an_unknown_role_fails_clearly(world: World) -> None:
    world.write()
    world.tf.init()
    result = world.tf.run("import", "-no-color", ADDRESS, world.role, check=False)
    assert result.returncode == 1
    assert f"No IAM role named '{world.role}' exists" in result.text


# ---------------------------------------------------------------------- validation


def test_invalid_arguments_are_reported_with_their_attribute(world: World) -> None:
    world.write(
        role_name="has space",
        aws_account_id="12345",
        db_resource_id="mydb",
        immuta_account_id="abc",
        region="US-EAST-1",
        db_username="a/b",
        external_id="x",
        path="immuta",
    )
    result = world.tf.validate()
    assert not result["valid"]
    text = json.dumps([(d["summary"], d["detail"]) for d in result["diagnostics"]])
    # Each error points at its attribute's line in the configuration.
    lines = {d["snippet"]["code"].split("=")[0].strip() for d in result["diagnostics"]}
    assert lines >= {"role_name", "aws_account_id", "db_resource_id", "external_id", "path"}
    for expected in (
        "is not a valid IAM role name",
        "is not an AWS account ID",
        "is not an RDS resource ID",
        "is not an AWS account ID for Immuta",
        "is not an AWS region code",
        "contains '/'",
        "The external ID is 1 characters long",
        "is not a valid IAM path",
    ):
        assert expected in text, expected
    assert "x" not in [w.strip("'\".,") for w in text.split()], "external ID never echoed"


# ---------------------------------------------------------------------- the example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aws_assumed_role"


def test_aws_assumed_role_example(world: World, tmp_path: Path) -> None:
    """examples/aws_assumed_role: the service principal, then a connection through it, the
    connection reaching PostgreSQL through the RDS IAM auth front as the assumed role."""
    moto = world.moto
    workdir = tmp_path / "example"
    shutil.copytree(EXAMPLE, workdir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    with assumed_role_setup(world.pg, moto, world.role, world.external_id) as setup:
        front, db = setup.front, setup.database
        tf = Terraform(workdir, env=setup.env)
        applied = tf.apply()
        outputs = tf.outputs()
        assert outputs["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/{world.role}"
        assert outputs["connection_id"] == f"{front.address}/{db.name}/Sales RDS"
        connection = tf.resources()["immuta_postgres_connection.rds"]
        assert (connection["auth_method"], connection["username"]) == (
            "aws_assumed_role",
            world.role,
        )
        accepted = front.accepted(world.role)
        assert accepted and not front.refused()
        assumed = moto.assumed_role(accepted[0].access_key_id)
        assert (assumed.role_arn, assumed.external_id) == (outputs["role_arn"], world.external_id)
        assert world.trust() == documented_trust(world.external_id)
        assert world.membership() == (True, True)

        plan = tf.plan_is_empty()
        assert world.external_id not in tf.state_file_text() + applied.output + plan.output
        tf.destroy()
        assert tf.resources() == {}
        assert not world.role_exists() and not world.policy_exists()


# ---------------------------------------------------------------------- unit: documents


def test_same_policy_ignores_formatting() -> None:
    a = documented_trust("id-1")
    reordered = json.loads(json.dumps(a, sort_keys=True))
    assert policies.same(a, reordered)
    assert policies.same(json.dumps(a), json.dumps(a, indent=2, sort_keys=True))
    assert policies.same(json.dumps(a), quote(json.dumps(a)))  # IAM's URL encoding
    listy = documented_trust("id-1")
    statement = listy["Statement"][0]
    statement["Action"] = ["sts:AssumeRole"]
    statement["Principal"]["AWS"] = [statement["Principal"]["AWS"]]
    statement["Condition"]["StringEquals"]["sts:ExternalId"] = ["id-1"]
    assert policies.same(a, listy)
    single = dict(a, Statement=a["Statement"][0])
    assert policies.same(a, single)
    shouting = documented_policy("u")
    shouting["Statement"][0]["Action"] = "RDS-DB:Connect"  # IAM actions are case-insensitive
    assert policies.same(documented_policy("u"), shouting)
    is_false = [
        policies.same(a, documented_trust("id-2")),
        policies.same(a, documented_trust("id-1", "111111111111")),
        # resources are case-sensitive
        policies.same(documented_policy("u"), documented_policy("U")),
        policies.same(a, None),
        policies.same("not json", "not json "),
    ]
    assert not any(is_false)
    assert policies.same(None, None) and policies.same("not json", "not json")


def test_statement_and_value_order_do_not_matter() -> None:
    two = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["a:x", "a:y"], "Resource": "*"},
            {"Effect": "Deny", "Action": "b:z", "Resource": ["r1", "r2"]},
        ],
    }
    swapped = {
        "Statement": [
            {"Resource": ["r2", "r1"], "Action": "b:z", "Effect": "Deny"},
            {"Resource": ["*"], "Action": ["a:y", "a:x"], "Effect": "Allow"},
        ],
        "Version": "2012-10-17",
    }
    assert policies.same(two, swapped)
    swapped["Statement"][0]["Effect"] = "Allow"
    assert not policies.same(two, swapped)


def test_external_ids_are_masked_by_what_the_hash_says() -> None:
    sealed = seal_external_id("the-real-id")
    assert b"the-real-id" not in sealed
    check = external_id_checker(sealed)
    assert check is not None and check("the-real-id") and not check("the-real-iD")
    assert external_id_checker(b"") is None and external_id_checker(b"{}") is None
    ok = policies.mask_external_ids(documented_trust("the-real-id"), check)
    assert ok == documented_trust(policies.EXTERNAL_ID_CONFIGURED)
    changed = policies.mask_external_ids(documented_trust("other"), check)
    assert changed == documented_trust(policies.EXTERNAL_ID_CHANGED)
    unknown = policies.mask_external_ids(documented_trust("the-real-id"), None)
    assert unknown == documented_trust(policies.EXTERNAL_ID_UNVERIFIED)
    both = documented_trust("x")
    both["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] = ["the-real-id", "y"]
    masked = policies.mask_external_ids(both, check)
    assert masked["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] == [
        policies.EXTERNAL_ID_CONFIGURED,
        policies.EXTERNAL_ID_CHANGED,
    ]
    assert not policies.same(masked, documented_trust(policies.EXTERNAL_ID_CONFIGURED))


def test_connect_policy_and_trust_account_are_found() -> None:
    assert policies.connect_resources(json.dumps(documented_policy("u"))) == [
        f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{RESOURCE_ID}/u"
    ]
    assert policies.connect_resources({"Statement": {"Effect": "Deny", "Action": "*"}}) == []
    assert policies.trusted_account(documented_trust("x")) == IMMUTA_ACCOUNT
    assert policies.trusted_account({"Statement": [{"Principal": "*"}]}) is None
