"""1000 immuta_user_mapping vs 1000 null_resource (Go null provider): apply, refresh-plan, destroy.

    python -m bench.mappings [--count 1000] [--parallelism 10]

Both configurations run in the same process, one after the other, with the same
terraform flags; the table prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import PostgresServer, Terraform, hcl_string, provider_block  # noqa: E402

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
    username = "role_${{count.index % 50}}"
  }}
}}
"""
    )


def timed(tf: Terraform, *args: str) -> float:
    started = time.perf_counter()
    tf.run(*args, timeout=1800)
    return time.perf_counter() - started


def measure(tf: Terraform, parallelism: int) -> dict[str, float]:
    flags = ["-no-color", "-input=false", f"-parallelism={parallelism}"]
    tf.init()
    return {
        "apply": timed(tf, "apply", "-auto-approve", *flags),
        "refresh-plan": timed(tf, "plan", "-detailed-exitcode", *flags),
        "destroy": timed(tf, "destroy", "-auto-approve", *flags),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    server = PostgresServer(17).start()
    try:
        with server.connect() as conn:
            for n in range(50):
                conn.execute(f"CREATE ROLE role_{n}")
        ours: list[dict[str, float]] = []
        null: list[dict[str, float]] = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                db = server.temp_database()
                # Ours needs the connection registered first (one resource, not measured).
                tf = Terraform(Path(tmp) / "immuta")
                tf.write(mapping_config(server, db.name, args.count))
                tf.init()
                tf.run(
                    "apply", "-auto-approve", "-no-color", "-target=immuta_postgres_connection.main"
                )
                ours.append(measure(tf, args.parallelism))
                db.drop()
                nul = Terraform(Path(tmp) / "null")
                nul.write(NULL_CONFIG.format(count=args.count), with_required_providers=False)
                null.append(measure(nul, args.parallelism))
    finally:
        server.stop()
    print(f"{args.count} resources, -parallelism={args.parallelism}, {args.repeat} run(s), seconds")
    print(f"{'':14}{'immuta':>10}{'go null':>10}{'ratio':>8}")
    for step in ("apply", "refresh-plan", "destroy"):
        a = statistics.median(r[step] for r in ours)
        b = statistics.median(r[step] for r in null)
        print(f"{step:14}{a:10.2f}{b:10.2f}{a / b:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
