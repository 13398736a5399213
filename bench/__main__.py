"""`./build.sh bench`: every benchmark, side by side with the Go null provider, in one table.

    python -m bench [--quick] [--only handshake|mappings|user_mappings|crawl|rss|plots[,...]]

Full run (about 22 minutes on a 2-core machine): handshake (21 interleaved starts each),
1000 immuta_user_mapping vs 1000 null_resource and vs 1000 null_resource holding the same
state bytes as a mapping (apply, refresh-plan, destroy; -parallelism=10; median of 3 runs;
see bench/mappings.py), a crawl of 10k, 50k and 100k objects over 1, 5 and 10 databases
(median of 3), provider RSS at rest and peak during the applies, and docs/bench_scaling.png
(apply time at 100, 250, 500 and 1000 resources; crawl time against objects with a linear
fit). user_mappings (about 16 of the 22 minutes): one immuta_user_mappings of 1k, 5k, 10k
and 20k entries, beside terraform_data holding the same value, and 10k entries over 10
resources, against 1000 null_resources in the same run, and docs/bench_user_mappings.png
(bench/user_mappings.py). `--quick` (about 3 minutes) divides every size by 10 (100
resources, 10k objects, 100-2000 entries against 100 null_resources) and runs everything
once; its plots go to .cache/bench/*_quick.png so the committed ones stay a full run. The
table, in Markdown, is printed and written to bench/results.md. Methods: bench/common.py (peak RSS),
bench/crawl.py (crawl time), bench/rss.py (RSS at rest), bench/handshake.py. Not in the
table: bench/transport.py (the cost of mutual TLS per RPC) and bench/profile.py (py-spy).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import PostgresServer

from bench import common, crawl, handshake, mappings, rss, user_mappings

SECTIONS = ("handshake", "mappings", "user_mappings", "crawl", "rss", "plots")
RESULTS = common.ROOT / "bench" / "results.md"
PLOT = common.ROOT / "docs" / "bench_scaling.png"
QUICK_PLOT = common.ROOT / ".cache" / "bench" / "bench_scaling_quick.png"
ENTRIES_PLOT = common.ROOT / "docs" / "bench_user_mappings.png"
QUICK_ENTRIES_PLOT = common.ROOT / ".cache" / "bench" / "bench_user_mappings_quick.png"
PARALLELISM = 10


@dataclass(frozen=True)
class Sizes:
    count: int  # resources in the mapping benchmark
    scaling: tuple[int, ...]  # resource counts of plot (a)
    per_database: int  # crawl objects per database
    crawl_databases: tuple[int, ...]
    handshake_runs: int
    rss_runs: int
    repeat: int  # runs of the mapping and crawl benchmarks (median kept)
    entries: tuple[int, ...]  # sizes of the one immuta_user_mappings (against `count` nulls)
    sharded: tuple[int, int] | None  # (entries, resources) spread with for_each


FULL = Sizes(
    1000,
    (100, 250, 500, 1000),
    10_000,
    (1, 5, 10),
    21,
    3,
    3,
    (1000, 5000, 10_000, 20_000),
    (10_000, 10),
)
QUICK = Sizes(100, (10, 25, 50, 100), 1_000, (1, 5, 10), 7, 1, 1, (100, 500, 1000, 2000), None)


def sections(text: str) -> set[str]:
    chosen = {s.strip() for s in text.split(",") if s.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s): {', '.join(sorted(unknown))}")
    return chosen


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def kilo(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def render(sizes: Sizes, argv: list[str], results: dict, info: dict[str, str], total: float) -> str:
    quick = sizes is QUICK
    n = sizes.count
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, ours: float | None, null: float | None, fmt: str) -> None:
        ratio = f"{ours / null:.2f}" if ours is not None and null else "–"
        rows.append(
            (
                label,
                format(ours, fmt) if ours is not None else "–",
                format(null, fmt) if null is not None else "–",
                ratio,
            )
        )

    if "handshake" in results:
        h = results["handshake"]
        row(
            f"process start → handshake line, median of {sizes.handshake_runs} (ms)",
            statistics.median(h["ours"]),
            statistics.median(h["go null"]),
            ".1f",
        )
        row(
            f"process start → first schema answered (mTLS), median of {sizes.handshake_runs} (ms)",
            statistics.median(h["ours first answer"]),
            statistics.median(h["go null first answer"]),
            ".1f",
        )
    if "mappings" in results:
        m = results["mappings"]
        for step, label in (
            ("apply", "terraform apply"),
            ("refresh-plan", "refresh-plan (`plan -detailed-exitcode` after apply)"),
            ("destroy", "terraform destroy"),
        ):
            if step in m["immuta"]:
                row(
                    f"{label}, {n} resources (s)",
                    m["immuta"][step].seconds,
                    m["null"][step].seconds,
                    ".2f",
                )
        if "null same state" in m:
            for step in mappings.STEPS:
                row(
                    f"{step}, {n} resources, against null_resources holding the same state "
                    "bytes (s)",
                    m["immuta"][step].seconds,
                    m["null same state"][step].seconds,
                    ".2f",
                )
            b = m["bytes"]
            rows.append(
                (
                    "state-file bytes per instance (null column: plain / same-state)",
                    f"{b['immuta']:.0f}",
                    f"{b['null']:.0f} / {b['null same state']:.0f}",
                    f"{b['immuta'] / b['null']:.2f}",
                )
            )
    if "user_mappings" in results:
        median, _, null = results["user_mappings"]
        size = 10 * n if 10 * n in median else max(median)
        for step in ("apply", "refresh-plan", "one-entry plan", "one-entry apply"):
            against = user_mappings.BASELINE_STEP[step]
            row(
                f"immuta_user_mappings of {kilo(size)} entries: {step} (s; null: {n} "
                f"null_resources, {against})",
                median[size].runs[step].seconds,
                null[against].seconds,
                ".2f",
            )
        same = median[size].data or {}
        for step in ("apply", "refresh-plan", "one-entry plan", "one-entry apply"):
            if step in same:
                row(
                    f"immuta_user_mappings of {kilo(size)} entries: {step}, against Terraform's "
                    "built-in terraform_data holding the same value (s)",
                    median[size].runs[step].seconds,
                    same[step].seconds,
                    ".2f",
                )
        row(
            f"immuta_user_mappings of {kilo(size)} entries: provider peak RSS (MiB)",
            user_mappings.peak_mib(median[size]),
            None,
            ".1f",
        )
    if "crawl" in results:
        big = results["crawl"][1][-1]
        what = f"{kilo(big.objects)} objects, {big.databases} databases"
        row(f"crawl {what}: provider create time (s)", big.provider_seconds, None, ".2f")
        row(f"crawl {what}: objects/s", big.rate, None, ",.0f")
        row(f"crawl {what}: provider peak RSS (MiB)", big.peak_mib, None, ".1f")
    if "rss" in results:
        r = results["rss"]
        row("provider RSS after the handshake line (MiB)", r["ours"], r["null"], ".1f")
        row("provider RSS after GetProviderSchema (MiB)", r["ours schema"], None, ".1f")
    if "main_run" in results:
        m = results["main_run"]
        row(
            f"provider peak RSS during the {n}-resource apply (MiB)",
            m["immuta"]["apply"].peak_mib,
            m["null"]["apply"].peak_mib,
            ".1f",
        )

    header = ("benchmark", "immuta (Python)", "Go null 2.1.2", "ratio")
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|---:|---:|---:|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    notes = []
    if sizes.repeat > 1 and results.keys() & {"mappings", "crawl"}:
        notes.append(
            f"Mapping and crawl figures are the median of {sizes.repeat} runs (RSS and CPU "
            f"from that run); the other apply-scaling points, one run each."
        )
    if "crawl" in results:
        baseline, crawls = results["crawl"]
        points = ", ".join(
            f"{kilo(c.objects)}: {c.provider_seconds:.2f} s ({c.rate:,.0f}/s, "
            f"terraform apply {c.apply_seconds:.1f} s, peak {c.peak_mib:.0f} MiB, CPU "
            f"provider {c.provider_cpu:.1f} s + PostgreSQL {c.server_cpu:.1f} s)"
            for c in crawls
        )
        xs = [c.objects for c in crawls]
        slope, intercept = common.linear_fit(xs, [c.provider_seconds for c in crawls])
        notes.append(
            f"Crawl: {points}; baseline (no database matched) {baseline.provider_seconds:.2f} s. "
            f"Linear fit: {intercept:.2f} s + {slope * 1e6:.1f} s per million objects."
        )
        made = results.get("dataset")
        if made:
            notes.append(
                f"Crawl data set: {crawl.DATABASES} databases x {sizes.per_database:,} objects "
                f"(3/4 tables, 1/4 views, materialized views, a partitioned table), made in "
                f"{made['first']:.1f} s (one DO block) + {made['copies']:.1f} s "
                f"({crawl.DATABASES - 1} template copies)."
            )
    if "mappings" in results:
        m = results["mappings"]
        cpu = "; ".join(
            f"{step} {m['immuta'][step].terraform_cpu:.1f} / {m['immuta'][step].provider_cpu:.1f}"
            f" / {m['immuta'][step].server_cpu:.1f} (null: {m['null'][step].terraform_cpu:.1f} / "
            f"{m['null'][step].provider_cpu:.1f})"
            for step in mappings.STEPS
        )
        if "null same state" in m:
            same = "; ".join(
                f"{step} {m['null same state'][step].terraform_cpu:.1f} / "
                f"{m['null same state'][step].provider_cpu:.1f}"
                for step in mappings.STEPS
            )
            notes.append(
                "Same-state baseline: null_resources whose triggers carry a mapping's strings "
                "and reference one other null_resource (bench/mappings.py). Terraform's local "
                "backend rewrites the whole state file after every resource it changes, so its "
                "CPU grows with the bytes per instance; against this baseline the difference "
                f"left is the provider's. Its CPU seconds, terraform / provider: {same}."
            )
        notes.append(
            f"CPU seconds of the {n}-resource runs, terraform / provider processes / "
            f"PostgreSQL: {cpu}. Provider processes per command: "
            f"{m['immuta']['apply'].providers} (apply)."
        )
    if "user_mappings" in results:
        median, sharded, null = results["user_mappings"]
        columns = [median[size] for size in sorted(median)] + ([sharded] if sharded else [])
        points = "; ".join(
            f"{user_mappings.label(r)}: "
            + ", ".join(
                f"{step} {r.runs[step].seconds:.2f} (CPU {r.runs[step].terraform_cpu:.1f} / "
                f"{r.runs[step].provider_cpu:.1f})"
                for step in user_mappings.STEPS
            )
            + f", peak RSS {user_mappings.peak_mib(r):.0f} MiB"
            for r in columns
        )
        notes.append(
            f"immuta_user_mappings, seconds (one run each; CPU seconds of terraform / the "
            f"provider processes): {points}. Against {n} "
            f"null_resources: apply {null['apply'].seconds:.2f}, refresh-plan "
            f"{null['refresh-plan'].seconds:.2f}, destroy {null['destroy'].seconds:.2f}."
        )
    if "scaling" in results:
        s = results["scaling"]
        points = ", ".join(
            f"{c}: {a:.2f}/{b:.2f}"
            for c, a, b in zip(s["counts"], s["immuta"], s["null"], strict=True)
        )
        notes.append(f"Apply scaling, immuta/null seconds: {points}.")
    notes.append(
        "Method: wall-clock seconds of each terraform command (same flags for both providers; "
        "refresh-plan must exit 0). Crawl time: the provider's own ApplyResourceChange time "
        "from its debug log. Peak RSS: the largest VmHWM of the provider processes terraform "
        f"starts, sampled from /proc every {common.POLL_S * 1000:.0f} ms. RSS at rest: VmRSS "
        "of the executable started as Terraform starts it. CPU: getrusage of terraform and "
        "its children, /proc of the providers and the postmaster (bench/common.py)."
    )
    machine = (
        f"{info['nproc']} cores, {info['cpu']}, Linux {info['kernel']}, Python {info['python']}, "
        f"Terraform {info['terraform']}, PostgreSQL 17 (fsync off), revision {info['revision']}, "
        f"load average {info['load']} at start"
    )
    title = "Benchmarks" + (" (--quick: sizes / 10, fewer runs)" if quick else "")
    text = [
        f"## {title}",
        "",
        f"`{' '.join(['./build.sh bench', *argv])}`, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {machine}; "
        f"-parallelism={PARALLELISM}; total {total / 60:.1f} min.",
        "",
        *lines,
        "",
        *(f"{note}\n" for note in notes),
    ]
    return "\n".join(text).rstrip() + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes / 10, fewer runs, < 2 min")
    parser.add_argument(
        "--only", type=sections, default=set(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS,
        help=f"Markdown results file (default {RESULTS.relative_to(common.ROOT)})",
    )
    args = parser.parse_args(argv)
    for exe in (handshake.OURS, handshake.NULL):
        if not exe.exists():
            parser.error(f"{exe} missing; run ./build.sh first")
    only: set[str] = args.only
    sizes = QUICK if args.quick else FULL
    timer = common.Timer()
    info = common.machine()
    results: dict = {}

    if "handshake" in only:
        log(f"handshake: {sizes.handshake_runs} interleaved starts each")
        results["handshake"] = handshake.measure(sizes.handshake_runs)
    if "rss" in only:
        log("rss: provider at rest")
        results["rss"] = rss.measure(sizes.rss_runs)

    if only & {"mappings", "plots", "rss"}:
        server = mappings.start_server()
        try:
            steps = mappings.STEPS if "mappings" in only else ("apply",)
            runs = []
            for n in range(sizes.repeat):
                log(
                    f"mappings: {sizes.count} resources each, {', '.join(steps)} "
                    f"(run {n + 1} of {sizes.repeat})"
                )
                runs.append(
                    mappings.compare(
                        server, sizes.count, PARALLELISM, steps, same_state="mappings" in only
                    )
                )
            main_run = mappings.median_runs(runs)
            results["main_run"] = main_run
            if "mappings" in only:
                results["mappings"] = main_run
            if "plots" in only:
                counts = list(sizes.scaling)
                immuta, null = [], []
                for count in counts:
                    if count == sizes.count:
                        run = main_run
                    else:
                        log(f"scaling: apply of {count} resources each")
                        run = mappings.compare(server, count, PARALLELISM, ("apply",))
                    immuta.append(run["immuta"]["apply"].seconds)
                    null.append(run["null"]["apply"].seconds)
                results["scaling"] = {"counts": counts, "immuta": immuta, "null": null}
        finally:
            server.stop()

    if "user_mappings" in only:
        server = mappings.start_server()
        try:
            log(
                f"user_mappings: {', '.join(map(kilo, sizes.entries))} entries"
                + (f", {kilo(sizes.sharded[0])} over {sizes.sharded[1]}" if sizes.sharded else "")
                + f", {sizes.count} null_resources"
            )
            results["user_mappings"] = user_mappings.compare(
                server, sizes.entries, sizes.sharded, null_count=sizes.count
            )
        finally:
            server.stop()
        from bench import plots

        median, _, null = results["user_mappings"]
        path = QUICK_ENTRIES_PLOT if args.quick else ENTRIES_PLOT
        plots.user_mappings(
            path,
            median,
            null,
            sizes.count,
            f"immuta_user_mappings{' (--quick)' if args.quick else ''}: {info['nproc']} cores, "
            f"{info['cpu']}, Python {info['python']}, Terraform {info['terraform']}, "
            f"PostgreSQL 17, load {info['load']} at start",
        )
        log(f"plot written to {path.relative_to(common.ROOT)}")

    if only & {"crawl", "plots"}:
        server = PostgresServer(17).start()
        try:
            log(f"crawl: data set of {crawl.DATABASES} x {sizes.per_database:,} objects")
            made = crawl.create_dataset(server, sizes.per_database)
            results["dataset"] = made
            log(f"crawl: data set made in {made['first']:.1f} + {made['copies']:.1f} s")
            log(f"crawl: baseline and {', '.join(map(str, sizes.crawl_databases))} databases")
            results["crawl"] = crawl.measure(
                server, list(sizes.crawl_databases), PARALLELISM, sizes.repeat
            )
        finally:
            server.stop()

    if "plots" in only:
        from bench import plots

        path = QUICK_PLOT if args.quick else PLOT
        baseline, crawls = results["crawl"]
        s = results["scaling"]
        plots.scaling(
            path,
            s["counts"],
            s["immuta"],
            s["null"],
            [c.objects for c in crawls],
            [c.provider_seconds for c in crawls],
            baseline.provider_seconds,
            sizes.per_database,
            f"tfprovider-immuta-pg benchmarks{' (--quick)' if args.quick else ''}: "
            f"{info['nproc']} cores, {info['cpu']}, Python {info['python']}, "
            f"Terraform {info['terraform']}",
        )
        log(f"plot written to {path.relative_to(common.ROOT)}")
        if "crawl" not in only:
            del results["crawl"]

    text = render(sizes, argv, results, info, timer.elapsed)
    args.output.write_text(text)
    print(text, end="")
    log(f"written to {args.output}; total {timer.elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
