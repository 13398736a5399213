"""Mutual TLS in front of the gRPC server, terminated by Python's ``ssl`` module.

go-plugin's AutoMTLS hands the plugin the client's certificate in ``PLUGIN_CLIENT_CERT``
(an ECDSA P-521 key). grpcio's TLS stack refuses that key when it is asked to verify
clients, OpenSSL does not. So the gRPC server listens in plaintext on a socket inside the
plugin's private folder, and this front listens on the socket Terraform dials: it completes
the TLS handshake, lets in only a client that presents exactly the announced certificate,
and relays the decrypted HTTP/2 bytes both ways. HTTP/2 flow control bounds what sits in
the relay's buffers.

One thread and one selector serve every connection; TLS runs on memory BIOs, so no
socket is ever touched by two threads and no write blocks the loop.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import ssl  # already loaded: grpc imports asyncio, which imports ssl
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tls import ServerCertificate

# One buffer for every read of the loop thread: recv and SSLObject.read fill it instead of
# allocating a new bytes object per call.
_buffer = memoryview(bytearray(64 * 1024))
PEM_BEGIN, PEM_END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


def _log(level: str, message: str, **fields: Any) -> None:
    from . import logs  # not at import: this module loads before the handshake line, logs after

    logs.log(level, message, **fields)


def client_certificate_der(pem: str) -> bytes:
    """The DER of the one certificate in PLUGIN_CLIENT_CERT; ValueError when it is not one."""
    start, end = pem.find(PEM_BEGIN), pem.find(PEM_END)
    if start < 0 or end < start:
        raise ValueError("PLUGIN_CLIENT_CERT holds no PEM certificate")
    body = "".join(pem[start + len(PEM_BEGIN) : end].split())
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ValueError("PLUGIN_CLIENT_CERT holds a damaged PEM certificate") from exc
    if not der.startswith(b"\x30"):
        raise ValueError("PLUGIN_CLIENT_CERT holds a damaged PEM certificate")
    return der


def _server_context(certificate: ServerCertificate, client_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_pem)
    context.set_alpn_protocols(["h2"])  # grpc-go refuses a TLS server without ALPN h2
    # load_cert_chain reads only files: an anonymous memory file keeps the key off disk.
    fd = os.memfd_create("plugin-key", os.MFD_CLOEXEC)
    try:
        os.write(fd, certificate.cert_pem + certificate.key_pem)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return context


class _Link:
    """One client connection: TLS towards the client, plaintext towards the gRPC server."""

    def __init__(self, client: socket.socket, inner: socket.socket, context: ssl.SSLContext):
        self.client, self.inner = client, inner
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.to_client = bytearray()
        self.to_inner = bytearray()
        self.early = bytearray()  # what the server says before the client is authenticated
        self.authenticated = False
        self.closed = False

    def from_client(self, expected_der: bytes) -> None:
        size = self.client.recv_into(_buffer)
        if not size:
            raise ConnectionResetError("client closed the connection")
        self.incoming.write(_buffer[:size])
        if not self.authenticated:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                return self._collect_tls_output()
            except ssl.SSLError:
                self._collect_tls_output()  # the alert tells the client why
                self.flush()
                raise
            if self.tls.getpeercert(binary_form=True) != expected_der:
                raise PermissionError("client certificate is not the one in PLUGIN_CLIENT_CERT")
            self.authenticated = True
            if self.early:
                self.tls.write(self.early)
                self.early.clear()
        while True:
            try:
                size = self.tls.read(len(_buffer), _buffer)
            except ssl.SSLWantReadError:
                break
            if not size:  # close_notify: from now on every read returns 0
                raise ConnectionResetError("client closed the TLS session")
            self.to_inner += _buffer[:size]
        self._collect_tls_output()

    def from_inner(self) -> None:
        size = self.inner.recv_into(_buffer)
        if not size:
            raise ConnectionResetError("gRPC server closed the connection")
        if self.authenticated:
            self.tls.write(_buffer[:size])
            self._collect_tls_output()
        else:
            self.early += _buffer[:size]

    def _collect_tls_output(self) -> None:
        self.to_client += self.outgoing.read()

    def flush(self) -> None:
        for sock, pending in ((self.client, self.to_client), (self.inner, self.to_inner)):
            if pending:
                try:
                    sent = sock.send(pending)
                except BlockingIOError:
                    continue
                del pending[:sent]

    def interest(self, sock: socket.socket) -> int:
        pending = self.to_client if sock is self.client else self.to_inner
        return selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)

    def close(self) -> None:
        self.closed = True
        self.client.close()
        self.inner.close()


class TlsFront:
    """Listens where Terraform dials; relays authenticated connections to `inner_path`."""

    def __init__(
        self, listen_path: str, inner_path: str, certificate: ServerCertificate, client_pem: str
    ) -> None:
        self.expected_der = client_certificate_der(client_pem)
        self.inner_path = inner_path
        self._certificate, self._client_pem = certificate, client_pem
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(listen_path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()

    def start(self) -> None:
        """Serve in the background; the TLS context is built there, off the handshake path."""
        threading.Thread(target=self._run, name="tls-front", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            self._context = _server_context(self._certificate, self._client_pem)
        except Exception as exc:  # noqa: BLE001 (refuse every client, say why once)
            _log("error", "TLS set-up failed; every connection will be refused", error=exc)
            self.listener.close()
            return
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        while not self._stopping:
            for key, mask in self._selector.select():
                if key.data is None:
                    self._accept()
                elif key.data != "wake" and not key.data.closed:  # closed earlier this round
                    self._serve(key.fileobj, key.data, mask)
        self._selector.close()
        self.listener.close()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        inner = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            inner.connect(self.inner_path)
        except OSError as exc:
            _log("error", "gRPC server unreachable behind the TLS front", error=exc)
            client.close()
            inner.close()
            return
        client.setblocking(False)
        inner.setblocking(False)
        link = _Link(client, inner, self._context)
        self._selector.register(client, selectors.EVENT_READ, link)
        self._selector.register(inner, selectors.EVENT_READ, link)

    def _serve(self, sock: socket.socket, link: _Link, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                if sock is link.client:
                    link.from_client(self.expected_der)
                else:
                    link.from_inner()
            link.flush()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            if not link.authenticated:
                _log("warn", "refused a plugin client", reason=str(exc))
            self._selector.unregister(link.client)
            self._selector.unregister(link.inner)
            link.close()
            return
        for side in (link.client, link.inner):
            wanted = link.interest(side)
            if self._selector.get_key(side).events != wanted:  # spare an epoll_ctl per event
                self._selector.modify(side, wanted, link)
