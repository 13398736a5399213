"""What client-certificate authentication costs per RPC.

    python -m bench.transport [--calls 2000]

The provider executable is started twice, as go-plugin starts it: once in plaintext (no
PLUGIN_CLIENT_CERT; Terraform's TF_DISABLE_PLUGIN_TLS) and once with AutoMTLS, where the
gRPC server (src/.../protocol/grpc_server.py) runs TLS with Python's ssl module on memory
BIOs and checks the client certificate. A grpcio client on one channel then makes
`--calls` sequential calls of a small RPC (health Check, ~20 bytes each way, answered on the
server's loop) and of a large one (GetProviderSchema, answered by a worker thread) against
each, interleaved in rounds of 100 so both see the same machine. The figures are the median
round trip and the provider's CPU time per call (from /proc), and their differences: what
TLS costs per RPC (decrypting the request, encrypting the response). The round trip also
holds the client's TLS work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness.plugin import PluginProcess, make_client_certificate

from bench.common import cpu_seconds
from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2, tfplugin6_pb2_grpc

ROUND = 100


def _calls(channel: grpc.Channel) -> dict[str, Callable[[], object]]:
    health = health_pb2_grpc.HealthStub(channel)
    provider = tfplugin6_pb2_grpc.ProviderStub(channel)
    check = health_pb2.HealthCheckRequest(service="plugin")
    schema = tfplugin6_pb2.GetProviderSchema.Request()
    return {
        "health Check": lambda: health.Check(check, timeout=10),
        "GetProviderSchema": lambda: provider.GetProviderSchema(schema, timeout=10),
    }


def measure(calls: int = 2000) -> dict[str, dict[str, float]]:
    """Per RPC kind, in ms: median round trip ("plaintext", "mtls") and provider CPU per call
    ("plaintext cpu", "mtls cpu"); "schema_bytes" holds the GetProviderSchema response size."""
    client = make_client_certificate()
    with PluginProcess() as plain, PluginProcess(client_certificate=client) as mtls:
        processes = {"plaintext": plain, "mtls": mtls}
        channels = {mode: process.channel() for mode, process in processes.items()}
        kinds = {mode: _calls(channel) for mode, channel in channels.items()}
        samples: dict[str, dict[str, list[float]]] = {
            mode: {kind: [] for kind in kinds[mode]} for mode in kinds
        }
        cpu: dict[str, dict[str, float]] = {mode: dict.fromkeys(kinds[mode], 0.0) for mode in kinds}
        for mode_calls in kinds.values():
            for call in mode_calls.values():
                call()  # connect, load the provider
        for _ in range(max(1, calls // ROUND)):
            for mode, mode_calls in kinds.items():
                pid = processes[mode].proc.pid
                for kind, call in mode_calls.items():
                    cpu_before = cpu_seconds(pid)
                    for _ in range(ROUND):
                        start = time.perf_counter()
                        call()
                        samples[mode][kind].append(time.perf_counter() - start)
                    cpu[mode][kind] += cpu_seconds(pid) - cpu_before
        schema_bytes = kinds["plaintext"]["GetProviderSchema"]().ByteSize()
        for channel in channels.values():
            channel.close()
    result: dict[str, dict[str, float]] = {}
    for mode, by_kind in samples.items():
        result[mode] = {kind: statistics.median(v) * 1000 for kind, v in by_kind.items()}
        result[f"{mode} cpu"] = {
            kind: s * 1000 / len(by_kind[kind]) for kind, s in cpu[mode].items()
        }
    result["schema_bytes"] = {"GetProviderSchema": float(schema_bytes)}
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    result = measure(args.calls)
    print("ms per RPC      round trip: plaintext  mTLS  cost | provider CPU: plaintext  mTLS  cost")
    for kind, plain in result["plaintext"].items():
        mtls = result["mtls"][kind]
        plain_cpu, mtls_cpu = result["plaintext cpu"][kind], result["mtls cpu"][kind]
        print(
            f"{kind:<18} {plain:>19.3f} {mtls:>5.3f} {mtls - plain:>5.3f} |"
            f" {plain_cpu:>23.3f} {mtls_cpu:>5.3f} {mtls_cpu - plain_cpu:>5.3f}"
        )
    print(f"GetProviderSchema response: {result['schema_bytes']['GetProviderSchema']:.0f} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
