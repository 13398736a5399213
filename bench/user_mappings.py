"""N mappings in one immuta_user_mappings, against 1000 Go null_resources in the same run.

    python -m bench.user_mappings [--sizes 1000,5000,10000,20000] [--sharded 10000,10]
        [--repeat 1] [--null-count 1000] [--plot PATH]

For each size, in a fresh Immuta database on PostgreSQL 17 (the connection applied first,
not timed):

- apply: the creating `terraform apply` of N entries;
- refresh-plan: `plan -detailed-exitcode` right after it (must exit 0);
- one-entry plan: `plan -detailed-exitcode` after one entry's configuration changed (must
  exit 2, and show that entry alone);
- one-entry apply: the `terraform apply` of that change (its own plan included);
- destroy.

`--sharded TOTAL,RESOURCES` adds the same steps for TOTAL entries spread over RESOURCES
immuta_user_mappings (for_each, user i in resource i % RESOURCES): what splitting a
directory costs or saves.

The baseline is the issue's yardstick, measured in the same run: 1000 `null_resource`s of
the Go null provider, their apply (for the applies) and their refresh-plan (for the plans).
A second one, per size: Terraform's built-in `terraform_data` whose `input` is the same
value (same expression, same changed entry), which needs no plugin at all: what Terraform
itself spends on one resource holding that value (docs/performance.md, section 5).
Entries name one of 50 PostgreSQL roles (username mode), a third map to no role (mode
none), a few name a role that does not exist; no AWS principals (those need IAM, whose
calls bench/user_mappings does not time: see tests/test_aws_bulk.py for their count). The
configuration is a `for` expression over `range(N)`, as one written from a user list would
be; the changed entry is chosen by a variable. Peak RSS: the largest VmHWM of the provider
processes of each command (bench/common.py).
"""

from __future__ import annotations

import argparse
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
    ){only}
  }}"""
CHANGED = 2  # the entry the one-entry change turns to mode "none" (it maps to a role before)


def config(server: PostgresServer, database: str, count: int, shards: int = 1) -> str:
    """`count` entries in one immuta_user_mappings, or in `shards` of them (for_each), each
    user in the shard of its index modulo `shards` (a stable choice: a user never moves)."""
    entries = ENTRIES.format(
        roles=mappings.ROLES, only=f" if i % {shards} == each.value" if shards > 1 else ""
    )
    shard: dict[str, Raw] = (
        {"for_each": Raw(f"{{ for s in range({shards}) : tostring(s) => s }}")}
        if shards > 1
        else {}
    )
    return (
        'variable "changed" {\n  type    = number\n  default = -1\n}\n'
        + INDEXES.format(blocks=-(-count // 1000), count=count)
        + provider_block(server)
        + connection_block(server.host, server.port, database, "Bench")
        + resource(
            "immuta_user_mappings",
            "all",
            **shard,
            connection_id=Raw("immuta_postgres_connection.main.id"),
            mappings=Raw(entries),
        )
    )


@dataclass
class SizeRuns:
    count: int
    shards: int
    runs: dict[str, Run]
    state_bytes: int
    # The same value held by Terraform's built-in terraform_data (one resource only)
    data: dict[str, Run] | None = None


def workspace(
    server: PostgresServer, root: Path, count: int, shards: int = 1
) -> tuple[Terraform, Database]:
    """A folder with `count` entries (in `shards` immuta_user_mappings) whose connection is
    already registered (not timed)."""
    db = server.temp_database()
    tf = Terraform(root / f"mappings-{count}-{shards}-{db.name}")
    tf.write(config(server, db.name, count, shards))
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


def measure_size(server: PostgresServer, root: Path, count: int, shards: int = 1) -> SizeRuns:
    tf, db = workspace(server, root, count, shards)
    try:
        runs = {}
        state_bytes = 0
        for step in STEPS:
            runs[step] = run_step(tf, step, server)
            if step == "apply":
                state_bytes = len(tf.state_file_text())
    finally:
        db.drop()
    data = same_value(root, count) if shards == 1 else None
    return SizeRuns(count, shards, runs, state_bytes, data)


def same_value(root: Path, count: int) -> dict[str, Run]:
    """Every step for a `terraform_data` whose `input` is the same value (the same `for`
    expression): what Terraform itself spends on that value, with no plugin at all."""
    tf = Terraform(root / f"terraform-data-{count}")
    entries = ENTRIES.format(roles=mappings.ROLES, only="")
    tf.write(
        'variable "changed" {\n  type    = number\n  default = -1\n}\n'
        + INDEXES.format(blocks=-(-count // 1000), count=count)
        + resource("terraform_data", "all", input=Raw(entries)),
        with_required_providers=False,
    )
    tf.init()
    runs = {}
    for step in STEPS:
        args, ok = COMMANDS[step]
        runs[step] = terraform(tf, *args, *flags(10), ok=ok)
    return runs


def baseline(root: Path, count: int = BASELINE_COUNT) -> dict[str, Run]:
    """`count` Go null_resources: apply, refresh-plan, destroy."""
    nul = mappings.null_workspace(root, count)
    return {step: mappings.run_step(nul, step, 10) for step in mappings.STEPS}


Result = tuple[dict[int, SizeRuns], SizeRuns | None, dict[str, Run]]


def compare(
    server: PostgresServer,
    sizes: Iterable[int],
    sharded: tuple[int, int] | None = None,
    repeat: int = 1,
    null_count: int = BASELINE_COUNT,
) -> Result:
    """Per size, the runs of one resource (median of `repeat` per step); `sharded` (total,
    resources): the same steps for that many entries spread over that many resources; the
    baseline of `null_count` null_resources (median)."""
    results: dict[int, list[SizeRuns]] = {}
    shard_runs: list[SizeRuns] = []
    baselines: list[dict[str, Run]] = []
    with tempfile.TemporaryDirectory(prefix="bench-user-mappings-") as tmp:
        for n in range(repeat):
            baselines.append(baseline(Path(tmp) / f"null-{n}", null_count))
            for size in sizes:
                results.setdefault(size, []).append(measure_size(server, Path(tmp), size))
            if sharded is not None:
                shard_runs.append(measure_size(server, Path(tmp), *sharded))
    median = {size: _median_runs(runs) for size, runs in results.items()}
    null = {step: _median([b[step] for b in baselines]) for step in mappings.STEPS}
    return median, _median_runs(shard_runs) if shard_runs else None, null


def _median_runs(runs: list[SizeRuns]) -> SizeRuns:
    first = runs[0]
    data = [r.data for r in runs if r.data is not None]
    return SizeRuns(
        first.count,
        first.shards,
        {step: _median([r.runs[step] for r in runs]) for step in STEPS},
        first.state_bytes,
        {step: _median([d[step] for d in data]) for step in STEPS} if data else None,
    )


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def ratio(runs: SizeRuns, null: dict[str, Run], step: str) -> float:
    return runs.runs[step].seconds / null[BASELINE_STEP[step]].seconds


def label(runs: SizeRuns) -> str:
    if runs.shards == 1:
        return f"{runs.count:,} entries in one resource"
    return f"{runs.count:,} entries in {runs.shards} resources of {runs.count // runs.shards:,}"


def peak_mib(runs: SizeRuns) -> float:
    return max(r.peak_mib for r in runs.runs.values())


def report(
    median: dict[int, SizeRuns],
    sharded: SizeRuns | None,
    null: dict[str, Run],
    null_count: int = BASELINE_COUNT,
) -> str:
    columns = [median[s] for s in sorted(median)] + ([sharded] if sharded else [])
    lines = [
        f"seconds (ratio to {null_count} null_resources: applies to their apply, plans to their "
        "refresh-plan); CPU: terraform / provider; terraform_data holding the same value: "
        "seconds (ours / that)",
    ]
    for runs in columns:
        lines.append(label(runs))
        for step in STEPS:
            run = runs.runs[step]
            same = (
                f"   terraform_data {runs.data[step].seconds:7.2f} "
                f"({run.seconds / runs.data[step].seconds:4.2f})"
                if runs.data
                else ""
            )
            lines.append(
                f"  {step:16}{run.seconds:8.2f} ({ratio(runs, null, step):5.2f})   CPU "
                f"{run.terraform_cpu:6.2f} / {run.provider_cpu:5.2f}{same}"
            )
        lines.append(
            f"  peak provider RSS {peak_mib(runs):.1f} MiB, state {runs.state_bytes:,} bytes"
        )
    lines.append(
        f"{null_count} null_resources: "
        + ", ".join(
            f"{step} {run.seconds:.2f} s (CPU {run.terraform_cpu:.2f} / {run.provider_cpu:.2f})"
            for step, run in null.items()
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.user_mappings", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument(
        "--sharded",
        default="10000,10",
        help="TOTAL,RESOURCES: also TOTAL entries spread over RESOURCES resources ('' for none)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--null-count", type=int, default=BASELINE_COUNT)
    parser.add_argument("--plot", type=Path, help="also draw the scaling plot into this PNG")
    args = parser.parse_args(argv)
    sharded = None
    if args.sharded:
        total, resources = (int(x) for x in args.sharded.split(","))
        sharded = (total, resources)
    server = mappings.start_server()
    try:
        median, shard_runs, null = compare(
            server, [int(s) for s in args.sizes.split(",")], sharded, args.repeat, args.null_count
        )
    finally:
        server.stop()
    print(report(median, shard_runs, null, args.null_count))
    if args.plot:
        from bench import plots

        plots.user_mappings(args.plot, median, null, args.null_count, "immuta_user_mappings")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
