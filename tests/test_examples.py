"""examples/ for real: every folder with a main.tf applies against a fresh database, plans
clean (exit 0) and destroys; the documentation snippets validate and are formatted.

Runnable example folders read the same variables the demo passes: pg_host, pg_port,
pg_username, pg_password and immuta_database (TF_VAR_* in the environment).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Database, PostgresServer, Terraform, TerraformError, terraform_env
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Examples that need more than a PostgreSQL server have their own end-to-end test
# (aws_assumed_role: moto and the RDS front, in tests/test_service_principal.py).
OWN_TEST = {"aws_assumed_role"}
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


@pytest.fixture
def sample_data(pg_server: PostgresServer) -> Iterator[Database]:
    """The login roles the examples map to, and a data database to crawl."""
    with pg_server.connect() as conn:
        for role in SAMPLE_ROLES:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                # Roles are server-wide and other tests may use them too: never dropped.
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    db = pg_server.temp_database(prefix="sales_")
    with db.connect() as conn:
        conn.execute(
            """
            CREATE SCHEMA finance;
            CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric);
            CREATE VIEW public.big_orders AS SELECT * FROM public.orders WHERE amount > 1000;
            CREATE TABLE finance.invoices (id int, issued date) PARTITION BY RANGE (issued);
            CREATE MATERIALIZED VIEW finance.totals AS SELECT count(*) FROM public.orders;
            """
        )
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
