"""A gRPC server over HTTP/2, just what go-plugin's client (grpc-go) needs.

Why not grpcio: its Python server costs 0.20-0.24 ms of CPU per call even for a handler
that does nothing, its import is half the start-up before the handshake line, and it cannot
verify go-plugin's P-521 client certificate, so mutual TLS needed a relay in front of it
(another 0.16-0.19 ms per call). Here one thread and one selector read every connection,
TLS runs on memory BIOs with Python's ``ssl`` (OpenSSL accepts P-521), and frames are
parsed in place; docs/performance.md has the measurements.

What is served: unary calls, plus streams that are held open and never answered
(GRPCStdio.StreamStdio). Calls run in the pool their route names, or inline on the loop
when they only set a flag. A worker writes its response itself, under the connection's
lock, so a response costs no thread switch back to the loop; the loop is woken only when
the socket would block.

HTTP/2 as RFC 9113 has it, minus what a gRPC server never needs (push, priorities, its
own dynamic HPACK table: see hpack_decoder.py): the client may send up to 2^31-1 bytes per
stream and connection before a WINDOW_UPDATE, and responses respect the client's windows
and frame size.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .hpack_decoder import Decoder, HpackError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, HAS_PRIORITY = 0x4, 0x8, 0x20
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x4, 0x5
DEFAULT_WINDOW, MAX_WINDOW, DEFAULT_MAX_FRAME = 65535, 2**31 - 1, 16384
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_HEADER_BLOCK = 1024 * 1024
GOAWAY_PROTOCOL_ERROR, GOAWAY_FLOW_CONTROL_ERROR, GOAWAY_STREAM_CLOSED = 1, 3, 5
GOAWAY_FRAME_SIZE_ERROR = 6
# grpc-message, percent-encoded: the trailers must fit one HEADERS frame (grpc-go fails the
# whole connection with "http2: frame too large" otherwise) and grpcio's 16 KiB limit.
MAX_STATUS_MESSAGE_BYTES = 8192
STATUS_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"

# gRPC status codes
OK, NOT_FOUND, RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 0, 5, 8, 12, 13, 14


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    header = len(payload).to_bytes(3, "big") + bytes((kind, flags))
    return header + stream_id.to_bytes(4, "big") + payload


def _hpack_string(text: bytes) -> bytes:
    """An HPACK string literal without Huffman coding (7-bit length prefix)."""
    length, prefix = len(text), bytearray()
    if length < 127:
        prefix.append(length)
    else:
        prefix.append(127)
        length -= 127
        while length >= 128:
            prefix.append(length % 128 + 128)
            length //= 128
        prefix.append(length)
    return bytes(prefix) + text


def _literal(name: bytes, value: bytes) -> bytes:
    """A header field "literal without indexing, new name": no table state on either side."""
    return b"\x00" + _hpack_string(name) + _hpack_string(value)


# ":status: 200" is static entry 8; content-type is static name 31 (4-bit prefix: 15 + 16).
RESPONSE_HEADERS = b"\x88" + b"\x0f\x10" + _hpack_string(b"application/grpc")
TRAILERS_OK = _literal(b"grpc-status", b"0")
EMPTY_SETTINGS_ACK = frame(SETTINGS, ACK, 0)


def status_fields(status: int, message: str) -> bytes:
    fields = _literal(b"grpc-status", str(status).encode())
    if message:  # gRPC percent-encodes the message (bytes outside printable ASCII, and '%')
        from urllib.parse import quote  # ~3 ms of import, only when a call fails

        encoded = quote(message, safe=STATUS_SAFE).encode()
        keep = len(message)
        while len(encoded) > MAX_STATUS_MESSAGE_BYTES:
            keep = min(keep - 1, keep * MAX_STATUS_MESSAGE_BYTES // len(encoded) - 16)
            encoded = quote(message[:keep] + " [truncated]", safe=STATUS_SAFE).encode()
        fields += _literal(b"grpc-message", encoded)
    return fields


class RpcError(Exception):
    """Raised by a handler to end its call with a gRPC status other than OK."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Route:
    """How one method is served: `call` maps the request message's bytes to the response's.

    `pool` None runs the call inline on the loop thread (only for calls that return at
    once); `hold` keeps the stream open, unanswered, for the connection's life.
    """

    call: Callable[[bytes], bytes] | None = None
    pool: WorkerPool | None = None
    hold: bool = False


class WorkerPool:
    """Up to `size` threads running submitted calls in order, started as work comes.

    Leaner than concurrent.futures' executor (no Future per call: the call answers its
    client itself), which showed as 13% of the provider's Python time in an apply.
    Daemon threads: a call still running when the process ends is abandoned, after
    GrpcServer.stop's grace period.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, call: Callable[..., object], *args: object) -> None:
        self._queue.put((call, args))
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # that worker takes it
                return
            if self._threads >= self.size:
                return  # queued for the next worker that finishes
            self._threads += 1
            name = f"{self.name}-{self._threads}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            call, args = self._queue.get()
            with contextlib.suppress(BaseException):  # calls report their own failures
                call(*args)
            with self._lock:
                self._idle += 1


class _Stream:
    __slots__ = ("path", "body", "window", "pending", "offset", "dispatched")

    def __init__(self, path: str, window: int) -> None:
        self.path = path
        self.body = bytearray()
        self.window = window
        self.pending: memoryview | None = None  # the framed response message, not yet sent
        self.offset = 0
        self.dispatched = False


class ProtocolError(Exception):
    def __init__(self, message: str, code: int = GOAWAY_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _unpad(payload: bytes) -> bytes:
    """A PADDED frame's payload without its padding (RFC 9113 6.1, 6.2)."""
    if not payload or payload[0] >= len(payload):
        raise ProtocolError("padding as long as the frame")
    return payload[1 : len(payload) - payload[0]]


class _Connection:
    """One client: TLS (or not), HTTP/2 framing, the streams in flight."""

    def __init__(self, server: GrpcServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.lock = threading.Lock()
        self.tls: ssl.SSLObject | None = None
        if server.tls_context is not None:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = server.tls_context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.authenticated = self.tls is None
        self.inbound = bytearray()  # HTTP/2 bytes received, not yet parsed
        self.outbound = bytearray()  # bytes for the socket
        self.preface_seen = False
        self.decoder = Decoder()
        self.indexed_paths: dict[bytes, str] = {}  # see _path_of
        self.streams: dict[int, _Stream] = {}
        self.continuing: tuple[int, bytearray, int] | None = None  # a header block in pieces
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.received_unacknowledged = 0
        self.last_stream_id = 0  # the highest stream the client opened
        self.closed = False
        if self.authenticated:
            self._start_http2()

    # ------------------------------------------------------------------ bytes in and out

    def on_readable(self) -> None:
        buffer = self.server.read_buffer
        size = self.sock.recv_into(buffer)
        if not size:
            raise ConnectionResetError("client closed the connection")
        with self.lock:
            if self.tls is None:
                self.inbound += buffer[:size]
            else:
                self.incoming.write(buffer[:size])
                if not self.authenticated and not self._handshake():
                    return
                self._decrypt()
            self._parse()
            self._send()

    def on_writable(self) -> None:
        with self.lock:
            self._send()

    def _handshake(self) -> bool:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._collect_tls_output()
            self._send()
            return False
        except ssl.SSLError:
            self._collect_tls_output()  # the alert tells the client why
            self._send()
            raise
        if self.tls.getpeercert(binary_form=True) != self.server.expected_client_der:
            raise PermissionError("client certificate is not the one in PLUGIN_CLIENT_CERT")
        self.authenticated = True
        self._start_http2()
        return True

    def _decrypt(self) -> None:
        buffer = self.server.read_buffer
        while True:
            try:
                size = self.tls.read(len(buffer), buffer)
            except ssl.SSLWantReadError:
                break
            if not size:  # close_notify: from now on every read returns 0
                raise ConnectionResetError("client closed the TLS session")
            self.inbound += buffer[:size]
        self._collect_tls_output()  # e.g. session tickets, key updates

    def _collect_tls_output(self) -> None:
        self.outbound += self.outgoing.read()

    def _emit(self, data: bytes) -> None:
        if self.tls is None:
            self.outbound += data
        else:
            self.tls.write(data)
            self._collect_tls_output()

    def _send(self) -> None:
        if self.outbound:
            try:
                sent = self.sock.send(self.outbound)
            except BlockingIOError:
                return
            del self.outbound[:sent]

    def _start_http2(self) -> None:
        settings = SETTINGS_INITIAL_WINDOW_SIZE.to_bytes(2, "big") + MAX_WINDOW.to_bytes(4, "big")
        raise_connection_window = (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")
        self._emit(
            frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, raise_connection_window)
        )

    # ------------------------------------------------------------------ frames

    def _parse(self) -> None:
        data = self.inbound
        if not self.preface_seen:
            if not PREFACE.startswith(data[: len(PREFACE)]):
                raise ProtocolError("not an HTTP/2 client")
            if len(data) < len(PREFACE):
                return
            del data[: len(PREFACE)]
            self.preface_seen = True
        pos, end = 0, len(data)
        while end - pos >= 9:
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length > DEFAULT_MAX_FRAME:
                raise ProtocolError(f"a {length}-byte frame", GOAWAY_FRAME_SIZE_ERROR)
            if end - pos - 9 < length:
                break
            kind, flags = data[pos + 3], data[pos + 4]
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(data[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._on_frame(kind, flags, stream_id, payload)
        del data[:pos]

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is not None and kind != CONTINUATION:
            raise ProtocolError("a header block was interrupted")
        if kind == DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == HEADERS:
            if flags & PADDED:
                payload = _unpad(payload)
            if flags & HAS_PRIORITY:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._on_headers(stream_id, payload, flags & END_STREAM)
            else:
                self.continuing = (stream_id, bytearray(payload), flags & END_STREAM)
        elif kind == CONTINUATION:
            if self.continuing is None or self.continuing[0] != stream_id:
                raise ProtocolError("CONTINUATION without its HEADERS")
            self.continuing[1].extend(payload)
            if len(self.continuing[1]) > MAX_HEADER_BLOCK:
                raise ProtocolError("a header block larger than 1 MiB")
            if flags & END_HEADERS:
                _, block, end_stream = self.continuing
                self.continuing = None
                self._on_headers(stream_id, bytes(block), end_stream)
        elif kind == RST_STREAM:
            self.streams.pop(stream_id, None)  # a worker's late response finds no stream
        elif kind == SETTINGS:
            if not flags & ACK:
                self._on_settings(payload)
        elif kind == PING:
            if len(payload) != 8:
                raise ProtocolError("a PING that is not 8 bytes", GOAWAY_FRAME_SIZE_ERROR)
            if not flags & ACK:
                self._emit(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
        # PRIORITY, GOAWAY (the client closes the socket when done) and unknown kinds: ignored

    def _on_headers(self, stream_id: int, block: bytes, end_stream: int) -> None:
        path = self._path_of(block)  # decoded even when refused: the HPACK table keeps up
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id % 2 == 0 or stream_id <= self.last_stream_id:  # RFC 9113 5.1.1
                raise ProtocolError(f"HEADERS on closed stream {stream_id}", GOAWAY_STREAM_CLOSED)
            self.last_stream_id = stream_id
            stream = self.streams[stream_id] = _Stream(path, self.peer_initial_window)
        elif stream.dispatched:
            return  # trailers on a request already complete: nothing to run again
        if end_stream:
            self._dispatch(stream_id, stream)

    def _path_of(self, block: bytes) -> str:
        """The :path of a header block; every block is decoded so the HPACK table keeps up.

        Except a block made only of one-byte indexed fields, as grpc-go sends once a method
        was called before: it cannot change the table, so while no other block has, the
        same bytes mean the same headers, and the path seen last time is reused.
        """
        path = self.indexed_paths.get(block)
        if path is not None:
            return path
        try:
            fields = self.decoder.decode(block)
        except HpackError as exc:
            raise ProtocolError(f"bad header block: {exc}") from exc
        raw_path = next((value for name, value in fields if name == b":path"), b"")
        path = raw_path.decode("utf-8", "replace")
        if block and all(0x80 < byte < 0xFF for byte in block):
            if len(self.indexed_paths) < 256:
                self.indexed_paths[block] = path
        else:
            self.indexed_paths.clear()  # the table may have changed: indexes mean other fields
        return path

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self.received_unacknowledged += len(payload)
        if self.received_unacknowledged > MAX_WINDOW // 2:
            increment = self.received_unacknowledged.to_bytes(4, "big")
            self._emit(frame(WINDOW_UPDATE, 0, 0, increment))
            self.received_unacknowledged = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.dispatched:
            return
        if flags & PADDED:
            payload = _unpad(payload)
        stream.body += payload
        if len(stream.body) > MAX_MESSAGE_BYTES + 5:
            stream.dispatched = True
            self.finish(stream_id, RESOURCE_EXHAUSTED, "request larger than 256 MiB")
        elif flags & END_STREAM:
            self._dispatch(stream_id, stream)

    def _on_settings(self, payload: bytes) -> None:
        for pos in range(0, len(payload) - 5, 6):
            ident = int.from_bytes(payload[pos : pos + 2], "big")
            value = int.from_bytes(payload[pos + 2 : pos + 6], "big")
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError("initial window over 2^31-1", GOAWAY_FLOW_CONTROL_ERROR)
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self.streams.values():
                    stream.window += delta
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                # 0 would stall every response; 2^24 and more do not fit a frame's length
                if not 0 < value < 2**24:
                    raise ProtocolError(f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.peer_max_frame = value
        self._emit(EMPTY_SETTINGS_ACK)
        self._resume_pending()

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            self.send_window += increment
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.window += increment
        self._resume_pending()

    # ------------------------------------------------------------------ calls

    def _dispatch(self, stream_id: int, stream: _Stream) -> None:
        stream.dispatched = True
        body = stream.body
        if len(body) < 5:
            message = b""
        elif body[0]:
            return self.finish(stream_id, UNIMPLEMENTED, "compressed messages are not accepted")
        else:
            size = int.from_bytes(body[1:5], "big")
            message = bytes(memoryview(body)[5 : 5 + size])  # one copy, not two
        stream.body = bytearray()
        self.server.dispatch(self, stream_id, stream.path, message)

    def finish(self, stream_id: int, status: int, message: str = "", response: bytes = b"") -> None:
        """End a call (lock held): the response message when status is OK, else the status."""
        stream = self.streams.get(stream_id)
        if stream is None or self.closed:  # cancelled by the client meanwhile
            return
        if status != OK:
            del self.streams[stream_id]
            block = RESPONSE_HEADERS + status_fields(status, message)
            self._emit(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block))
            return
        stream.pending = memoryview(b"\x00" + len(response).to_bytes(4, "big") + response)
        frames = [frame(HEADERS, END_HEADERS, stream_id, RESPONSE_HEADERS)]
        self._continue(stream_id, stream, frames)
        self._emit(b"".join(frames))

    def finish_from_worker(
        self, stream_id: int, status: int, message: str, response: bytes
    ) -> None:
        with self.lock:
            if self.closed:
                return
            try:
                self.finish(stream_id, status, message, response)
                self._send()
            except Exception:  # noqa: BLE001 (socket or TLS broken: the loop drops it)
                self.closed = True
            if self.outbound or self.closed:
                self.server.wake(self)

    def _continue(self, stream_id: int, stream: _Stream, frames: list[bytes]) -> None:
        """Frame as much of the stream's response as the windows allow; trailers at the end."""
        pending = stream.pending
        while stream.offset < len(pending):
            size = min(
                len(pending) - stream.offset, stream.window, self.send_window, self.peer_max_frame
            )
            if size <= 0:
                return  # the rest goes when a WINDOW_UPDATE comes
            frames.append(frame(DATA, 0, stream_id, pending[stream.offset : stream.offset + size]))
            stream.offset += size
            stream.window -= size
            self.send_window -= size
        frames.append(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, TRAILERS_OK))
        del self.streams[stream_id]

    def _resume_pending(self) -> None:
        frames: list[bytes] = []
        for stream_id, stream in list(self.streams.items()):
            if stream.pending is not None:
                self._continue(stream_id, stream, frames)
        if frames:
            self._emit(b"".join(frames))

    def has_unsent(self) -> bool:
        """Response bytes not yet on the socket (lock held)."""
        return bool(self.outbound) or any(s.pending is not None for s in self.streams.values())

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.streams.clear()
        self.sock.close()


class GrpcServer:
    """Serves the clients of a listening socket; `router(path)` says how to serve each method.

    With `tls_context`, every client must complete TLS and present exactly the certificate
    whose DER is `expected_client_der`; without, the server speaks HTTP/2 in plaintext.
    `router` is called on the loop thread and must return at once; a pooled route's call
    may block (the provider's calls wait for it to load).
    """

    def __init__(
        self,
        listener: socket.socket,
        router: Callable[[str], Route | None],
        tls_context_factory: Callable[[], ssl.SSLContext] | None = None,
        expected_client_der: bytes = b"",
        log: Callable[..., None] = lambda *args, **kwargs: None,
    ) -> None:
        self.router = router
        self.tls_context: ssl.SSLContext | None = None
        self._tls_context_factory = tls_context_factory
        self.expected_client_der = expected_client_der
        self._log = log
        self.listener = listener
        self.listener.setblocking(False)
        self.read_buffer = memoryview(bytearray(64 * 1024))  # the loop thread's, for every recv
        self._selector = selectors.DefaultSelector()
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full wake pipe already wakes the loop
        self._woken: set[_Connection] = set()
        self._woken_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)

    def start(self) -> None:
        """Serve in the background; a TLS context is built there, off the handshake path."""
        self._thread.start()

    def stop(self, grace: float = 1.0) -> None:
        """Give calls in flight up to `grace` seconds to answer, then close everything."""
        if self._stopping:
            return
        if not self._thread.is_alive():
            self._stopping = True
            self.listener.close()
            return
        deadline = time.monotonic() + grace
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, grace)
        while self._unsent_responses() and time.monotonic() < deadline:
            time.sleep(0.01)  # a response waits for the socket or the client's window
        self._stopping = True
        with contextlib.suppress(OSError):  # full: the loop is awake anyway
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(5)

    def _unsent_responses(self) -> bool:
        for connection in list(self._connections):
            with connection.lock:
                if not connection.closed and connection.has_unsent():
                    return True
        return False

    def wake(self, connection: _Connection) -> None:
        """From a worker: the loop must look at this connection's socket again."""
        with self._woken_lock:
            self._woken.add(connection)
        with contextlib.suppress(OSError):  # full: the loop is awake; closed: it is gone
            self._wake_w.send(b"x")

    # ------------------------------------------------------------------ calls

    def dispatch(self, connection: _Connection, stream_id: int, path: str, message: bytes) -> None:
        """A request is complete (loop thread, connection lock held)."""
        route = self.router(path)
        if route is None:
            return connection.finish(stream_id, UNIMPLEMENTED, f"unknown method {path}")
        if route.hold:
            return None
        if route.pool is None:
            status, text, response = self._call(route.call, message)
            return connection.finish(stream_id, status, text, response)
        with self._idle:
            self._in_flight += 1
        try:
            route.pool.submit(self._call_in_pool, route, connection, stream_id, message)
        except RuntimeError as exc:  # no thread could be started
            with self._idle:
                self._in_flight -= 1
            return connection.finish(stream_id, UNAVAILABLE, f"no worker: {exc}")
        return None

    def _call_in_pool(
        self, route: Route, connection: _Connection, stream_id: int, message: bytes
    ) -> None:
        try:
            status, text, response = self._call(route.call, message)
            connection.finish_from_worker(stream_id, status, text, response)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _call(
        self, call: Callable[[bytes], bytes] | None, message: bytes
    ) -> tuple[int, str, bytes]:
        if call is None:
            return UNIMPLEMENTED, "method not served", b""
        try:
            return OK, "", call(message)
        except RpcError as exc:
            return exc.status, exc.message, b""
        except BaseException as exc:  # noqa: BLE001 (the client gets a status, never a hang)
            self._log("error", "RPC handler failed", error=f"{type(exc).__name__}: {exc}")
            return INTERNAL, f"{type(exc).__name__}: {exc}", b""

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        if self._tls_context_factory is not None:
            try:
                self.tls_context = self._tls_context_factory()
            except Exception as exc:  # noqa: BLE001 (refuse every client, say why once)
                self._log("error", "TLS set-up failed; every connection will be refused", error=exc)
                self.listener.close()
                return
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        while not self._stopping:
            for key, mask in self._selector.select():
                if key.data is None:
                    self._accept()
                elif key.data == "wake":
                    self._on_wake()
                elif not key.data.closed:  # closed earlier this round
                    self._serve(key.data, mask)
        for connection in list(self._connections):
            self._drop(connection)
        self._selector.close()
        self.listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:  # EMFILE, ENOBUFS: the client waits in the backlog
            self._log("error", "accept failed", error=str(exc))
            time.sleep(0.05)  # the listener stays readable: do not spin
            return
        sock.setblocking(False)
        connection = _Connection(self, sock)
        self._connections.add(connection)
        self._selector.register(sock, selectors.EVENT_READ, connection)
        self._serve(connection, 0)  # the server's SETTINGS go out at once in plaintext

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._woken_lock:
            woken, self._woken = self._woken, set()
        for connection in woken:
            if connection in self._connections:
                self._serve(connection, 0)

    def _serve(self, connection: _Connection, mask: int) -> None:
        try:
            if connection.closed:
                raise ConnectionResetError("a worker found the connection broken")
            if mask & selectors.EVENT_READ:
                connection.on_readable()
            connection.on_writable()
        except Exception as exc:  # noqa: BLE001 (a bug costs one connection, never the loop)
            if not isinstance(exc, (OSError, ValueError, ProtocolError)):
                self._log("error", "gRPC connection failed", error=f"{type(exc).__name__}: {exc}")
            elif not connection.authenticated:
                self._log("warn", "refused a plugin client", reason=str(exc))
            elif isinstance(exc, ProtocolError):
                self._goaway(connection, exc)
                self._log("warn", "closed a client that broke HTTP/2", reason=str(exc))
            self._drop(connection)
            return
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.outbound else 0)
        if self._selector.get_key(connection.sock).events != wanted:
            self._selector.modify(connection.sock, wanted, connection)

    @staticmethod
    def _goaway(connection: _Connection, error: ProtocolError) -> None:
        with connection.lock:
            last = connection.last_stream_id.to_bytes(4, "big")
            payload = last + error.code.to_bytes(4, "big")
            try:
                connection._emit(frame(GOAWAY, 0, 0, payload))
                connection._send()
            except (OSError, ValueError):
                pass

    def _drop(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.close()
