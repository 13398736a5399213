"""py-spy profile of our provider during the N-mapping apply and refresh-plan.

    python -m bench.profile [--count 1000] [--rate 100] [--top 15] [--one-resource]

Not part of `python -m bench` (sampling slows the provider down). Terraform starts the
provider itself, 3 to 4 times per command: every provider process terraform starts is
attached to with ``py-spy record --format raw`` (one py-spy per process, until it exits).
By default only samples of the thread holding the GIL count (``--gil``): Python code on
CPU; C code that releases the GIL (libpq waits, grpc's core, TLS) is not in them.
``--all-threads`` counts every thread py-spy does not see as idle instead (it takes some
blocked waits, such as the thread pool's queue, for work). "Own" counts samples whose
innermost frame is the function; "total" counts samples with the function anywhere on the
stack. Raw collapsed stacks (for
flamegraph.pl or speedscope) are kept in .cache/bench/profile/.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import mappings, user_mappings
from bench.common import ROOT, proc_status

PY_SPY = Path(sys.executable).parent / "py-spy"
OUT = ROOT / ".cache" / "bench" / "profile"
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


class Spies:
    """Starts one `py-spy record` per provider process; `on_new` is a ProviderWatch hook."""

    def __init__(self, out: Path, phase: str, rate: int, gil: bool) -> None:
        self.out, self.phase, self.rate = out, phase, rate
        self.options = ["--function"] + (["--gil"] if gil else [])
        self.threads: list[threading.Thread] = []
        self.files: list[Path] = []

    def on_new(self, pid: int, _cmdline: str) -> None:
        path = self.out / f"{self.phase}-{pid}.txt"
        thread = threading.Thread(target=self._record, args=(pid, path), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _record(self, pid: int, path: Path) -> None:
        # A process caught right after exec may not be a Python interpreter yet: retry.
        for _ in range(50):
            if not proc_status(pid):
                return
            done = subprocess.run(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    *self.options,
                    "--rate",
                    str(self.rate),
                    "--output",
                    str(path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            if done.returncode == 0 and path.exists():
                self.files.append(path)
                return
            time.sleep(0.02)

    def join(self) -> list[Path]:
        for thread in self.threads:
            thread.join(timeout=60)
        return self.files


def summarise(
    files: list[Path],
) -> tuple[int, collections.Counter, collections.Counter, collections.Counter]:
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    by_file: collections.Counter = collections.Counter()
    samples = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            samples += n
            frames = [_name(f) for f in stack.split(";")]
            own[frames[-1]] += n
            by_file[_file(stack.split(";")[-1])] += n
            for name in set(frames):
                total[name] += n
    return samples, own, total, by_file


def _file(frame: str) -> str:
    match = FRAME.match(frame)
    return match["file"] if match else frame


def _name(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    return f"{match['func']} ({match['file']})"


def report(phase: str, files: list[Path], top: int, rate: int) -> str:
    samples, own, total, by_file = summarise(files)
    if not samples:
        return f"{phase}: no samples"
    lines = [
        f"{phase}: {samples} samples ({samples / rate:.1f} s) in {len(files)} provider process(es)",
        f"{'own %':>7}{'total %':>9}  function (file)",
    ]
    for name, n in own.most_common(top):
        lines.append(f"{100 * n / samples:7.1f}{100 * total[name] / samples:9.1f}  {name}")
    lines.append(f"{'own %':>7}{'':9}  file")
    for name, n in by_file.most_common(top // 2):
        lines.append(f"{100 * n / samples:7.1f}{'':9}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--all-threads", action="store_true", help="not only the GIL holder")
    parser.add_argument(
        "--one-resource",
        action="store_true",
        help="one immuta_user_mappings holding --count entries (bench/user_mappings.py), "
        "instead of --count immuta_user_mapping resources",
    )
    args = parser.parse_args(argv)
    if not PY_SPY.exists():
        parser.error(f"{PY_SPY} missing: .venv/bin/pip install py-spy")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    server = mappings.start_server()
    reports = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            if args.one_resource:
                tf, db = user_mappings.workspace(server, Path(tmp), args.count)
                steps = user_mappings.STEPS[:4]
            else:
                tf, db = mappings.immuta_workspace(server, Path(tmp), args.count)
                steps = ("apply", "refresh-plan")
            for step in steps:
                spies = Spies(OUT, step.replace(" ", "-"), args.rate, gil=not args.all_threads)
                if args.one_resource:
                    run = user_mappings.run_step(tf, step, server, on_new=spies.on_new)
                else:
                    run = mappings.run_step(tf, step, 10, on_new=spies.on_new, server=server)
                files = spies.join()
                reports.append(
                    f"{report(step, files, args.top, args.rate)}\n({step} took "
                    f"{run.seconds:.1f} s under the profiler; CPU: {mappings.cpu_line(run)})"
                )
            db.drop()
    finally:
        server.stop()
    what = "entries of one immuta_user_mappings" if args.one_resource else "immuta_user_mapping"
    print(f"{args.count} {what}, -parallelism=10, py-spy {args.rate} Hz\n")
    print("\n\n".join(reports))
    print(f"\nraw stacks: {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
