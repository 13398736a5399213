"""What an RPC costs through the provider's gRPC server, in plaintext and with mutual TLS,
beside the Go null provider (and our provider from another revision); and how fast the
server's HPACK decoder reads Huffman-coded strings.

    python -m bench.transport [--calls 2000] [--baseline REV|EXECUTABLE]

Each provider executable is started twice, as go-plugin starts it: once in plaintext (no
PLUGIN_CLIENT_CERT; Terraform's TF_DISABLE_PLUGIN_TLS) and once with AutoMTLS. A grpcio
client on one channel per process makes `--calls` sequential calls of a small RPC (health
Check, ~20 bytes each way, answered on our server's loop) and of a large one (the schema:
GetProviderSchema, answered by a worker thread; GetSchema for null), against every process
in turn, in rounds of 100, so all see the same machine. The figures are the median round
trip and the provider's CPU time per call (from /proc/<pid>/task/*/schedstat). ``--baseline`` as in
bench.handshake: a git revision (built once under .cache/bench-baseline) or an executable.

The Huffman figures are MiB/s of coded input, in this process: our decoder, the `hpack`
package's, and the baseline's decoder when its source is at hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import hpack
from harness.plugin import PluginProcess, make_client_certificate

from bench.handshake import NULL, OURS, SCHEMA_METHODS, provider_at
from tfprovider_immuta_pg.protocol.hpack_decoder import huffman_decode

ROUND = 100
MODES = ("plaintext", "mtls")
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
CHECK_PLUGIN = b"\n\x06plugin"  # grpc.health.v1.HealthCheckRequest{service: "plugin"}


def cpu_seconds(pid: int) -> float:
    """The process's CPU time from the scheduler's nanosecond counts (/proc's utime and stime
    tick at 10 ms, coarse for rounds of ~10 ms). Every thread of the measured providers
    outlives the rounds, so summing the live ones misses nothing."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
    return total / 1e9


def _calls(process: PluginProcess, channel: grpc.Channel) -> dict[str, Callable[[], bytes]]:
    def call(method: str, request: bytes) -> Callable[[], bytes]:
        stub = channel.unary_unary(method)
        return lambda: stub(request, timeout=10)

    schema = SCHEMA_METHODS[process.handshake.app_version]
    return {"health Check": call(HEALTH_CHECK, CHECK_PLUGIN), "schema": call(schema, b"")}


def measure(
    calls: int = 2000, others: dict[str, Path] | None = None
) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """{provider: {mode: {rpc: (median round trip ms, provider CPU ms per call)}}} for
    "ours", each of `others` and "go null"; "ours" also has "schema_bytes"."""
    providers = {"ours": OURS, **(others or {}), "go null": NULL}
    client = make_client_certificate()
    processes: dict[tuple[str, str], PluginProcess] = {}
    scratch = tempfile.mkdtemp(prefix="bench-transport-")  # every socket lands in here
    env = {"PLUGIN_PROTOCOL_VERSIONS": "5,6", "PLUGIN_UNIX_SOCKET_DIR": scratch, "TMPDIR": scratch}
    try:
        for name, executable in providers.items():
            for mode in MODES:
                processes[(name, mode)] = PluginProcess(
                    env,
                    client_certificate=client if mode == "mtls" else None,
                    executable=executable,
                )
        channels = {key: process.channel() for key, process in processes.items()}
        kinds = {key: _calls(processes[key], channel) for key, channel in channels.items()}
        samples = {key: {kind: [] for kind in kinds[key]} for key in kinds}
        cpu = {key: dict.fromkeys(kinds[key], 0.0) for key in kinds}
        for by_kind in kinds.values():
            for call in by_kind.values():
                call()  # connect, load the provider
        for _ in range(max(1, calls // ROUND)):
            for key, by_kind in kinds.items():
                pid = processes[key].proc.pid
                for kind, call in by_kind.items():
                    cpu_before = cpu_seconds(pid)
                    for _ in range(ROUND):
                        start = time.perf_counter()
                        call()
                        samples[key][kind].append(time.perf_counter() - start)
                    cpu[key][kind] += cpu_seconds(pid) - cpu_before
        schema_bytes = len(kinds[("ours", "plaintext")]["schema"]())
        for channel in channels.values():
            channel.close()
    finally:
        for process in processes.values():
            process.close()
        shutil.rmtree(scratch, ignore_errors=True)
    result: dict = {name: {mode: {} for mode in MODES} for name in providers}
    for (name, mode), by_kind in samples.items():
        for kind, values in by_kind.items():
            per_call = cpu[(name, mode)][kind] * 1000 / len(values)
            result[name][mode][kind] = (statistics.median(values) * 1000, per_call)
    result["ours"]["schema_bytes"] = schema_bytes
    return result


# ---------------------------------------------------------------------- Huffman decoding


def huffman_corpora() -> dict[str, bytes]:
    """Huffman-coded strings of 64 KiB or more: header-like text, and random bytes (every
    byte value, so the long codes too)."""
    encoder = hpack.huffman.HuffmanEncoder(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
    )
    text = b"".join(
        b"/tfplugin6.Provider/PlanResourceChange application/grpc grpc-go/1.69.4 %d " % i
        for i in range(1000)
    )
    return {"header text": encoder.encode(text), "random bytes": encoder.encode(os.urandom(32768))}


def huffman_speeds(
    decoders: dict[str, Callable[[bytes], bytes]], repeats: int = 5
) -> dict[str, dict[str, float]]:
    """{decoder: {corpus: MiB/s of coded input, median of `repeats` interleaved runs}}."""
    corpora = huffman_corpora()
    times: dict[str, dict[str, list[float]]] = {d: {c: [] for c in corpora} for d in decoders}
    for decode in decoders.values():
        for coded in corpora.values():
            decode(coded)  # untimed: fills our lazily made table
    for _ in range(repeats):
        for name, decode in decoders.items():
            for corpus, coded in corpora.items():
                start = time.perf_counter()
                decode(coded)
                times[name][corpus].append(time.perf_counter() - start)
    return {
        name: {c: len(corpora[c]) / statistics.median(t) / 2**20 for c, t in by_corpus.items()}
        for name, by_corpus in times.items()
    }


def baseline_huffman(executable: Path) -> Callable[[bytes], bytes] | None:
    """The Huffman decoder in the source tree that built `executable`, if there is one."""
    for folder in executable.parents:
        source = folder / "src/tfprovider_immuta_pg/protocol/hpack_decoder.py"
        if source.is_file():
            spec = importlib.util.spec_from_file_location("baseline_hpack_decoder", source)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.huffman_decode
    return None


# ---------------------------------------------------------------------- output


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--baseline", metavar="REV|EXECUTABLE")
    args = parser.parse_args(argv)
    others = dict([provider_at(args.baseline)]) if args.baseline else {}
    result = measure(args.calls, others)

    ours = result["ours"]
    print("ms per RPC      round trip: plaintext  mTLS  cost | provider CPU: plaintext  mTLS  cost")
    for kind, label in (("health Check", "health Check"), ("schema", "GetProviderSchema")):
        (plain, plain_cpu), (mtls, mtls_cpu) = ours["plaintext"][kind], ours["mtls"][kind]
        print(
            f"{label:<18} {plain:>19.3f} {mtls:>5.3f} {mtls - plain:>5.3f} |"
            f" {plain_cpu:>23.3f} {mtls_cpu:>5.3f} {mtls_cpu - plain_cpu:>5.3f}"
        )
    print(f"GetProviderSchema response: {ours['schema_bytes']} bytes")

    print(f"\nside by side, medians of {args.calls} calls each (ms per RPC)")
    print(f"{'':26}{'round trip':>18}{'provider CPU':>22}")
    print(f"{'':26}{'plaintext':>10}{'mTLS':>8}{'plaintext':>14}{'mTLS':>8}")
    for kind, label in (
        ("health Check", "health Check"),
        ("schema", "schema (GetSchema for null)"),
    ):
        print(label)
        for name in result:
            (plain, plain_cpu), (mtls, mtls_cpu) = (result[name][m][kind] for m in MODES)
            print(f"  {name:<24}{plain:10.3f}{mtls:8.3f}{plain_cpu:14.3f}{mtls_cpu:8.3f}")

    decoders = {"ours": huffman_decode}
    for label, executable in others.items():
        old = baseline_huffman(executable)
        if old is not None:
            decoders[label] = old
    decoders[f"hpack {hpack.__version__}"] = hpack.huffman_table.decode_huffman
    speeds = huffman_speeds(decoders, repeats=3 if len(decoders) > 2 else 5)
    corpora = list(next(iter(speeds.values())))
    print("\nHPACK Huffman decoding, MiB/s of coded input (median)")
    print(f"{'':26}" + "".join(f"{corpus:>16}" for corpus in corpora))
    for name, by_corpus in speeds.items():
        print(f"  {name:<24}" + "".join(f"{by_corpus[c]:16.2f}" for c in corpora))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
