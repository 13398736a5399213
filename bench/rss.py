"""Provider memory at rest: RSS right after the handshake line and after GetProviderSchema.

    python -m bench.rss [--runs 3]

Each executable is started as Terraform starts it (magic cookie, AutoMTLS client certificate;
see bench/handshake.py); VmRSS is read from /proc/<pid>/status as soon as the handshake line
is on stdout, then (ours only: the Go null provider 2.1.2 speaks protocol 5) again after one
``tfplugin6.Provider/GetProviderSchema`` call over the TLS channel the handshake announces.
Our provider prints the handshake line before loading its stubs and resources (that happens
in a background thread while the client connects), so the first figure is the floor a
Terraform command pays per provider start, the second what a provider that served its schema
holds. Medians of `--runs` starts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

import grpc
from harness.plugin import ClientCertificate, Handshake, make_client_certificate

from bench.common import MIB, proc_status
from bench.handshake import NULL, OURS, plugin_environment

TIMEOUT_S = 30


def start(executable: str, env: dict[str, str]) -> tuple[subprocess.Popen, Handshake]:
    proc = subprocess.Popen(
        [executable],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if not line.startswith("1|"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{executable}: no handshake line (got {line[:200]!r})")
    return proc, Handshake.parse(line)


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()


def get_provider_schema(handshake: Handshake, client: ClientCertificate) -> int:
    """One GetProviderSchema call (empty request); returns the response size in bytes."""
    target = handshake.target if handshake.network == "unix" else handshake.address
    credentials = grpc.ssl_channel_credentials(
        root_certificates=handshake.cert_pem,
        private_key=client.key_pem.encode(),
        certificate_chain=client.cert_pem.encode(),
    )
    with grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    ) as channel:
        call = channel.unary_unary("/tfplugin6.Provider/GetProviderSchema")  # raw bytes
        return len(call(b"", timeout=TIMEOUT_S, wait_for_ready=True))


def measure(runs: int) -> dict[str, float]:
    """Median MiB: ours after handshake and after GetProviderSchema, Go null after handshake."""
    samples: dict[str, list[float]] = {"ours": [], "ours schema": [], "null": []}
    schema_bytes = 0
    scratch = tempfile.mkdtemp(prefix="bench-rss-")
    try:
        client = make_client_certificate()
        env = plugin_environment(scratch, client)
        for _ in range(runs):
            proc, handshake = start(str(OURS), env)
            try:
                samples["ours"].append(proc_status(proc.pid)["VmRSS"] / MIB)
                schema_bytes = get_provider_schema(handshake, client)
                samples["ours schema"].append(proc_status(proc.pid)["VmRSS"] / MIB)
            finally:
                stop(proc)
            proc, _ = start(str(NULL), env)
            try:
                samples["null"].append(proc_status(proc.pid)["VmRSS"] / MIB)
            finally:
                stop(proc)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {name: statistics.median(values) for name, values in samples.items()}
    result["schema bytes"] = schema_bytes
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rss", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    r = measure(args.runs)
    print(f"RSS MiB, median of {args.runs}")
    print(f"  ours, after handshake line:        {r['ours']:6.1f}")
    print(
        f"  ours, after GetProviderSchema:     {r['ours schema']:6.1f}"
        f"  ({r['schema bytes']} bytes of schema)"
    )
    print(f"  Go null, after handshake line:     {r['null']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
