"""N immuta_user_mapping vs N null_resource (Go null provider): apply, refresh-plan, destroy.

    python -m bench.mappings [--count 1000] [--parallelism 10] [--repeat 1]

Both configurations run one after the other with the same terraform flags; the table prints
both times, their ratio and the peak RSS of the provider process during the apply (see
bench/common.py for how it is sampled). The mappings' connection is applied first
(`-target`, not timed) into a fresh Immuta database; refresh-plan is
`plan -detailed-exitcode` right after the apply and must exit 0 (no changes).

A third configuration, "null, same state" (`--same-state`, and in `python -m bench`), is
null_resources shaped like our mappings: each one's triggers carry the same strings as a
mapping's attributes (connection id, id, user, role) and reference one other null_resource,
as a mapping references its connection. Terraform rewrites and re-serialises the whole
state file after every resource it changes (the local backend's WriteState), so its own
CPU grows with the bytes each instance holds; this baseline shows how much of the gap is
Terraform handling a bigger state, and how much is our provider. The table prints the
state-file bytes per instance of each configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from harness import (
    Body,
    Database,
    PostgresServer,
    Raw,
    Terraform,
    connection_block,
    literal,
    provider_block,
    resource,
)

from bench.common import Run, flags, terraform

ROLES = 50
STEPS = ("apply", "refresh-plan", "destroy")

NULL_PROVIDER = """terraform {
  required_providers {
    null = { source = "hashicorp/null", version = "2.1.2" }
  }
}
"""
NULL_CONFIG = """
resource "null_resource" "r" {{
  count = {count}
  triggers = {{ name = "user-${{count.index}}" }}
}}
"""
SAME_STATE_CONFIG = """
locals {{
  connection_id = null_resource.connection.triggers.id
}}
resource "null_resource" "connection" {{
  triggers = {{ id = {connection_id} }}
}}
resource "null_resource" "r" {{
  count = {count}
  triggers = {{
    connection_id               = null_resource.connection.triggers.id
    id                          = "${{local.connection_id}}#user-${{count.index}}@example.com"
    immuta_user                 = "user-${{count.index}}@example.com"
    mode                        = "username"
    username                    = "role_${{count.index % {roles}}}"
    effective_postgres_username = "role_${{count.index % {roles}}}"
    postgres_user_found         = "true"
  }}
}}
"""


def mapping_config(server: PostgresServer, database: str, count: int) -> str:
    return (
        provider_block(server)
        + connection_block(server.host, server.port, database, "Bench")
        + resource(
            "immuta_user_mapping",
            "m",
            count=count,
            connection_id=Raw("immuta_postgres_connection.main.id"),
            immuta_user=Raw('"user-${count.index}@example.com"'),  # templates stay unquoted
            postgres=Body(mode="username", username=Raw(f'"role_${{count.index % {ROLES}}}"')),
        )
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


def null_workspace(root: Path, count: int, same_state_as: str | None = None) -> Terraform:
    """null_resources; with `same_state_as` (a connection id), shaped like our mappings."""
    if same_state_as is None:
        config = NULL_CONFIG.format(count=count)
    else:
        config = SAME_STATE_CONFIG.format(
            count=count, roles=ROLES, connection_id=literal(same_state_as)
        )
    tf = Terraform(root / f"null-{count}-{'same' if same_state_as else 'plain'}")
    tf.write(NULL_PROVIDER + config, with_required_providers=False)
    tf.init()
    return tf


def bytes_per_instance(tf: Terraform, resource_type: str) -> float:
    """State-file bytes per instance of `resource_type` (its share of the indented JSON)."""
    text = (Path(tf.workdir) / "terraform.tfstate").read_text()
    state = json.loads(text)
    count = sum(len(r["instances"]) for r in state["resources"] if r["type"] == resource_type)
    others = [r for r in state["resources"] if r["type"] != resource_type]
    state["resources"] = others
    rest = len(json.dumps(state, indent=2))
    return (len(text) - rest) / count if count else 0.0


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
    server: PostgresServer,
    count: int,
    parallelism: int = 10,
    steps: Iterable[str] = STEPS,
    same_state: bool = False,
) -> dict[str, dict[str, Run]]:
    """{"immuta": {step: Run}, "null": {step: Run}} for `count` resources of each, and
    "null same state" with `same_state`. Each also has "state bytes" per instance after apply,
    as a Run-free float under results["bytes"][name]."""
    steps = list(steps)
    results: dict = {"immuta": {}, "null": {}, "bytes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-mappings-") as tmp:
        tf, db = immuta_workspace(server, Path(tmp), count)
        try:
            for step in steps:
                results["immuta"][step] = run_step(tf, step, parallelism, server=server)
                if step == "apply":
                    results["bytes"]["immuta"] = bytes_per_instance(tf, "immuta_user_mapping")
                    connection_id = _connection_id(tf)
        finally:
            db.drop()
        baselines = {"null": None}
        if same_state:
            baselines["null same state"] = connection_id
        for name, shape in baselines.items():
            nul = null_workspace(Path(tmp), count, shape)
            results[name] = {}
            for step in steps:
                results[name][step] = run_step(nul, step, parallelism)
                if step == "apply":
                    results["bytes"][name] = bytes_per_instance(nul, "null_resource")
    return results


def _connection_id(tf: Terraform) -> str:
    state = json.loads((Path(tf.workdir) / "terraform.tfstate").read_text())
    for entry in state["resources"]:
        if entry["type"] == "immuta_postgres_connection":
            return entry["instances"][0]["attributes"]["id"]
    raise RuntimeError("no connection in the benchmark state")


def cpu_line(run: Run) -> str:
    text = f"terraform {run.terraform_cpu:.1f}, provider {run.provider_cpu:.1f}"
    if run.server_cpu:
        text += f", PostgreSQL {run.server_cpu:.1f}"
    return text + f" (wall {run.seconds:.1f})"


def median_runs(runs: list[dict]) -> dict:
    """Per provider and step, the run with the median time (its RSS and CPU come with it)."""
    median = {
        provider: {
            step: sorted((r[provider][step] for r in runs), key=lambda x: x.seconds)[len(runs) // 2]
            for step in runs[0][provider]
        }
        for provider in runs[0]
        if provider != "bytes"
    }
    median["bytes"] = runs[0]["bytes"]
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.mappings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--same-state", action="store_true", help="also null_resources shaped like our mappings"
    )
    args = parser.parse_args(argv)
    server = start_server()
    try:
        runs = [
            compare(server, args.count, args.parallelism, same_state=args.same_state)
            for _ in range(args.repeat)
        ]
    finally:
        server.stop()
    median = median_runs(runs)
    baselines = [b for b in ("null", "null same state") if b in median]
    print(f"{args.count} resources, -parallelism={args.parallelism}, {args.repeat} run(s), seconds")
    print(f"{'':14}{'immuta':>10}" + "".join(f"{b:>17}{'ratio':>7}" for b in baselines))
    for step in STEPS:
        ours = median["immuta"][step].seconds
        cells = "".join(
            f"{median[b][step].seconds:17.2f}{ours / median[b][step].seconds:7.2f}"
            for b in baselines
        )
        print(f"{step:14}{ours:10.2f}{cells}")
    bytes_ = median["bytes"]
    print(
        f"{'state B/inst.':14}{bytes_['immuta']:10.0f}"
        + "".join(f"{bytes_[b]:17.0f}{bytes_['immuta'] / bytes_[b]:7.2f}" for b in baselines)
    )
    print(f"{'apply RSS MiB':14}{median['immuta']['apply'].peak_mib:10.1f}")
    for step in STEPS:
        print(
            f"{step} CPU s: {cpu_line(median['immuta'][step])} (immuta); "
            + "; ".join(f"{cpu_line(median[b][step])} ({b})" for b in baselines)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
