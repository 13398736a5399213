"""N mappings in one immuta_user_mappings, against 1000 Go null_resources in the same run.

    python -m bench.user_mappings [--sizes 1000,5000,10000,20000] [--repeat 1]

For each size, in a fresh Immuta database on PostgreSQL 17 (the connection applied first,
not timed):

- apply: the creating `terraform apply` of N entries;
- refresh-plan: `plan -detailed-exitcode` right after it (must exit 0);
- one-entry plan: `plan -detailed-exitcode` after one entry's configuration changed (must
  exit 2, and show that entry alone);
- one-entry apply: the `terraform apply` of that change (its own plan included);
- destroy.

The baseline is the issue's yardstick, measured in the same run: 1000 `null_resource`s of
the Go null provider, their apply (for the applies) and their refresh-plan (for the plans).
Entries name one of 50 PostgreSQL roles (username mode), a third map to no role (mode
none), a few name a role that does not exist; no AWS principals (those need IAM, whose
calls bench/user_mappings does not time: see tests/test_aws_bulk.py for their count). The
configuration is a `for` expression over `range(N)`, as one written from a user list would
be; the changed entry is chosen by a variable. Peak RSS: the largest VmHWM of the provider
processes of each command (bench/common.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness import (
    Database,
    PostgresServer,
    Raw,
    Terraform,
    connection_block,
    provider_block,
    resource,
)

from bench import mappings
from bench.common import Run, flags, terraform

SIZES = (1000, 5000, 10_000, 20_000)
STEPS = ("apply", "refresh-plan", "one-entry plan", "one-entry apply", "destroy")
BASELINE_COUNT = 1000
# Which baseline each step is held against: applies against the null apply, plans against
# the null refresh-plan; destroy against the null destroy.
BASELINE_STEP = {
    "apply": "apply",
    "refresh-plan": "refresh-plan",
    "one-entry plan": "refresh-plan",
    "one-entry apply": "apply",
    "destroy": "destroy",
}
# range() makes at most 1024 values: the indexes come in blocks of 1000.
INDEXES = """locals {{
  indexes = flatten([
    for block in range({blocks}) : [
      for i in range(1000) : block * 1000 + i if block * 1000 + i < {count}
    ]
  ])
}}
"""
ENTRIES = """{{
    for i in local.indexes : "user-${{i}}@example.com" => (
      i == var.changed ? {{ postgres = {{ mode = "none", username = null }} }} :
      i % 3 == 0 ? {{ postgres = {{ mode = "none", username = null }} }} :
      i % 97 == 1 ? {{ postgres = {{ mode = "username", username = "missing_${{i}}" }} }} :
      {{ postgres = {{ mode = "username", username = "role_${{i % {roles}}}" }} }}
    )
  }}"""
CHANGED = 2  # the entry the one-entry change turns to mode "none" (it maps to a role before)


def config(server: PostgresServer, database: str, count: int) -> str:
    return (
        'variable "changed" {\n  type    = number\n  default = -1\n}\n'
        + INDEXES.format(blocks=-(-count // 1000), count=count)
        + provider_block(server)
        + connection_block(server.host, server.port, database, "Bench")
        + resource(
            "immuta_user_mappings",
            "all",
            connection_id=Raw("immuta_postgres_connection.main.id"),
            mappings=Raw(ENTRIES.format(roles=mappings.ROLES)),
        )
    )


@dataclass
class SizeRuns:
    count: int
    runs: dict[str, Run]
    state_bytes: int


def workspace(server: PostgresServer, root: Path, count: int) -> tuple[Terraform, Database]:
    """A folder with one immuta_user_mappings of `count` entries whose connection is
    already registered (not timed)."""
    db = server.temp_database()
    tf = Terraform(root / f"mappings-{count}-{db.name}")
    tf.write(config(server, db.name, count))
    tf.init()
    terraform(tf, "apply", "-auto-approve", *flags(10), "-target=immuta_postgres_connection.main")
    return tf, db


CHANGE = ("-var", f"changed={CHANGED}")
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "apply": (("apply", "-auto-approve"), (0,)),
    "refresh-plan": (("plan", "-detailed-exitcode"), (0,)),  # no changes right after apply
    "one-entry plan": (("plan", "-detailed-exitcode", *CHANGE), (2,)),
    "one-entry apply": (("apply", "-auto-approve", *CHANGE), (0,)),
    "destroy": (("destroy", "-auto-approve", *CHANGE), (0,)),
}


def run_step(
    tf: Terraform,
    step: str,
    server: PostgresServer,
    on_new: Callable[[int, str], None] | None = None,
) -> Run:
    args, ok = COMMANDS[step]
    pid = server.proc.pid if server.proc is not None else None
    run = terraform(tf, *args, *flags(10), ok=ok, on_new=on_new, server_pid=pid)
    if step == "one-entry plan" and (
        f'"user-{CHANGED}@example.com"' not in run.stdout or "unchanged elements" not in run.stdout
    ):
        raise RuntimeError(f"the one-entry plan shows more than one entry:\n{run.stdout}")
    return run


def measure_size(server: PostgresServer, root: Path, count: int) -> SizeRuns:
    tf, db = workspace(server, root, count)
    try:
        runs = {}
        state_bytes = 0
        for step in STEPS:
            runs[step] = run_step(tf, step, server)
            if step == "apply":
                state_bytes = len(tf.state_file_text())
        return SizeRuns(count, runs, state_bytes)
    finally:
        db.drop()


def baseline(root: Path) -> dict[str, Run]:
    """1000 Go null_resources: apply, refresh-plan, destroy."""
    nul = mappings.null_workspace(root, BASELINE_COUNT)
    return {step: mappings.run_step(nul, step, 10) for step in mappings.STEPS}


def compare(
    server: PostgresServer, sizes: Iterable[int], repeat: int = 1
) -> tuple[dict[int, SizeRuns], dict[str, Run]]:
    """Per size, the run of each step (median of `repeat`); the null baseline (median)."""
    results: dict[int, list[SizeRuns]] = {}
    baselines: list[dict[str, Run]] = []
    with tempfile.TemporaryDirectory(prefix="bench-user-mappings-") as tmp:
        for n in range(repeat):
            baselines.append(baseline(Path(tmp) / f"null-{n}"))
            for size in sizes:
                results.setdefault(size, []).append(measure_size(server, Path(tmp), size))
    median = {
        size: SizeRuns(
            size,
            {step: _median([r.runs[step] for r in runs]) for step in STEPS},
            runs[0].state_bytes,
        )
        for size, runs in results.items()
    }
    return median, {step: _median([b[step] for b in baselines]) for step in mappings.STEPS}


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def ratio(runs: SizeRuns, null: dict[str, Run], step: str) -> float:
    return runs.runs[step].seconds / null[BASELINE_STEP[step]].seconds


def report(median: dict[int, SizeRuns], null: dict[str, Run]) -> str:
    sizes = sorted(median)
    lines = [
        "seconds (ratio to 1000 null_resources: applies / apply, plans / refresh-plan)",
        f"{'':18}" + "".join(f"{s:>18,}" for s in sizes),
    ]
    for step in STEPS:
        cells = "".join(
            f"{median[s].runs[step].seconds:10.2f} ({ratio(median[s], null, step):4.2f})"
            for s in sizes
        )
        lines.append(f"{step:18}{cells}")
    lines.append(
        f"{'peak RSS MiB':18}"
        + "".join(f"{max(r.peak_mib for r in median[s].runs.values()):18.1f}" for s in sizes)
    )
    lines.append(
        f"{'provider CPU s':18}"
        + "".join(
            f"{statistics.fsum(r.provider_cpu for r in median[s].runs.values()):18.1f}"
            for s in sizes
        )
    )
    lines.append(
        "null_resource x1000: "
        + ", ".join(f"{step} {run.seconds:.2f} s" for step, run in null.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.user_mappings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    server = mappings.start_server()
    try:
        median, null = compare(server, [int(s) for s in args.sizes.split(",")], args.repeat)
    finally:
        server.stop()
    print(report(median, null))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
