"""N immuta_user_mapping vs N null_resource (Go null provider): apply, refresh-plan, destroy.

    python -m bench.mappings [--count 1000] [--parallelism 10] [--repeat 1]

Both configurations run one after the other with the same terraform flags; the table prints
both times, their ratio and the peak RSS of the provider process during the apply (see
bench/common.py for how it is sampled). The mappings' connection is applied first
(`-target`, not timed) into a fresh Immuta database; refresh-plan is
`plan -detailed-exitcode` right after the apply and must exit 0 (no changes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from harness import Database, PostgresServer, Terraform, hcl_string, provider_block

from bench.common import Run, flags, terraform

ROLES = 50
STEPS = ("apply", "refresh-plan", "destroy")

NULL_CONFIG = """terraform {{
  required_providers {{
    null = {{ source = "hashicorp/null", version = "2.1.2" }}
  }}
}}
resource "null_resource" "r" {{
  count = {count}
  triggers = {{ name = "user-${{count.index}}" }}
}}
"""


def mapping_config(server: PostgresServer, database: str, count: int) -> str:
    return (
        provider_block(server)
        + f"""
resource "immuta_postgres_connection" "main" {{
  display_name    = "Bench"
  deployment_type = "self_managed"
  hostname        = {hcl_string(server.host)}
  port            = {server.port}
  database        = {hcl_string(database)}
}}
resource "immuta_user_mapping" "m" {{
  count         = {count}
  connection_id = immuta_postgres_connection.main.id
  immuta_user   = "user-${{count.index}}@example.com"
  postgres {{
    mode     = "username"
    username = "role_${{count.index % {ROLES}}}"
  }}
}}
"""
    )


def start_server() -> PostgresServer:
    """PostgreSQL 17 with the roles the mappings name."""
    server = PostgresServer(17).start()
    with server.connect() as conn:
        for n in range(ROLES):
            conn.execute(f"CREATE ROLE role_{n}")
    return server


def immuta_workspace(server: PostgresServer, root: Path, count: int) -> tuple[Terraform, Database]:
    """A folder with `count` mappings whose connection is already registered."""
    db = server.temp_database()
    tf = Terraform(root / f"immuta-{count}-{db.name}")
    tf.write(mapping_config(server, db.name, count))
    tf.init()
    terraform(tf, "apply", "-auto-approve", *flags(10), "-target=immuta_postgres_connection.main")
    return tf, db


def null_workspace(root: Path, count: int) -> Terraform:
    tf = Terraform(root / f"null-{count}")
    tf.write(NULL_CONFIG.format(count=count), with_required_providers=False)
    tf.init()
    return tf


COMMANDS = {
    "apply": ("apply", "-auto-approve"),
    # exit 2 (changes) right after an apply is a bug: terraform() refuses it
    "refresh-plan": ("plan", "-detailed-exitcode"),
    "destroy": ("destroy", "-auto-approve"),
}


def run_step(
    tf: Terraform,
    step: str,
    parallelism: int,
    on_new: Callable[[int, str], None] | None = None,
    server: PostgresServer | None = None,
) -> Run:
    server_pid = server.proc.pid if server is not None and server.proc is not None else None
    return terraform(tf, *COMMANDS[step], *flags(parallelism), on_new=on_new, server_pid=server_pid)


def compare(
    server: PostgresServer, count: int, parallelism: int = 10, steps: Iterable[str] = STEPS
) -> dict[str, dict[str, Run]]:
    """{"immuta": {step: Run}, "null": {step: Run}} for `count` resources of each."""
    steps = list(steps)
    results: dict[str, dict[str, Run]] = {"immuta": {}, "null": {}}
    with tempfile.TemporaryDirectory(prefix="bench-mappings-") as tmp:
        tf, db = immuta_workspace(server, Path(tmp), count)
        try:
            for step in steps:
                results["immuta"][step] = run_step(tf, step, parallelism, server=server)
        finally:
            db.drop()
        nul = null_workspace(Path(tmp), count)
        for step in steps:
            results["null"][step] = run_step(nul, step, parallelism)
    return results


def cpu_line(run: Run) -> str:
    text = f"terraform {run.terraform_cpu:.1f}, provider {run.provider_cpu:.1f}"
    if run.server_cpu:
        text += f", PostgreSQL {run.server_cpu:.1f}"
    return text + f" (wall {run.seconds:.1f})"


def median_runs(runs: list[dict[str, dict[str, Run]]]) -> dict[str, dict[str, Run]]:
    """Per provider and step, the run with the median time (its RSS and CPU come with it)."""
    return {
        provider: {
            step: sorted((r[provider][step] for r in runs), key=lambda x: x.seconds)[len(runs) // 2]
            for step in runs[0][provider]
        }
        for provider in runs[0]
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mappings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    server = start_server()
    try:
        runs = [compare(server, args.count, args.parallelism) for _ in range(args.repeat)]
    finally:
        server.stop()
    print(f"{args.count} resources, -parallelism={args.parallelism}, {args.repeat} run(s), seconds")
    print(f"{'':14}{'immuta':>10}{'go null':>10}{'ratio':>8}")
    for step in STEPS:
        a = statistics.median(r["immuta"][step].seconds for r in runs)
        b = statistics.median(r["null"][step].seconds for r in runs)
        print(f"{step:14}{a:10.2f}{b:10.2f}{a / b:8.2f}")
    a = statistics.median(r["immuta"]["apply"].peak_mib for r in runs)
    b = statistics.median(r["null"]["apply"].peak_mib for r in runs)
    print(f"{'apply RSS MiB':14}{a:10.1f}{b:10.1f}{a / b:8.2f}")
    for step in STEPS:
        print(
            f"{step} CPU s: {cpu_line(runs[-1]['immuta'][step])} (immuta), "
            f"{cpu_line(runs[-1]['null'][step])} (null)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
