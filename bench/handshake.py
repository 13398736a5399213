"""Process start to go-plugin handshake line, and to the first schema answered: our provider
vs the Go null provider, and optionally vs our provider built from another revision.

Not a test. Run from the repository root after ``./build.sh``::

    .venv/bin/python -m bench.handshake [--runs N] [--profile] [--baseline REV|EXECUTABLE]

The executables run interleaved in the same environment (AutoMTLS on: PLUGIN_CLIENT_CERT is
a real PEM client certificate, as Terraform sends). Each start gives two times: "line", read
off the clock at the first stdout line, then "first answer": the bench goes on as Terraform
does, dials with mutual TLS, asks for the provider's schema (tfplugin6 GetProviderSchema for
ours, tfplugin5 GetSchema for null 2.1.2) and reads the clock at the answer. Our server and
provider load after the handshake line, so "first answer" is the start-up a Terraform
command waits for. ``--profile`` adds our startup import profile (``-X importtime``).

``--baseline`` adds "ours @ REV": a git revision is exported (``git archive``) into
``.cache/bench-baseline/<commit>`` and built there with its own ``build.sh`` and virtual
environment, once; an existing file is taken as a provider executable as it is.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from harness.plugin import ClientCertificate, Handshake, make_client_certificate

ROOT = Path(__file__).resolve().parent.parent
MIRROR = ROOT / "dist" / "mirror" / "registry.terraform.io"
OURS = MIRROR / "immuta-pg/immuta/0.1.0/linux_amd64/terraform-provider-immuta_v0.1.0"
NULL = MIRROR / "hashicorp/null/2.1.2/linux_amd64/terraform-provider-null_v2.1.2_x4"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
TIMEOUT_S = 30.0
BASELINES = ROOT / ".cache" / "bench-baseline"


def provider_at(spec: str) -> tuple[str, Path]:
    """(a label, the provider executable) for `spec`: an executable, or a git revision
    exported and built under BASELINES (the first time only)."""
    if os.path.isfile(spec):
        return f"ours @ {Path(spec).name}", Path(spec)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--verify", f"{spec}^{{commit}}")
    tree = BASELINES / commit
    pattern = "dist/mirror/registry.terraform.io/immuta-pg/immuta/*/*/terraform-provider-*"
    if not list(tree.glob(pattern)):
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        print(f"building {commit[:7]} in {tree} (once) ...", file=sys.stderr)
        scratch = tree / ".tmp"  # its own: pip unpacks there for minutes
        scratch.mkdir()
        env = {**os.environ, "TMPDIR": str(scratch)}
        with open(tree / "build.log", "wb") as log:
            subprocess.run(
                ["bash", "build.sh"], cwd=tree, stdout=log, stderr=log, env=env, check=True
            )
    return f"ours @ {commit[:7]}", sorted(tree.glob(pattern))[0]


def plugin_environment(scratch: str, client: ClientCertificate | None = None) -> dict[str, str]:
    """go-plugin's environment; PLUGIN_CLIENT_CERT announces `client` (default: a new one)."""
    env = dict(os.environ)
    for name in ("PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "TF_LOG", "TF_LOG_PROVIDER"):
        env.pop(name, None)
    env.update(
        TF_PLUGIN_MAGIC_COOKIE=MAGIC_COOKIE,
        PLUGIN_PROTOCOL_VERSIONS="5,6",
        PLUGIN_CLIENT_CERT=(client or make_client_certificate()).cert_pem,
        # Killed plugins leave their sockets behind; keep them in a directory removed at the end.
        PLUGIN_UNIX_SOCKET_DIR=scratch,
        TMPDIR=scratch,
    )
    return env


SCHEMA_METHODS = {
    "5": "/tfplugin5.Provider/GetSchema",
    "6": "/tfplugin6.Provider/GetProviderSchema",
}


def time_to_handshake(
    argv: list[str],
    env: dict[str, str],
    stderr=subprocess.DEVNULL,
    client: ClientCertificate | None = None,
) -> tuple[float, float | None]:
    """Seconds from spawning argv to reading its handshake line on stdout, and with `client`
    (the certificate announced in env) to the answer of its first schema call (else None)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
        to_line, to_answer = time.perf_counter() - start, None
        fields = line.decode(errors="replace").strip().split("|")
        if len(fields) < 6 or fields[0] != "1":
            raise RuntimeError(f"{argv[0]}: no handshake line (got {line[:200]!r})")
        if client is not None:
            _ask_for_schema(Handshake.parse(line.decode()), client)
            to_answer = time.perf_counter() - start
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return to_line, to_answer


def _ask_for_schema(handshake: Handshake, client: ClientCertificate) -> None:
    import grpc  # only for "first answer"; its import is not on any timed path

    credentials = grpc.ssl_channel_credentials(
        root_certificates=handshake.cert_pem,
        private_key=client.key_pem.encode(),
        certificate_chain=client.cert_pem.encode(),
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(handshake.target, credentials, options) as channel:
        call = channel.unary_unary(SCHEMA_METHODS[handshake.app_version])
        call(b"", timeout=TIMEOUT_S)  # an empty request message; the answer is not read


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def import_profile(env: dict[str, str], scratch: str, top: int = 10) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of our real startup, up to the handshake line."""
    log_path = os.path.join(scratch, "importtime.log")
    with open(log_path, "wb") as log:
        time_to_handshake([sys.executable, "-X", "importtime", str(OURS)], env, stderr=log)
    rows = []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative_us, module = line[len("import time:") :].split("|", 2)
            rows.append((int(cumulative_us), int(self_us), module.rstrip()))
    return sorted(rows, reverse=True)[:top]


def measure(runs: int, others: Mapping[str, Path] | None = None) -> dict[str, list[float]]:
    """Milliseconds, `runs` interleaved runs of each executable: to the handshake line
    ("ours", "go null", and each of `others` by its label) and to the first schema answered
    ("ours first answer", ...)."""
    scratch = tempfile.mkdtemp(prefix="bench-handshake-")
    try:
        client = make_client_certificate()
        env = plugin_environment(scratch, client)
        executables = {"ours": [str(OURS)], "go null": [str(NULL)]}
        executables.update((label, [str(exe)]) for label, exe in (others or {}).items())
        for command in executables.values():  # warm the page cache, untimed
            time_to_handshake(command, env, client=client)
        samples: dict[str, list[float]] = {}
        for _ in range(runs):
            for name, command in executables.items():
                line, answer = time_to_handshake(command, env, client=client)
                samples.setdefault(name, []).append(line * 1000)
                samples.setdefault(f"{name} first answer", []).append(answer * 1000)
        return samples
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handshake", description=__doc__)
    parser.add_argument("--runs", type=int, default=21, help="timed runs per executable (>= 15)")
    parser.add_argument("--profile", action="store_true", help="print our import profile top 10")
    parser.add_argument(
        "--baseline",
        metavar="REV|EXECUTABLE",
        help="also time our provider from this git revision (built once) or executable",
    )
    args = parser.parse_args(argv)
    if args.runs < 15:
        parser.error("--runs must be at least 15")
    for exe in (OURS, NULL):
        if not os.access(exe, os.X_OK):
            parser.error(f"{exe} missing; run ./build.sh first")
    others = dict([provider_at(args.baseline)]) if args.baseline else {}

    samples = measure(args.runs, others)
    print(f"process start -> handshake line / first answer, {args.runs} interleaved runs (ms)")
    print(f"{'':32}{'median':>10}{'p90':>10}{'min':>10}")
    for suffix in ("", " first answer"):
        for name in ("ours", *others, "go null"):
            values = samples[name + suffix]
            print(
                f"{name + suffix:32}{statistics.median(values):10.1f}"
                f"{percentile(values, 0.9):10.1f}{min(values):10.1f}"
            )
        for name in ("ours", *others):
            ours, null = samples[name + suffix], samples["go null" + suffix]
            print(
                f"{name + '/null' + suffix:32}"
                f"{statistics.median(ours) / statistics.median(null):10.2f}"
                f"{percentile(ours, 0.9) / percentile(null, 0.9):10.2f}"
                f"{min(ours) / min(null):10.2f}"
            )
    if args.profile:
        scratch = tempfile.mkdtemp(prefix="bench-handshake-")
        try:
            print("\nstartup import profile, top 10 by cumulative time (us)")
            print(f"{'cumulative':>12}{'self':>10}  module")
            for cumulative, self_us, module in import_profile(plugin_environment(scratch), scratch):
                print(f"{cumulative:12}{self_us:10}  {module}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
