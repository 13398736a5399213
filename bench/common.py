"""Shared by the benchmarks: running terraform while watching the providers it starts.

Peak RSS of a provider process: Terraform starts each provider 3 to 4 times per command, as
its own children. While a command runs, a thread lists terraform's children every
``POLL_S`` (``/proc/<terraform>/task/*/children``) and reads ``VmHWM`` (the kernel's
high-water mark of the resident set) from ``/proc/<provider>/status`` of each one whose
command line names ``terraform-provider-``. ``VmHWM`` only grows, so sampling loses nothing
but growth in the last interval before a process exits; a provider that lives less than one
interval may be missed, and it is not the one doing the work. The peak reported for a command
is the largest ``VmHWM`` over all its provider processes.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import Terraform

ROOT = Path(__file__).resolve().parent.parent

POLL_S = 0.05
PROVIDER_MARK = "terraform-provider-"
MIB = 1024.0  # /proc reports kB (KiB)


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, ...); {} once the process is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if value.endswith(" kB\n"):
                    fields[name] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return fields


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU of a process (with `reaped`, plus its waited-for children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14 to 17
    ticks = sum(int(x) for x in fields[11 : 15 if reaped else 13])
    return ticks / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its reaped children and its live children (a postmaster)."""
    return cpu_seconds(pid, reaped=True) + sum(cpu_seconds(c) for c in children(pid))


def children(pid: int) -> set[int]:
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(x) for x in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


class ProviderWatch(threading.Thread):
    """Samples VmHWM of every provider process `parent` starts; see the module docstring."""

    def __init__(
        self, parent: int, on_new: Callable[[int, str], None] | None = None, poll: float = POLL_S
    ) -> None:
        super().__init__(daemon=True)
        self.parent = parent
        self.on_new = on_new
        self.poll = poll
        self.peaks: dict[int, int] = {}  # pid -> largest VmHWM seen (kB)
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds at the last sample
        self.names: dict[int, str] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            stopping = self._stop_event.is_set()
            for pid in children(self.parent):
                if pid not in self.names:
                    line = cmdline(pid)
                    if PROVIDER_MARK not in line:
                        continue
                    self.names[pid] = line
                    if self.on_new:
                        self.on_new(pid, line)
                hwm = proc_status(pid).get("VmHWM")
                if hwm:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), hwm)
                    self.cpu[pid] = cpu_seconds(pid) or self.cpu.get(pid, 0.0)
            if stopping:
                return
            self._stop_event.wait(self.poll)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    @property
    def peak_kib(self) -> int:
        return max(self.peaks.values(), default=0)

    @property
    def cpu_seconds(self) -> float:
        """CPU of all provider processes (as of their last sample: a lower bound)."""
        return sum(self.cpu.values())


@dataclass
class Run:
    seconds: float
    peak_kib: int
    returncode: int
    stdout: str
    stderr: str
    providers: int = 0  # provider processes seen
    provider_cpu: float = 0.0  # CPU seconds of the provider processes
    terraform_cpu: float = 0.0  # CPU seconds of terraform itself (providers excluded)
    server_cpu: float = 0.0  # CPU seconds of the PostgreSQL server (when given)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / MIB


@dataclass
class Timer:
    """Wall-clock sections, for the total printed at the end."""

    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def terraform(
    tf: Terraform,
    *args: str,
    ok: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
    on_new: Callable[[int, str], None] | None = None,
    server_pid: int | None = None,
    timeout: float = 1800,
) -> Run:
    """Run `terraform args` in tf's folder, timing it and watching its provider processes.

    CPU: terraform's and its providers' from getrusage(RUSAGE_CHILDREN) around the command,
    the providers' share from their /proc samples; with `server_pid` (a postmaster), the
    server's, from its own, its reaped and its live children's times.
    """
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["terraform", *args],
        cwd=tf.workdir,
        env={**tf.env, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = ProviderWatch(proc.pid, on_new)
    watch.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"terraform {' '.join(args)} timed out after {timeout} s") from None
    finally:
        seconds = time.perf_counter() - started
        watch.stop()
    server_cpu = tree_cpu_seconds(server_pid) - server_before if server_pid else 0.0
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    all_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    if proc.returncode not in ok:
        raise RuntimeError(
            f"terraform {' '.join(args)} in {tf.workdir} exited {proc.returncode} "
            f"(expected {ok})\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-3000:]}"
        )
    return Run(
        seconds,
        watch.peak_kib,
        proc.returncode,
        stdout,
        stderr,
        providers=len(watch.names),
        provider_cpu=watch.cpu_seconds,
        terraform_cpu=max(0.0, all_cpu - watch.cpu_seconds),
        server_cpu=server_cpu,
    )


def flags(parallelism: int) -> list[str]:
    return ["-no-color", "-input=false", f"-parallelism={parallelism}"]


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares (slope, intercept)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return slope, my - slope * mx


# ------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def terraform_version() -> str:
    try:
        out = subprocess.run(
            ["terraform", "version"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        return "not found"
    match = re.search(r"Terraform v(\S+)", out)
    return match.group(1) if match else "unknown"


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "src")
    except OSError:
        return "unknown"
    return rev + (" + uncommitted changes in src/" if dirty else "")


def machine() -> dict[str, str]:
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "terraform": terraform_version(),
        "kernel": platform.release(),
        "revision": git_revision(),
        "load": f"{os.getloadavg()[0]:.1f}",
    }
