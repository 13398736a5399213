"""examples/ for real: every folder with a main.tf applies against a fresh database, plans
clean (exit 0) and destroys; the documentation snippets validate and are formatted.

Runnable example folders read the same variables the demo passes: pg_host, pg_port,
pg_username, pg_password and immuta_database (TF_VAR_* in the environment).

Folders with `*.tftest.hcl` files (in the folder or its tests/) also pass `terraform test`
in a prepared copy. Folders without one, and why:
- data-sources/*: the snippets take the server from variables (defaults name an example
  host), so their test files run against a prepared PostgreSQL 17 server.
- provider: check.tf (not on the provider page) reads a server through the default block.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from harness import (
    TERRAFORM_1_0,
    Database,
    MotoServer,
    PostgresServer,
    Terraform,
    TerraformError,
    connection_block,
    terraform_env,
)
from harness.aws_example import assumed_role_setup
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Examples that need more than a PostgreSQL server have their own end-to-end test
# (aws_assumed_role: moto and the RDS front, in tests/test_service_principal.py; user_mappings:
# moto, through its terraform test below).
OWN_TEST = {"aws_assumed_role", "user_mappings"}
RUNNABLE = sorted(p.parent for p in EXAMPLES.glob("*/main.tf") if p.parent.name not in OWN_TEST)
NOT_IMPLEMENTED = "not implemented yet"

# PostgreSQL login roles the examples map Immuta users to ("Bob" is found from the Immuta
# user "bob" by the case-insensitive fallback).
SAMPLE_ROLES = ("alice", "Bob")

# Folders of documentation snippets (tools/gendocs.py embeds them in docs/).
SNIPPETS = [EXAMPLES / "provider"] + sorted(
    p for kind in ("resources", "data-sources", "functions") for p in EXAMPLES.glob(f"{kind}/*")
)

REQUIRED_PROVIDERS = """terraform {
  required_providers {
    immuta = { source = "immuta-pg/immuta" }
  }
}
"""


def test_there_is_a_quickstart():
    assert EXAMPLES / "quickstart" in RUNNABLE


SAMPLE_SQL = """
CREATE SCHEMA finance;
CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric);
CREATE VIEW public.big_orders AS SELECT * FROM public.orders WHERE amount > 1000;
CREATE TABLE finance.invoices (id int, issued date) PARTITION BY RANGE (issued);
CREATE MATERIALIZED VIEW finance.totals AS SELECT count(*) FROM public.orders;
"""


def _create_sample_roles(server: PostgresServer) -> None:
    with server.connect() as conn:
        for role in SAMPLE_ROLES:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                # Roles are server-wide and other tests may use them too: never dropped.
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))


@pytest.fixture
def sample_data(pg_server: PostgresServer) -> Iterator[Database]:
    """The login roles the examples map to, and a data database to crawl."""
    _create_sample_roles(pg_server)
    db = pg_server.temp_database(prefix="sales_")
    with db.connect() as conn:
        conn.execute(SAMPLE_SQL)
    try:
        yield db
    finally:
        db.drop()


def _check_quickstart(tf: Terraform, db: Database, data: Database) -> None:
    outputs = tf.outputs()
    assert outputs["connection_id"] == f"{db.host}:{db.port}/{db.name}/Quickstart"
    assert data.name in outputs["databases"] and db.name not in outputs["databases"]
    assert outputs["data_object_count"] >= 4
    resources = tf.resources()
    alice = resources["immuta_user_mapping.alice"]
    assert alice["postgres_user_found"] is True
    assert alice["effective_postgres_username"] == "alice"
    bob = resources["immuta_user_mapping.bob"]
    assert bob["postgres_user_found"] is True
    assert bob["effective_postgres_username"] == "Bob"


EXTRA_CHECKS: dict[str, Callable[[Terraform, Database, Database], None]] = {
    "quickstart": _check_quickstart,
}


def _state_schema_exists(db: Database) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]


def _pending_reason(result_text: str) -> str:
    """The 'X: create is not implemented yet' summaries in terraform's output."""
    found = []
    for line in result_text.splitlines():
        line = line.strip(" │╷╵")
        if NOT_IMPLEMENTED in line and line not in found:
            found.append(line.removeprefix("Error: "))
    return "; ".join(found) or NOT_IMPLEMENTED


@pytest.mark.parametrize("example", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_example_applies_plans_clean_and_destroys(
    example: Path, immuta_db: Database, sample_data: Database, tmp_path: Path
):
    workdir = tmp_path / example.name
    shutil.copytree(example, workdir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    server = immuta_db.server
    tf = Terraform(
        workdir,
        env={
            "TF_VAR_pg_host": immuta_db.host,
            "TF_VAR_pg_port": str(immuta_db.port),
            "TF_VAR_pg_username": server.user,
            "TF_VAR_pg_password": server.password,
            "TF_VAR_immuta_database": immuta_db.name,
        },
    )
    tf.init()
    assert (workdir / ".terraform.lock.hcl").is_file()

    applied = tf.apply(check=False)
    if applied.returncode != 0:
        if NOT_IMPLEMENTED not in applied.text:
            raise TerraformError(f"terraform apply failed:\n{applied.output}")
        # Some resource is declared but not implemented yet: what did apply must still be
        # right (no drift, clean destroy), then the example counts as expected to fail.
        reason = _pending_reason(applied.output)
        addresses = tf.run("state", "list").stdout.split()
        if addresses:
            plan = tf.plan(*(f"-target={a}" for a in addresses))
            assert plan.returncode == 0, f"drift right after apply:\n{plan.output}"
        destroyed = tf.destroy(check=False)
        if destroyed.returncode != 0:
            assert NOT_IMPLEMENTED in destroyed.text, destroyed.output
            reason += "; " + _pending_reason(destroyed.output)
        else:
            assert tf.resources() == {}
        pytest.xfail(reason)

    plan = tf.plan()
    assert plan.returncode == 0, f"plan after apply is not empty:\n{plan.output}"
    check = EXTRA_CHECKS.get(example.name)
    if check:
        check(tf, immuta_db, sample_data)

    tf.destroy()
    assert tf.resources() == {}
    assert not _state_schema_exists(immuta_db), "destroy left the immuta state schema behind"


@pytest.mark.parametrize("folder", SNIPPETS, ids=[str(p.relative_to(EXAMPLES)) for p in SNIPPETS])
def test_doc_snippet_validates(folder: Path, tmp_path: Path):
    """The snippets the docs embed are valid configurations for this provider's schema."""
    workdir = tmp_path / "snippet"
    shutil.copytree(folder, workdir)
    if "required_providers" not in "".join(p.read_text() for p in workdir.glob("*.tf")):
        (workdir / "_providers.tf").write_text(REQUIRED_PROVIDERS)
    tf = Terraform(workdir)
    result = tf.validate()
    assert result["valid"], result["diagnostics"]


def test_examples_are_formatted():
    res = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(EXAMPLES)],
        env=terraform_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, f"run `terraform fmt -recursive examples`:\n{res.stdout}"


# ---------------------------------------------------------------------- terraform test


def _tftest_folder(path: Path) -> Path:
    """The configuration a test file belongs to: its folder, or the parent of its tests/."""
    return path.parent.parent if path.parent.name == "tests" else path.parent


TFTEST_FILES = sorted(p for p in EXAMPLES.rglob("*.tftest.hcl") if ".terraform" not in p.parts)
TFTEST_FOLDERS = sorted({_tftest_folder(p) for p in TFTEST_FILES})
RUN_BLOCK = re.compile(r'^run\s+"[^"]*"\s*\{', re.MULTILINE)
# The data database the runnable examples' test files expect, as ./build.sh demo makes it.
SAMPLE_DATABASE = "sales"


def _run_blocks(folder: Path) -> int:
    files = [p for p in TFTEST_FILES if _tftest_folder(p) == folder]
    return sum(len(RUN_BLOCK.findall(p.read_text())) for p in files)


def test_runnable_examples_have_terraform_tests():
    assert set(RUNNABLE) | {EXAMPLES / name for name in OWN_TEST} <= set(TFTEST_FOLDERS)


# A preparer sets up what a folder's test files need around the copy in `workdir` and yields
# the environment for terraform; after `terraform test` (which destroys what it applied) it
# checks that nothing was left behind, then undoes its own setup.
Preparer = Callable[[pytest.FixtureRequest, Path], AbstractContextManager[dict[str, str]]]


@contextmanager
def _postgres_example(request: pytest.FixtureRequest, workdir: Path) -> Iterator[dict[str, str]]:
    """A fresh Immuta database on the PostgreSQL 17 server, the sample roles and `sales`."""
    server: PostgresServer = request.getfixturevalue("pg17")
    _create_sample_roles(server)
    server.drop_database(SAMPLE_DATABASE)  # left over by an interrupted run, if any
    server.create_database(SAMPLE_DATABASE)
    immuta = server.temp_database()
    try:
        with server.connect(SAMPLE_DATABASE) as conn:
            conn.execute(SAMPLE_SQL)
        yield {
            "TF_VAR_pg_host": immuta.host,
            "TF_VAR_pg_port": str(immuta.port),
            "TF_VAR_pg_username": server.user,
            "TF_VAR_pg_password": server.password,
            "TF_VAR_immuta_database": immuta.name,
        }
        assert not _state_schema_exists(immuta), "terraform test left the immuta schema behind"
    finally:
        immuta.drop()
        server.drop_database(SAMPLE_DATABASE)


@contextmanager
def _aws_assumed_role_example(
    request: pytest.FixtureRequest, workdir: Path
) -> Iterator[dict[str, str]]:
    """PostgreSQL 17 as RDS, moto for IAM and STS, the RDS front for IAM auth tokens."""
    pg: PostgresServer = request.getfixturevalue("pg17")
    moto: MotoServer = request.getfixturevalue("moto_server")
    role = f"immuta-svc-{uuid.uuid4().hex[:8]}"
    with assumed_role_setup(pg, moto, role, f"ExtId-{uuid.uuid4().hex[:8]}x") as setup:
        yield setup.env
        assert setup.front.accepted(role), "the connection did not go through the RDS front"
        roles = moto.client("iam").list_roles()["Roles"]
        assert role not in [r["RoleName"] for r in roles], "terraform test left the role behind"


@contextmanager
def _doc_snippet(request: pytest.FixtureRequest, workdir: Path) -> Iterator[dict[str, str]]:
    """The snippet as a configuration: required_providers added, and no import blocks (they
    name example hosts, and would be read at plan time)."""
    (workdir / "import-by-string-id.tf").unlink(missing_ok=True)
    if "required_providers" not in "".join(p.read_text() for p in workdir.glob("*.tf")):
        (workdir / "_providers.tf").write_text(REQUIRED_PROVIDERS)
    yield {}


@contextmanager
def _user_mappings_example(
    request: pytest.FixtureRequest, workdir: Path
) -> Iterator[dict[str, str]]:
    """The PostgreSQL example setup, plus an IAM role, an IAM user and an Identity Center
    user in moto."""
    moto: MotoServer = request.getfixturevalue("moto_server")
    iam = moto.client("iam")
    role, user = f"Analyst-{uuid.uuid4().hex[:8]}", f"etl-{uuid.uuid4().hex[:8]}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument='{"Version":"2012-10-17"}')
    iam.create_user(UserName=user)
    store_id = "d-1234567890"
    dana = moto.client("identitystore").create_user(
        IdentityStoreId=store_id,
        UserName=f"dana-{uuid.uuid4().hex[:8]}",
        DisplayName="Dana",
        Name={"GivenName": "Dana", "FamilyName": "Example"},
    )
    with _postgres_example(request, workdir) as env:
        yield {
            **env,
            **moto.env(),
            "TF_VAR_aws_endpoint_url": moto.endpoint_url,
            "TF_VAR_analyst_role": role,
            "TF_VAR_etl_user": user,
            "TF_VAR_identity_store_id": store_id,
            "TF_VAR_identity_center_user_id": dana["UserId"],
        }


@contextmanager
def _sales_server(request: pytest.FixtureRequest, database: str, sql_text: str):
    """PostgreSQL 17 with a data database `sales` and an Immuta database named `database`."""
    server: PostgresServer = request.getfixturevalue("pg17")
    for name in (SAMPLE_DATABASE, database):
        server.drop_database(name)  # left over by an interrupted run, if any
        server.create_database(name)
    try:
        with server.connect(SAMPLE_DATABASE) as conn:
            conn.execute(sql_text)
        yield server
    finally:
        server.drop_database(database)
        server.drop_database(SAMPLE_DATABASE)


def _credentials(server: PostgresServer) -> dict[str, str]:
    return {"PGUSER": server.user, "PGPASSWORD": server.password}


@contextmanager
def _preflight_snippet(request: pytest.FixtureRequest, workdir: Path) -> Iterator[dict[str, str]]:
    """The snippet checks the database literally named "immuta" on a ready server."""
    with _doc_snippet(request, workdir), _sales_server(request, "immuta", SAMPLE_SQL) as server:
        yield {
            **_credentials(server),
            "TF_VAR_pg_host": server.host,
            "TF_VAR_pg_port": str(server.port),
        }


@contextmanager
def _data_objects_snippet(
    request: pytest.FixtureRequest, workdir: Path
) -> Iterator[dict[str, str]]:
    """A connection "Warehouse" registered for real (by terraform) for the snippet to read."""
    tables = "CREATE TABLE public.orders (id int); CREATE TABLE public.order_lines (id int);"
    tables += "CREATE TABLE public.customers (id int);"
    immuta = f"immuta_{uuid.uuid4().hex[:8]}"
    with _doc_snippet(request, workdir), _sales_server(request, immuta, tables) as server:
        registration = Terraform(workdir.parent / "registration", env=_credentials(server))
        registration.write(connection_block(server.host, server.port, immuta, label="w"))
        registration.apply()
        connection_id = registration.resources()["immuta_postgres_connection.w"]["id"]
        try:
            yield {**_credentials(server), "TF_VAR_connection_id": connection_id}
        finally:
            registration.destroy()


@contextmanager
def _provider_snippet(request: pytest.FixtureRequest, workdir: Path) -> Iterator[dict[str, str]]:
    """The snippet's default provider block logs in as immuta_admin."""
    server: PostgresServer = request.getfixturevalue("pg17")
    password = f"pw-{uuid.uuid4().hex}"
    with server.connect() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'immuta_admin'").fetchone():
            conn.execute("CREATE ROLE immuta_admin LOGIN SUPERUSER")
        conn.execute(sql.SQL("ALTER ROLE immuta_admin PASSWORD {}").format(sql.Literal(password)))
    yield {
        "TF_VAR_pg_password": password,
        "TF_VAR_pg_host": server.host,
        "TF_VAR_pg_port": str(server.port),
    }


def _preparer(folder: Path) -> Preparer:
    if folder.name == "provider":
        return _provider_snippet
    if folder.name == "immuta_postgres_preflight":
        return _preflight_snippet
    if folder.name == "immuta_postgres_data_objects":
        return _data_objects_snippet
    if folder.name == "aws_assumed_role":
        return _aws_assumed_role_example
    if folder.name == "user_mappings":
        return _user_mappings_example
    if (folder / "main.tf").is_file():
        return _postgres_example
    return _doc_snippet


@pytest.mark.parametrize(
    "folder", TFTEST_FOLDERS, ids=[str(p.relative_to(EXAMPLES)) for p in TFTEST_FOLDERS]
)
def test_terraform_test_passes(folder: Path, request: pytest.FixtureRequest, tmp_path: Path):
    """`terraform test` passes every run block of the folder's test files, in a copy of the
    folder (no .terraform or state lands in examples/)."""
    runs = _run_blocks(folder)
    assert runs > 0, f"no run blocks in the test files of {folder}"
    workdir = tmp_path / folder.name
    shutil.copytree(folder, workdir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    with _preparer(folder)(request, workdir) as env:
        tf = Terraform(workdir, env=env)
        tf.init()
        result = tf.run("test", "-no-color", check=False, timeout=600)
        assert result.returncode == 0, f"terraform test failed:\n{result.output}"
        assert f"Success! {runs} passed, 0 failed." in result.stdout, result.output


# ---------------------------------------------------------------------- Terraform 1.0

# What Terraform 1.0.3 says to the example folders that use a newer feature. Each of these
# folders declares the release it needs in required_version; Terraform 1.0 reports that
# only when the rest of the configuration parses (a provider function or a check block
# fails to parse first).
NEEDS_NEWER_TERRAFORM = {
    "aws_assumed_role": "Unsupported Terraform Core version",  # write-only external_id: 1.11
    "resources/immuta_aws_service_principal": "Unsupported Terraform Core version",  # 1.11
    "functions/rds_db_user_arn": "Missing newline after argument",  # provider functions: 1.8
    "data-sources/immuta_postgres_preflight": 'Blocks of type "check" are not expected here',
}
REQUIRED_VERSION = re.compile(r'required_version\s*=\s*">=\s*1\.(\d+)"')
# Variables the folders' test files set (Terraform 1.0 reads no test files).
TEST_FILE_VARIABLES = {"provider": {"TF_VAR_immuta_external_id": "not-used-by-this-test"}}
EXAMPLE_FOLDERS = sorted({*RUNNABLE, *(EXAMPLES / name for name in OWN_TEST), *SNIPPETS})


def _minimum_minor(folder: Path) -> int:
    """The 1.x minor release the folder's required_version asks for (0 when it asks none)."""
    found = REQUIRED_VERSION.findall("".join(p.read_text() for p in folder.glob("*.tf")))
    return max((int(minor) for minor in found), default=0)


def test_folders_needing_a_newer_terraform_say_so() -> None:
    declared = {
        str(folder.relative_to(EXAMPLES))
        for folder in EXAMPLE_FOLDERS
        if _minimum_minor(folder) > 0
    }
    assert declared == set(NEEDS_NEWER_TERRAFORM)


@pytest.mark.parametrize(
    "folder", EXAMPLE_FOLDERS, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_FOLDERS]
)
def test_example_under_terraform_1_0(folder: Path, request: pytest.FixtureRequest, tmp_path):
    """Under Terraform 1.0.3, what 1.0 can express applies, plans clean and destroys (the
    snippets that name example hosts validate); the rest is refused by Terraform itself."""
    name = str(folder.relative_to(EXAMPLES))
    workdir = tmp_path / folder.name
    shutil.copytree(folder, workdir, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    if name in NEEDS_NEWER_TERRAFORM:
        # As in every snippet run, without the import block (which the docs say needs 1.5).
        (workdir / "import-by-string-id.tf").unlink(missing_ok=True)
        refused = Terraform(workdir, binary=TERRAFORM_1_0).run("init", "-no-color", check=False)
        assert refused.returncode == 1 and NEEDS_NEWER_TERRAFORM[name] in refused.text, (
            refused.output
        )
        return
    preparer = _preparer(folder)
    with preparer(request, workdir) as env:
        tf = Terraform(
            workdir, env={**env, **TEST_FILE_VARIABLES.get(name, {})}, binary=TERRAFORM_1_0
        )
        tf.init()
        if preparer is _doc_snippet:  # example hosts: nothing to apply against
            result = tf.validate()
            assert result["valid"], result["diagnostics"]
            return
        tf.apply()
        tf.plan_is_empty("a plan right after the apply")
        tf.destroyed()
