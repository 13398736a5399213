"""The project's gRPC server in-process on a fresh unix socket, with the routes its tests
use (the fixtures that start it are in grpc_fixtures.py)."""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc

from tfprovider_immuta_pg.protocol.grpc_server import GrpcServer, Route, RpcError
from tfprovider_immuta_pg.protocol.tls import (
    ServerCertificate,
    client_certificate_der,
    server_context,
)

from .plugin import ClientCertificate
from .raw_http2 import RawClient

ECHO, INLINE_ECHO, HOLD, BLOCK = "/t.T/Echo", "/t.T/InlineEcho", "/t.T/Hold", "/t.T/Block"
SLOW_ECHO, NOT_FOUND, BOOM, MESSAGE = "/t.T/SlowEcho", "/t.T/NotFound", "/t.T/Boom", "/t.T/Msg"
ODD_MESSAGE = "100% naïve ✓ tab\there, new\nline, percent %41 and 😀"
NO_BDP = ("grpc.http2.bdp_probe", 0)  # keep grpcio's windows at 64 KiB: real flow control
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class Handlers:
    """The routes the tests use; `route` is the server's router."""

    def __init__(self) -> None:
        self.pool = futures.ThreadPoolExecutor(max_workers=12, thread_name_prefix="handler")
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.routed: list[str] = []
        self.hold_routed = threading.Event()

    def route(self, path: str) -> Route | None:
        self.routed.append(path)
        if path == HOLD:
            self.hold_routed.set()
        return {
            ECHO: Route(call=lambda message: message, pool=self.pool),
            INLINE_ECHO: Route(call=lambda message: message),
            HOLD: Route(hold=True),
            BLOCK: Route(call=self._block, pool=self.pool),
            SLOW_ECHO: Route(call=self._slow_echo, pool=self.pool),
            NOT_FOUND: Route(call=_not_found, pool=self.pool),
            BOOM: Route(call=_boom, pool=self.pool),
            MESSAGE: Route(call=_odd_message),
        }.get(path)

    def _block(self, message: bytes) -> bytes:
        self.started.set()
        self.release.wait(10)
        self.finished.set()
        return b"late " + message

    def _slow_echo(self, message: bytes) -> bytes:
        self.started.set()
        time.sleep(0.2)
        self.finished.set()
        return message

    def close(self) -> None:
        self.release.set()
        self.pool.shutdown(wait=False, cancel_futures=True)


def _not_found(message: bytes) -> bytes:
    raise RpcError(5, "nope")


def _boom(message: bytes) -> bytes:
    raise ValueError("boom")


def _odd_message(message: bytes) -> bytes:
    raise RpcError(9, ODD_MESSAGE)


@dataclass
class Served:
    server: GrpcServer
    path: str
    handlers: Handlers
    logs: list[tuple[tuple, dict]] = field(default_factory=list)

    def channel(self, *options: tuple[str, object]) -> grpc.Channel:
        """A plaintext grpcio channel with its own connection."""
        opts = [("grpc.use_local_subchannel_pool", 1), *UNLIMITED, *options]
        return grpc.insecure_channel(f"unix:{self.path}", options=opts)

    def log_messages(self) -> list[str]:
        return [args[1] for args, _ in self.logs if len(args) > 1]

    def wait_for_log(self, message: str, timeout: float = 5) -> bool:
        """The server logs after it closed the socket, so the client may learn first."""
        deadline = time.monotonic() + timeout
        while message not in self.log_messages():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def unary(channel: grpc.Channel, path: str) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(path, request_serializer=None, response_deserializer=None)


def assert_a_new_client_is_served(served: Served) -> None:
    client = RawClient(served.path)
    try:
        client.start()
        client.request(1, ECHO, b"still here")
        assert client.response(1).message == b"still here"
    finally:
        client.close()


def start_tls_server(
    start_server: Callable[..., Served], certificate: ServerCertificate, client: ClientCertificate
) -> tuple[Served, ssl.SSLContext]:
    """A server with the plugin's TLS policy announcing `client`, and an OpenSSL client
    context presenting it (any curve, P-521 too, which grpcio cannot present)."""
    served = start_server(
        tls_context_factory=lambda: server_context(certificate, client.cert_pem),
        expected_client_der=client_certificate_der(client.cert_pem),
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=certificate.cert_pem.decode())
    context.set_alpn_protocols(["h2"])
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:  # load_cert_chain reads files
        pem.write(client.cert_pem + client.key_pem)
        pem.flush()
        context.load_cert_chain(pem.name)
    return served, context
