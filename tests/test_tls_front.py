"""The TLS front's relay loop with real sockets and real TLS: large payloads, many clients.

Behind the front here is a plain echo server instead of gRPC, so what comes back must be
exactly what went in. Megabytes at once make the loop meet partial sends, many TLS records
per read and a full socket buffer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import pytest
from harness.plugin import ClientCertificate, make_client_certificate

from tfprovider_immuta_pg.protocol.tls import ServerCertificate, generate_certificate
from tfprovider_immuta_pg.protocol.tls_front import TlsFront


class EchoServer:
    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def front(tmp_path: Path) -> Iterator[tuple[Path, ServerCertificate, ClientCertificate]]:
    certificate, client = generate_certificate(), make_client_certificate("secp521r1")
    echo = EchoServer(tmp_path / "inner.sock")
    tls_front = TlsFront(
        str(tmp_path / "front.sock"), str(tmp_path / "inner.sock"), certificate, client.cert_pem
    )
    tls_front.start()
    try:
        yield tmp_path / "front.sock", certificate, client
    finally:
        tls_front.stop()
        echo.close()


def round_trip(address: Path, certificate: ServerCertificate, client: ClientCertificate, size: int):
    """Send `size` random bytes through the front; the SHA-256 sent and received."""
    pem = address.parent / f"client-{threading.get_ident()}.pem"
    pem.write_text(client.cert_pem + client.key_pem)
    context = ssl.create_default_context(cadata=certificate.cert_pem.decode())
    context.load_cert_chain(pem)
    payload = memoryview(os.urandom(size))
    received = hashlib.sha256()
    with socket.socket(socket.AF_UNIX) as raw:
        raw.settimeout(30)
        raw.connect(str(address))
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            # One thread, non-blocking: an SSLSocket must not be used by two threads at once.
            tls.setblocking(False)
            sent = got = 0
            while got < size:
                if sent < size:
                    with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        sent += tls.send(payload[sent : sent + (1 << 16)])
                try:
                    chunk = tls.recv(1 << 16)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    select.select([tls], [tls] if sent < size else [], [], 5)
                    continue
                assert chunk, f"connection closed after {got} of {size} bytes"
                received.update(chunk)
                got += len(chunk)
    return hashlib.sha256(payload).hexdigest(), received.hexdigest()


def test_megabytes_come_back_intact(front) -> None:
    sent, received = round_trip(*front, size=8 * 1024 * 1024)
    assert received == sent


def test_concurrent_clients_each_get_their_own_bytes(front) -> None:
    with futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: round_trip(*front, size=300_000 + n), range(8)))
    assert all(sent == received for sent, received in results)
