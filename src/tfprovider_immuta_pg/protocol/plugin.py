"""go-plugin's side of the handshake: cookie, socket, TLS, handshake line, shutdown."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..framework.provider import Provider
    from .grpc_server import GrpcServer, Route, WorkerPool
    from .service import ProviderService

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
CORE_PROTOCOL_VERSION = 1
APP_PROTOCOL_VERSION = 6

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


SOCKET_NAME = "plugin.sock"
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes, the last one a NUL


class SocketFolderError(Exception):
    """The plugin cannot listen where go-plugin asks it to; the message is for the user."""


def private_folder(base: str) -> str:
    """A fresh folder under `base` only this user can enter, as go-plugin makes for its socket.

    Not `tempfile.mkdtemp`, whose import would lengthen start-up (docs/performance.md,
    "Figures behind the code").
    """
    while True:
        path = os.path.join(base, "plugin" + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # whatever the umask
        return path


def listen_in_private_folder() -> tuple[str, str, socket.socket]:
    """(folder, socket path, listening socket) under PLUGIN_UNIX_SOCKET_DIR, TMPDIR or /tmp.

    SocketFolderError when that cannot be done; nothing is left behind then.
    """
    for variable in ("PLUGIN_UNIX_SOCKET_DIR", "TMPDIR"):
        if os.environ.get(variable):  # empty is unset, as for go-plugin
            base, where = os.environ[variable], f"{variable}={os.environ[variable]}"
            break
    else:
        base = where = "/tmp"
    base = os.path.abspath(base)  # the handshake line must name an absolute path
    longest = os.path.join(base, "plugin" + "0" * 12, SOCKET_NAME)
    if len(os.fsencode(longest)) > UNIX_PATH_MAX:
        raise SocketFolderError(
            f"{where} is too long: a socket under it would have a "
            f"{len(os.fsencode(longest))}-byte path, and a unix socket allows {UNIX_PATH_MAX}; "
            "set PLUGIN_UNIX_SOCKET_DIR to a shorter folder"
        )
    try:
        folder = private_folder(base)
    except OSError as exc:
        raise SocketFolderError(
            f"cannot make the socket folder under {where}: {exc.strerror}; set "
            "PLUGIN_UNIX_SOCKET_DIR to an existing folder this user can write to"
        ) from None
    path = os.path.join(folder, SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(64)
    except OSError as exc:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.rmdir(folder)
        raise SocketFolderError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    return folder, path, listener


# Each call runs in one of three thread pools ("lanes"), or inline on the server's loop when
# it only sets a flag (Shutdown, the health check):
# - control: StopProvider, which must reach work in flight to cancel it while the other
#   lanes are full;
# - long: calls that may wait for seconds (a crawl, IAM retries, a slow data source);
# - quick: the rest (plans, validation, reads: one SQL round trip each). Few threads here:
#   Python runs one at a time anyway, and more threads only add contention
#   (docs/performance.md, "Figures behind the code").
PROVIDER_PREFIX = "/tfplugin6.Provider/"
SHUTDOWN = "/plugin.GRPCController/Shutdown"
STDIO = "/plugin.GRPCStdio/StreamStdio"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
CONTROL_METHODS = frozenset({PROVIDER_PREFIX + "StopProvider"})
LONG_METHODS = frozenset(
    PROVIDER_PREFIX + name
    for name in ("ApplyResourceChange", "ImportResourceState", "ReadDataSource")
)
QUICK_WORKERS, LONG_WORKERS, CONTROL_WORKERS = 3, 16, 2
HEALTH_SERVICES = frozenset({"", "plugin"})  # "" is the server as a whole
SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


class Lanes:
    def __init__(self) -> None:
        from .grpc_server import WorkerPool

        self.long = WorkerPool(LONG_WORKERS, "rpc-long")
        self.quick = WorkerPool(QUICK_WORKERS, "rpc-quick")
        self.control = WorkerPool(CONTROL_WORKERS, "rpc-ctl")

    def pool_for(self, method: str) -> WorkerPool:
        if method in CONTROL_METHODS:
            return self.control
        return self.long if method in LONG_METHODS else self.quick


def health_check(message: bytes) -> bytes:
    """grpc.health.v1.Health/Check; the request's one field is `string service = 1`."""
    from .grpc_server import NOT_FOUND, RpcError

    service = _first_string_field(message)
    if service not in HEALTH_SERVICES:
        raise RpcError(NOT_FOUND, f"unknown service {service!r}")
    return SERVING


def _first_string_field(message: bytes) -> str:
    """Field 1 of a protobuf message whose only field is a string (length-delimited)."""
    if len(message) < 2 or message[0] != 0x0A:
        return ""
    length, shift, pos = 0, 0, 1
    while pos < len(message):
        byte = message[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            break
        shift += 7
    return message[pos : pos + length].decode("utf-8", "replace")


class DeferredProvider:
    """The provider's calls, loaded in the background once the handshake line is out.

    Terraform reads the handshake line, then dials and negotiates TLS; loading the provider
    (protobuf, schemas) meanwhile keeps it off the start-up path. A call arriving first
    waits for the load.
    """

    def __init__(self, load: Callable[[], dict[str, Callable[[bytes], bytes]]]) -> None:
        self._load = load
        self._ready = threading.Event()
        self._calls: dict[str, Callable[[bytes], bytes]] = {}
        self._failure: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, name="load-provider", daemon=True).start()

    def _run(self) -> None:
        try:
            self._calls = self._load()
            quiet_garbage_collector()
        except BaseException as exc:  # reported on every call rather than lost in a thread
            self._failure = exc
        finally:
            self._ready.set()

    def call(self, method: str, message: bytes) -> bytes:
        self._ready.wait()
        call = self._calls.get(method)
        if call is not None:
            return call(message)
        from .grpc_server import INTERNAL, UNIMPLEMENTED, RpcError  # only on the way out

        if self._failure is not None:
            raise RpcError(INTERNAL, f"provider failed to load: {self._failure}")
        raise RpcError(UNIMPLEMENTED, f"unknown method {method}")


# Python's cyclic garbage collector runs a collection every 700 allocations (its first
# threshold) and walks every live object on a full one. Decoding a value of 10,000 map
# entries allocates hundreds of thousands of containers, so collections ran hundreds of
# times per request (docs/performance.md). Moving what start-up made to the permanent
# generation (gc.freeze) and collecting less often keeps that off each request; the values
# of one request hold no cycles, so they are freed by reference counting anyway.
GC_THRESHOLD = 10_000


def quiet_garbage_collector() -> None:
    import gc

    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def provider_calls(service: Any) -> dict[str, Callable[[bytes], bytes]]:
    """Every tfplugin6.Provider method `service` implements, as bytes in, bytes out."""
    from google.protobuf.message_factory import GetMessageClass

    from .gen import tfplugin6_pb2 as pb

    calls = {}
    for method in pb.DESCRIPTOR.services_by_name["Provider"].methods:
        handler = getattr(service, method.name, None)
        if handler is not None:
            calls[PROVIDER_PREFIX + method.name] = _unary(
                handler, GetMessageClass(method.input_type)
            )
    return calls


def _unary(handler: Callable[..., Any], request_type: Any) -> Callable[[bytes], bytes]:
    def call(message: bytes) -> bytes:
        answer: bytes = handler(request_type.FromString(message), None).SerializeToString()
        return answer

    return call


class ShutdownLatch:
    """Set by the Shutdown call or by SIGTERM; the main thread waits for it.

    A pipe rather than a threading.Event: Event.set takes a lock, and a signal handler
    running while the main thread holds that lock inside Event.wait would deadlock.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._set = False

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed (stopped)
            os.write(self._write, b"x")

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> None:
        while not self._set:
            os.read(self._read, 1)

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def _log(level: str, message: str, **fields: Any) -> None:
    from . import logs  # not at import: this module loads before the handshake line, logs after

    logs.log(level, message, **fields)


class PluginServer:
    """The gRPC server with everything go-plugin expects besides the provider."""

    def __init__(self, provider_factory: Callable[[], Provider], client_cert_pem: str) -> None:
        """Plaintext when client_cert_pem is empty; else mutual TLS.

        Only the listening socket is made here: the server itself, with its imports, starts
        after the handshake line, and a client dialling meanwhile waits in the backlog.
        """
        self.certificate = None
        self.expected_client_der = b""
        self._client_cert_pem = client_cert_pem
        if client_cert_pem:
            from .tls import client_certificate_der, generate_certificate

            self.expected_client_der = client_certificate_der(client_cert_pem)
            self.certificate = generate_certificate()
        self.socket_dir, self.socket_path, self.listener = listen_in_private_folder()
        self.shutdown_requested = ShutdownLatch()
        self.lanes: Lanes | None = None  # made in start(), after the handshake line
        self.provider_factory = provider_factory
        self.provider_service: ProviderService | None = None
        self.provider = DeferredProvider(self._load_provider)
        self.server: GrpcServer | None = None
        self._routes: dict[str, Route] = {}

    def _load_provider(self) -> dict[str, Callable[[bytes], bytes]]:
        from .service import ProviderService

        self.provider_service = ProviderService(self.provider_factory())
        return provider_calls(self.provider_service)

    def _shutdown(self, message: bytes) -> bytes:
        self.shutdown_requested.set()
        return b""  # plugin.Empty

    def route(self, method: str) -> Route | None:
        """How `method` is served (called on the server's loop thread)."""
        route = self._routes.get(method)
        if route is None:
            from .grpc_server import Route

            if method.startswith(PROVIDER_PREFIX) and self.lanes is not None:
                call = functools.partial(self.provider.call, method)
                route = Route(call=call, pool=self.lanes.pool_for(method))
            elif method == SHUTDOWN:
                route = Route(call=self._shutdown)
            elif method == HEALTH_CHECK:
                route = Route(call=health_check)
            elif method == STDIO:
                route = Route(hold=True)  # output goes straight to stderr; open until shutdown
            else:
                return None
            self._routes[method] = route
        return route

    @property
    def handshake_line(self) -> str:
        cert = self.certificate.handshake_text if self.certificate else ""
        return f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{self.socket_path}|grpc|{cert}"

    def start(self) -> None:
        from .grpc_server import GrpcServer

        self.lanes = Lanes()
        tls_context_factory = None
        if self.certificate is not None:
            from .tls import server_context

            certificate, client_pem = self.certificate, self._client_cert_pem
            tls_context_factory = lambda: server_context(certificate, client_pem)  # noqa: E731
        self.server = GrpcServer(
            self.listener, self.route, tls_context_factory, self.expected_client_der, log=_log
        )
        self.server.start()
        self.provider.start()

    def stop(self) -> None:
        import shutil

        if self.provider_service is not None:
            self.provider_service.stop_signal.stop()
        if self.server is not None:
            self.server.stop(grace=1)
        else:
            self.listener.close()
        self.shutdown_requested.close()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def serve(provider_factory: Callable[[], Provider]) -> None:
    check_cookie()
    check_protocol_versions()
    # Terraform handles Ctrl-C itself and calls StopProvider; the plugin must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        server = PluginServer(provider_factory, os.environ.get("PLUGIN_CLIENT_CERT", ""))
    except (ValueError, SocketFolderError) as exc:  # a damaged PLUGIN_CLIENT_CERT (never
        # fall back to plaintext) or a socket folder that cannot be: one line, nothing left
        sys.stderr.write(f"terraform-provider-immuta: {exc}\n")
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown_requested.set())
    stdout = sys.stdout
    stdout.write(server.handshake_line + "\n")
    stdout.flush()
    sys.stdout = sys.stderr  # stray prints must not reach go-plugin's handshake reader
    server.start()
    _log("debug", "plugin started", socket=server.socket_path, tls=server.certificate is not None)
    try:
        server.shutdown_requested.wait()
    finally:
        server.stop()
