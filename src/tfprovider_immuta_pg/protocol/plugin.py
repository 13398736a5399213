"""go-plugin's side of the handshake: cookie, socket, TLS, handshake line, shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent import futures

import grpc

from ..framework.provider import Provider
from . import logs

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 6
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

NOT_A_PROGRAM_MESSAGE = (
    "This binary is a plugin. These are not meant to be executed directly.\n"
    "Please execute the program that consumes these plugins, which will\n"
    "load any plugins automatically\n"
)


def check_cookie() -> None:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write(
            NOT_A_PROGRAM_MESSAGE
            + "\nterraform-provider-immuta is started by Terraform: add immuta-pg/immuta to "
            "required_providers and run `terraform init`.\n"
        )
        sys.exit(1)


def check_protocol_versions() -> None:
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS")
    if offered and str(APP_PROTOCOL_VERSION) not in offered.split(","):
        sys.stderr.write(
            f"terraform-provider-immuta speaks plugin protocol {APP_PROTOCOL_VERSION}, but this "
            f"Terraform offers {offered}; use Terraform 1.0 or newer.\n"
        )
        sys.exit(1)


class PluginServer:
    """The gRPC server with everything go-plugin expects besides the provider."""

    def __init__(self, provider_factory: Callable[[], Provider], tls: bool) -> None:
        self.shutdown_requested = threading.Event()
        self.socket_dir = tempfile.mkdtemp(
            prefix="plugin", dir=os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or None
        )
        os.chmod(self.socket_dir, 0o700)
        self.socket_path = os.path.join(self.socket_dir, "plugin.sock")
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="rpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self.certificate = None
        self._register(provider_factory)
        address = f"unix:{self.socket_path}"
        if tls:
            from .tls import generate_certificate

            self.certificate = generate_certificate()
            credentials = grpc.ssl_server_credentials(
                [(self.certificate.key_pem, self.certificate.cert_pem)]
            )
            self.server.add_secure_port(address, credentials)
        else:
            self.server.add_insecure_port(address)

    def _register(self, provider_factory: Callable[[], Provider]) -> None:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        from .gen import (
            grpc_controller_pb2,
            grpc_controller_pb2_grpc,
            grpc_stdio_pb2_grpc,
            tfplugin6_pb2_grpc,
        )
        from .service import ProviderService

        plugin_server = self

        class Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
            def Shutdown(self, request, context):
                plugin_server.shutdown_requested.set()
                return grpc_controller_pb2.Empty()

        class Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
            def StreamStdio(self, request, context):
                # Output goes straight to stderr; the stream stays open until shutdown.
                plugin_server.shutdown_requested.wait()
                return iter(())

        health_servicer = health.HealthServicer()
        health_servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(Controller(), self.server)
        grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(Stdio(), self.server)
        self.provider_service = ProviderService(provider_factory())
        tfplugin6_pb2_grpc.add_ProviderServicer_to_server(self.provider_service, self.server)

    @property
    def handshake_line(self) -> str:
        cert = self.certificate.handshake_text if self.certificate else ""
        return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{self.socket_path}|grpc|{cert}"

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.provider_service.stop_signal.stop()
        self.server.stop(grace=1).wait()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def serve(provider_factory: Callable[[], Provider]) -> None:
    check_cookie()
    check_protocol_versions()
    # Terraform handles Ctrl-C itself and calls StopProvider; the plugin must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = PluginServer(provider_factory, tls=bool(os.environ.get("PLUGIN_CLIENT_CERT")))
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown_requested.set())
    server.start()
    stdout = sys.stdout
    stdout.write(server.handshake_line + "\n")
    stdout.flush()
    sys.stdout = sys.stderr  # stray prints must not reach go-plugin's handshake reader
    logs.log(
        "debug", "plugin started", socket=server.socket_path, tls=server.certificate is not None
    )
    try:
        server.shutdown_requested.wait()
    finally:
        server.stop()
