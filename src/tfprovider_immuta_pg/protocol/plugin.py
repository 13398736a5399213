"""go-plugin's side of the handshake: cookie, socket, TLS, handshake line, shutdown."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent import futures
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from ..framework.provider import Provider

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


def private_folder() -> str:
    """A fresh folder only this user can enter, as go-plugin makes for its socket.

    Not `tempfile.mkdtemp`: importing tempfile costs ~9 ms of a ~100 ms start-up.
    """
    base = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, "plugin" + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # whatever the umask
        return path


# Each RPC runs in one of three thread pools ("lanes"):
# - control: what must answer while everything else is busy (StopProvider must reach work
#   in flight to cancel it; StreamStdio holds its thread for the process's life);
# - long: calls that may wait for seconds (a crawl, IAM retries, a slow data source);
# - quick: the rest (plans, validation, reads: one SQL round trip each). Few threads here:
#   Python runs one at a time anyway, and 3 instead of 32 cut a 1000-mapping refresh-plan's
#   provider CPU from 2.9 to 2.3 s and its time by 15% (docs/performance.md).
CONTROL_METHODS = frozenset(
    {
        "/tfplugin6.Provider/StopProvider",
        "/plugin.GRPCController/Shutdown",
        "/plugin.GRPCStdio/StreamStdio",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }
)
LONG_METHODS = frozenset(
    {
        "/tfplugin6.Provider/ApplyResourceChange",
        "/tfplugin6.Provider/ImportResourceState",
        "/tfplugin6.Provider/ReadDataSource",
    }
)
QUICK_WORKERS, LONG_WORKERS, CONTROL_WORKERS = 3, 16, 4
_BEHAVIOURS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class Lanes:
    def __init__(self) -> None:
        self.long = futures.ThreadPoolExecutor(LONG_WORKERS, thread_name_prefix="rpc-long")
        self.quick = futures.ThreadPoolExecutor(QUICK_WORKERS, thread_name_prefix="rpc-quick")
        self.control = futures.ThreadPoolExecutor(CONTROL_WORKERS, thread_name_prefix="rpc-ctl")

    def pool_for(self, method: str) -> futures.ThreadPoolExecutor:
        if method in CONTROL_METHODS:
            return self.control
        return self.long if method in LONG_METHODS else self.quick

    def assign(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler, run in its lane (grpcio's `experimental_thread_pool` hook)."""
        for kind in _BEHAVIOURS:
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                return handler._replace(**{kind: _in_pool(behaviour, self.pool_for(method))})
        return handler


def _in_pool(behaviour: Callable, pool: futures.ThreadPoolExecutor) -> Callable:
    def run(request, context):
        return behaviour(request, context)

    run.experimental_thread_pool = pool  # a bound method takes no attributes
    return run


class DeferredServices(grpc.GenericRpcHandler):
    """Every service, loaded in the background once the handshake line is out.

    Terraform reads the handshake line, then dials and negotiates TLS; loading
    the provider (stubs, schemas) meanwhile keeps it off the startup path. A
    call arriving first waits for the load.
    """

    def __init__(self, load: Callable[[DeferredServices], None], lanes: Lanes) -> None:
        self._load = load
        self._lanes = lanes
        self._ready = threading.Event()
        self._methods: dict[str, grpc.RpcMethodHandler] = {}
        self._fallbacks: list[grpc.GenericRpcHandler] = []
        self._failure: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="load-services", daemon=True).start()

    def _run(self) -> None:
        try:
            self._load(self)
        except BaseException as exc:  # reported on every call rather than lost in a thread
            self._failure = exc
        finally:
            self._ready.set()

    # The generated add_*_to_server functions register through these two methods (current
    # grpcio-tools output calls both with the same handlers; the first is kept as a fallback).
    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._fallbacks.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            self._methods[method] = self._lanes.assign(method, handler)

    def service(self, handler_call_details: grpc.HandlerCallDetails):
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError(f"provider failed to load: {self._failure}")
        found = self._methods.get(handler_call_details.method)
        if found is not None:
            return found
        for handler in self._fallbacks:
            found = handler.service(handler_call_details)
            if found is not None:
                return found
        return None


class PluginServer:
    """The gRPC server with everything go-plugin expects besides the provider."""

    def __init__(self, provider_factory: Callable[[], Provider], client_cert_pem: str) -> None:
        """Plaintext when client_cert_pem is empty; else mutual TLS through a TlsFront."""
        self.shutdown_requested = threading.Event()
        self.socket_dir = private_folder()
        self.socket_path = os.path.join(self.socket_dir, "plugin.sock")
        self.lanes = Lanes()
        self.server = grpc.server(
            self.lanes.long,  # for anything not assigned a lane
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ],
        )
        self.provider_factory = provider_factory
        self.provider_service = None
        self.services = DeferredServices(self._register, self.lanes)
        self.server.add_generic_rpc_handlers((self.services,))
        self.certificate = None
        self.tls_front = None
        if client_cert_pem:
            from .tls import generate_certificate
            from .tls_front import TlsFront

            self.certificate = generate_certificate()
            inner_path = os.path.join(self.socket_dir, "grpc.sock")
            self.server.add_insecure_port(f"unix:{inner_path}")
            self.tls_front = TlsFront(
                self.socket_path, inner_path, self.certificate, client_cert_pem
            )
        else:
            self.server.add_insecure_port(f"unix:{self.socket_path}")

    def _register(self, registry: DeferredServices) -> None:
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
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registry)
        grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(Controller(), registry)
        grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(Stdio(), registry)
        self.provider_service = ProviderService(self.provider_factory())
        tfplugin6_pb2_grpc.add_ProviderServicer_to_server(self.provider_service, registry)

    @property
    def handshake_line(self) -> str:
        cert = self.certificate.handshake_text if self.certificate else ""
        return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{self.socket_path}|grpc|{cert}"

    def start(self) -> None:
        self.server.start()
        if self.tls_front is not None:
            self.tls_front.start()

    def stop(self) -> None:
        import shutil

        if self.provider_service is not None:
            self.provider_service.stop_signal.stop()
        if self.tls_front is not None:
            self.tls_front.stop()
        self.server.stop(grace=1).wait()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def serve(provider_factory: Callable[[], Provider]) -> None:
    check_cookie()
    check_protocol_versions()
    # Terraform handles Ctrl-C itself and calls StopProvider; the plugin must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = PluginServer(provider_factory, os.environ.get("PLUGIN_CLIENT_CERT", ""))
    except ValueError as exc:  # a damaged PLUGIN_CLIENT_CERT: never fall back to plaintext
        sys.stderr.write(f"terraform-provider-immuta: {exc}\n")
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown_requested.set())
    server.start()
    stdout = sys.stdout
    stdout.write(server.handshake_line + "\n")
    stdout.flush()
    sys.stdout = sys.stderr  # stray prints must not reach go-plugin's handshake reader
    server.services.start()
    from . import logs

    logs.log(
        "debug", "plugin started", socket=server.socket_path, tls=server.certificate is not None
    )
    try:
        server.shutdown_requested.wait()
    finally:
        server.stop()
