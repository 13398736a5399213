"""A gRPC server over HTTP/2: what go-plugin's client (grpc-go) needs, and a boundary that
holds against any other peer.

Why not grpcio: its Python server costs more CPU per call, its import lengthens start-up,
and it cannot verify go-plugin's P-521 client certificate (docs/performance.md, *The
transport's own numbers*). Here one thread and one selector read every connection, TLS runs
on memory BIOs with Python's ``ssl`` (OpenSSL accepts P-521), and frames are parsed in place.

What is served: unary calls, plus streams that are held open and never answered
(GRPCStdio.StreamStdio). Calls run in the pool their route names, or inline on the loop
when they only set a flag. A worker writes its response itself, under the connection's
lock, so a response costs no thread switch back to the loop; the loop is woken only when
the socket would block.

HTTP/2 as RFC 9113 has it, minus what a gRPC server never needs (push, priorities, its own
dynamic HPACK table: see hpack_decoder.py). Every frame and stream-state rule a server meets
is enforced, as a connection error (GOAWAY) or a stream error (RST_STREAM) where the RFC
puts it. The limits below bound what one client can make the process hold or do;
docs/reliability.md (*Transport*) names the attack each one stops and the test showing it.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from .hpack_decoder import Decoder, HeaderListTooLarge, HpackError

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, HAS_PRIORITY = 0x4, 0x8, 0x20
# SETTINGS parameters (RFC 9113 6.5.2; RFC 8441 3)
ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x2, 0x3, 0x4, 0x5
MAX_HEADER_LIST_SIZE, ENABLE_CONNECT_PROTOCOL = 0x6, 0x8
# Error codes (RFC 9113 7)
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x0, 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, REFUSED_STREAM, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x6, 0x7, 0x9, 0xB
DEFAULT_WINDOW, MAX_WINDOW, DEFAULT_MAX_FRAME, LARGEST_FRAME = 65535, 2**31 - 1, 16384, 2**24 - 1

# Limits: what one client can make the server hold or do.
MAX_STREAMS = 100  # open streams per connection (announced); one more is refused
MAX_CALLS = 2 * MAX_STREAMS  # calls queued or running per connection, reset ones included
STREAM_WINDOW = DEFAULT_WINDOW  # request bytes a stream may send before they are consumed
CONNECTION_WINDOW = 16 * 1024 * 1024
REQUEST_BUDGET = 32 * 1024 * 1024  # request bytes a connection holds: bodies and calls
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # one request; alone on its connection it may pass
MAX_HEADER_BLOCK = 32 * 1024  # a header block, encoded and decoded (announced)
MAX_CONTINUATIONS = 32  # CONTINUATION frames in one header block
OUTBOUND_HIGH = 4 * 1024 * 1024  # unsent bytes past which a connection is not read
LARGEST_DATA_SENT = 64 * 1024  # whatever the client allows: OUTBOUND_HIGH is passed by little
CLOSED_STREAMS_KEPT = 1024  # how closed streams ended, for the frames that trail them
# grpc-message, percent-encoded: the trailers must fit one HEADERS frame (grpc-go fails the
# whole connection with "http2: frame too large" otherwise) and grpcio's 16 KiB limit.
MAX_STATUS_MESSAGE_BYTES = 8192
STATUS_SAFE = " !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"

# gRPC status codes
OK, DEADLINE_EXCEEDED, NOT_FOUND, RESOURCE_EXHAUSTED = 0, 4, 5, 8
UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 12, 13, 14

FRAME_NAMES = (
    "DATA",
    "HEADERS",
    "PRIORITY",
    "RST_STREAM",
    "SETTINGS",
    "PUSH_PROMISE",
    "PING",
    "GOAWAY",
    "WINDOW_UPDATE",
    "CONTINUATION",
)


def frame(kind: int, flags: int, stream_id: int, payload: bytes | memoryview = b"") -> bytes:
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


def _settings(*pairs: tuple[int, int]) -> bytes:
    return b"".join(ident.to_bytes(2, "big") + value.to_bytes(4, "big") for ident, value in pairs)


# ":status: 200" is static entry 8; content-type is static name 31 (4-bit prefix: 15 + 16).
CONTENT_TYPE = b"\x0f\x10" + _hpack_string(b"application/grpc")
RESPONSE_HEADERS = b"\x88" + CONTENT_TYPE
TRAILERS_OK = _literal(b"grpc-status", b"0")
EMPTY_SETTINGS_ACK = frame(SETTINGS, ACK, 0)
SERVER_PREFACE = frame(
    SETTINGS,
    0,
    0,
    _settings(
        (MAX_CONCURRENT_STREAMS, MAX_STREAMS),
        (INITIAL_WINDOW_SIZE, STREAM_WINDOW),
        (MAX_HEADER_LIST_SIZE, MAX_HEADER_BLOCK),
    ),
) + frame(WINDOW_UPDATE, 0, 0, (CONNECTION_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big"))


def status_fields(status: int, message: str) -> bytes:
    fields = _literal(b"grpc-status", str(status).encode())
    if message:  # gRPC percent-encodes the message (bytes outside printable ASCII, and '%')
        from urllib.parse import quote  # only when a call fails: see docs/performance.md

        encoded = quote(message, safe=STATUS_SAFE).encode()
        keep = len(message)
        while len(encoded) > MAX_STATUS_MESSAGE_BYTES:
            keep = min(keep - 1, keep * MAX_STATUS_MESSAGE_BYTES // len(encoded) - 16)
            encoded = quote(message[:keep] + " [truncated]", safe=STATUS_SAFE).encode()
        fields += _literal(b"grpc-message", encoded)
    return fields


def _status_headers(http_status: int) -> bytes:
    """:status (static name 8, literal value) and content-type, for a refused request."""
    if http_status == 200:
        return RESPONSE_HEADERS
    return b"\x08" + _hpack_string(str(http_status).encode()) + CONTENT_TYPE


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

    Leaner than concurrent.futures' executor: no Future per call, since the call answers
    its client itself (docs/performance.md). Daemon threads: a call still running when the
    process ends is abandoned, after GrpcServer.stop's grace period.
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


class ProtocolError(Exception):
    """A connection error (RFC 9113 5.4.1): the connection gets GOAWAY with `code`."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- request headers

# Field names: visible ASCII but uppercase and ':' (RFC 9113 8.2.1); pseudo-headers apart.
_NAME_CHARACTERS = bytes(c for c in range(0x21, 0x7F) if not 0x41 <= c <= 0x5A and c != 0x3A)
_CONNECTION_FIELDS = frozenset(
    (b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))
_TIMEOUT_UNITS = {
    ord("H"): 3600.0,
    ord("M"): 60.0,
    ord("S"): 1.0,
    ord("m"): 1e-3,
    ord("u"): 1e-6,
    ord("n"): 1e-9,
}


class _Head:
    """What the server reads from a request's header block (or a trailer block's)."""

    __slots__ = ("path", "timeout", "content_length", "bad_field", "malformed", "refusal", "pseudo")

    def __init__(self) -> None:
        self.path = ""
        self.timeout: float | None = None  # grpc-timeout, in seconds
        self.content_length = -1
        self.bad_field = ""  # a field RFC 9113 8.2 forbids anywhere
        self.malformed = ""  # why a request breaks RFC 9113 8.2-8.3: a stream error
        self.refusal: tuple[int, str] | None = None  # a valid request gRPC refuses: (HTTP, why)
        self.pseudo = False  # any pseudo-header: never in trailers


_SPECIAL_FIELDS = frozenset((b"te", b"content-type", b"grpc-timeout", b"content-length", b"host"))


def _read_head(fields: list[tuple[bytes, bytes]], plain: set[tuple[bytes, bytes]]) -> _Head:
    """`plain`: regular fields found valid before that mean nothing to the server (such as
    user-agent); grpc-go sends the same few on every call, so they are checked once."""
    head, pseudo, regular, host = _Head(), {}, False, None
    problem = refusal = ""
    content_type = b""
    for field in fields:
        if field in plain:
            regular = True
            continue
        name, value = field
        if value and (
            b"\0" in value
            or b"\n" in value
            or b"\r" in value
            or value[0] in (0x20, 0x09)
            or value[-1] in (0x20, 0x09)
        ):
            problem = problem or f"field {name!r} has a value with NUL, CR, LF or edge spaces"
        if name[:1] == b":":
            if regular:
                problem = problem or f"pseudo-header {name!r} after a regular field"
            elif name not in _REQUEST_PSEUDO:
                problem = problem or f"pseudo-header {name!r} is not one of a request's"
            elif name in pseudo:
                problem = problem or f"pseudo-header {name!r} twice"
            pseudo[name] = value
            continue
        regular = True
        if not name or name.translate(None, _NAME_CHARACTERS):
            problem = problem or f"field name {name!r} is empty or has forbidden characters"
        elif name not in _SPECIAL_FIELDS and name not in _CONNECTION_FIELDS:
            if not problem and len(plain) < 64:
                plain.add(field)
        elif name in _CONNECTION_FIELDS:
            problem = problem or f"connection-specific field {name!r}"
        elif name == b"te":
            if value.lower() != b"trailers":
                problem = problem or "te other than trailers"
        elif name == b"content-type":
            content_type = value
        elif name == b"grpc-timeout":
            unit = _TIMEOUT_UNITS.get(value[-1]) if value else None
            if unit is None or not 1 < len(value) <= 9 or not value[:-1].isdigit():
                refusal = f"malformed grpc-timeout {value[:20]!r}"
            else:
                head.timeout = int(value[:-1]) * unit
        elif name == b"content-length":
            if not value.isdigit():
                problem = problem or f"content-length {value[:20]!r}"
            else:
                head.content_length = int(value)
        elif name == b"host":
            if host is not None:
                problem = problem or "two host fields"
            host = value
    head.pseudo, head.bad_field = bool(pseudo), problem
    method, authority = pseudo.get(b":method"), pseudo.get(b":authority")
    if method == b"CONNECT":  # RFC 9113 8.5: an authority, no scheme or path
        if authority is None or b":scheme" in pseudo or b":path" in pseudo:
            problem = problem or "a CONNECT request with :scheme or :path, or no :authority"
    elif method is None or b":scheme" not in pseudo or not pseudo.get(b":path"):
        problem = problem or "a request without :method, :scheme or a non-empty :path"
    if authority is None and host is None:
        problem = problem or "a request without :authority or host"
    elif authority is not None and host is not None and authority != host:
        problem = problem or "host differs from :authority"
    head.malformed = problem
    head.path = pseudo.get(b":path", b"").decode("utf-8", "replace")
    if method != b"POST":
        head.refusal = (405, f"method {(method or b'').decode('ascii', 'replace')} is not POST")
    elif not (
        content_type.startswith(b"application/grpc") and content_type[16:17] in (b"", b"+", b";")
    ):
        head.refusal = (415, f"content-type {content_type[:40]!r} is not application/grpc")
    elif refusal:
        head.refusal = (400, refusal)
    return head


# ---------------------------------------------------------------------- streams

# How a closed stream ended, for the frames that may still come on it (RFC 9113 5.1):
# both sides sent END_STREAM; the server reset it while the client was still sending (what
# the client sent before it saw the reset is ignored); or it was reset otherwise.
_ENDED, _IGNORING, _RESET = 1, 2, 3
_NO_BODY = b""  # a stream's body once dispatched or closed (DATA never reaches it then)


class _Stream:
    """A request the server has not finished answering (RFC 9113: open or half-closed)."""

    __slots__ = (
        "head",
        "body",
        "message_end",
        "reserved",
        "receive_window",
        "consumed",
        "received",
        "client_done",
        "send_delta",
        "headers_sent",
        "pending",
        "offset",
    )

    def __init__(self, head: _Head) -> None:
        self.head = head
        self.body: bytearray | bytes = bytearray()
        self.message_end = -1  # 5 + the message length, once the gRPC prefix is in
        self.reserved = 0  # bytes of the connection's request budget held for this request
        self.receive_window = STREAM_WINDOW  # what the client may still send
        self.consumed = 0  # bytes consumed, not yet given back by a WINDOW_UPDATE
        self.received = 0  # DATA bytes, padding aside (against content-length)
        self.client_done = False  # END_STREAM received: half-closed (remote)
        self.send_delta = 0  # the client's window for this stream minus its initial window
        self.headers_sent = False
        self.pending: memoryview | None = None  # the framed response message, not yet sent
        self.offset = 0


def _unpad(payload: bytes) -> bytes:
    """A PADDED frame's payload without its padding (RFC 9113 6.1, 6.2)."""
    if not payload or payload[0] >= len(payload):
        raise ProtocolError("padding as long as the frame")
    return payload[1 : len(payload) - payload[0]]


class _HeaderBlock:
    __slots__ = ("stream_id", "data", "end_stream", "dependency", "frames")

    def __init__(self, stream_id: int, data: bytes, end_stream: int, dependency: int) -> None:
        self.stream_id, self.data = stream_id, bytearray(data)
        self.end_stream, self.dependency, self.frames = end_stream, dependency, 0


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
        self.frames_out: list[bytes] = []  # HTTP/2 frames made, not yet encrypted
        self.frames_out_size = 0
        self.outbound = bytearray()  # bytes for the socket
        self.preface_seen = self.settings_seen = False
        self.decoder = Decoder(MAX_HEADER_BLOCK)
        self.heads: dict[bytes, _Head] = {}  # see _head_of
        self.plain_fields: set[tuple[bytes, bytes]] = set()  # see _read_head
        self.streams: dict[int, _Stream] = {}  # open and half-closed streams
        self.waiting: dict[int, _Stream] = {}  # responses held by flow control or OUTBOUND_HIGH
        self.outbound_full = False  # a response waits for OUTBOUND_HIGH, not for a window
        self.parked: dict[int, _Stream] = {}  # requests waiting for the budget
        self.ready: list[tuple[int, _Stream]] = []  # requests complete in this read
        self.timed: list[tuple[float, int, _Stream]] = []  # grpc-timeouts met in this read
        self.closed_streams: dict[int, int] = {}  # stream id: how it ended (recent ones)
        self.continuing: _HeaderBlock | None = None  # a header block in pieces
        self.budget_used = 0  # request bytes reserved (REQUEST_BUDGET)
        self.calls = 0  # calls queued or running (MAX_CALLS)
        self.receive_window = CONNECTION_WINDOW
        self.received_unacknowledged = 0
        self.send_window = DEFAULT_WINDOW
        self.peer_initial_window = DEFAULT_WINDOW
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.last_stream_id = 0  # the highest stream the client opened
        self.going_away = False  # GOAWAY sent: new streams are ignored (RFC 9113 6.8)
        self.client_went_away = False  # GOAWAY received: a new stream is an error (6.8)
        self.closed = False
        if self.authenticated:
            self._emit(SERVER_PREFACE)

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
            self._dispatch_ready()
            if self.timed:
                self._time_calls()
            self._send()

    def _time_calls(self) -> None:
        """Deadlines for the calls of this read still open: one answered at once (on the loop)
        costs the timer nothing."""
        for deadline, stream_id, stream in self.timed:
            if self.streams.get(stream_id) is stream:
                self.server.add_deadline(deadline, self, stream_id, stream)
        self.timed.clear()

    def on_writable(self) -> None:
        """Send what waits; let in parked requests and held responses when there is room."""
        with self.lock:
            if self.parked and self.budget_used < REQUEST_BUDGET:
                self._admit_parked()
                self._dispatch_ready()
            self._send()
            if self.outbound_full and self._unsent() < OUTBOUND_HIGH:
                self.outbound_full = False
                self._resume_waiting()
                self._send()

    def needs_writing(self) -> bool:
        """Bytes to send, or requests and responses that wait for room (read without the
        lock: a worker that leaves work behind wakes the loop anyway)."""
        return bool(self.outbound or self.parked or self.outbound_full)

    def _handshake(self) -> bool:
        tls = self.tls
        assert tls is not None  # a TLS connection
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            self._collect_tls_output()
            self._send()
            return False
        except ssl.SSLError:
            self._collect_tls_output()  # the alert tells the client why
            self._send()
            raise
        if tls.getpeercert(binary_form=True) != self.server.expected_client_der:
            raise PermissionError("client certificate is not the one in PLUGIN_CLIENT_CERT")
        self.authenticated = True
        self._emit(SERVER_PREFACE)
        return True

    def _decrypt(self) -> None:
        buffer, tls = self.server.read_buffer, self.tls
        assert tls is not None  # a TLS connection
        while True:
            try:
                size = cast(int, tls.read(len(buffer), buffer))  # with a buffer: a count
            except ssl.SSLWantReadError:
                break
            if not size:  # close_notify: from now on every read returns 0
                raise ConnectionResetError("client closed the TLS session")
            self.inbound += buffer[:size]
        self._collect_tls_output()  # e.g. key updates

    def _collect_tls_output(self) -> None:
        self.outbound += self.outgoing.read()

    def _emit(self, data: bytes) -> None:
        self.frames_out.append(data)
        self.frames_out_size += len(data)

    def _unsent(self) -> int:
        return len(self.outbound) + self.frames_out_size

    def _send(self) -> None:
        if self.frames_out:
            data = b"".join(self.frames_out) if len(self.frames_out) > 1 else self.frames_out[0]
            self.frames_out.clear()
            self.frames_out_size = 0
            if self.tls is None:
                self.outbound += data
            else:
                self.tls.write(data)
                self._collect_tls_output()
        if self.outbound:
            try:
                sent = self.sock.send(self.outbound)
            except BlockingIOError:
                return
            del self.outbound[:sent]

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
                raise ProtocolError(f"a {length}-byte frame", FRAME_SIZE_ERROR)
            if end - pos - 9 < length:
                break
            kind, flags = data[pos + 3], data[pos + 4]
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(data[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._on_frame(kind, flags, stream_id, payload)
        del data[:pos]

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is not None:
            if kind != CONTINUATION or stream_id != self.continuing.stream_id:
                raise ProtocolError("a header block was interrupted")
        elif not self.settings_seen:  # RFC 9113 3.4: the client preface ends with SETTINGS
            if kind != SETTINGS or flags & ACK:
                raise ProtocolError("the client preface has no SETTINGS frame")
            self.settings_seen = True
        if kind > CONTINUATION:
            return  # unknown frame types are ignored (RFC 9113 4.1)
        handler, on_stream_0 = _FRAME_HANDLERS[kind]
        if (stream_id == 0) is not on_stream_0 and on_stream_0 is not None:
            where = "stream 0" if stream_id == 0 else f"stream {stream_id}"
            raise ProtocolError(f"{FRAME_NAMES[kind]} on {where}")
        handler(self, flags, stream_id, payload)

    def _is_idle(self, stream_id: int) -> bool:
        """Never opened and not implicitly closed; even ids are the server's (never used)."""
        return stream_id % 2 == 0 or stream_id > self.last_stream_id

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        size = len(payload)  # padding counts against the windows (RFC 9113 6.9.1)
        if size > self.receive_window:
            raise ProtocolError("DATA beyond the connection's window", FLOW_CONTROL_ERROR)
        self.receive_window -= size
        self.received_unacknowledged += size  # given back at once: streams bound memory
        if self.received_unacknowledged >= CONNECTION_WINDOW // 2:
            increment, self.received_unacknowledged = self.received_unacknowledged, 0
            self.receive_window += increment
            self._emit(frame(WINDOW_UPDATE, 0, 0, increment.to_bytes(4, "big")))
        if flags & PADDED:
            payload = _unpad(payload)
        stream = self.streams.get(stream_id)
        if stream is None:
            return self._on_closed_stream(DATA, stream_id)
        if stream.client_done:  # half-closed (remote): RFC 9113 5.1
            return self._reset(stream_id, stream, STREAM_CLOSED)
        if size > stream.receive_window:
            return self._reset(stream_id, stream, FLOW_CONTROL_ERROR)
        stream.receive_window -= size
        stream.consumed += size - len(payload)  # padding is consumed on arrival
        stream.received += len(payload)
        stream.client_done = bool(flags & END_STREAM)
        limit = stream.head.content_length
        if 0 <= limit < stream.received:
            return self._reset(stream_id, stream, PROTOCOL_ERROR)
        if payload and not self._take(stream_id, stream, payload):
            return None  # answered early
        if stream.client_done:
            self._end_of_request(stream_id, stream)
        elif stream.consumed >= STREAM_WINDOW // 2:
            self._give_back(stream_id, stream)
        return None

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if flags & PADDED:
            payload = _unpad(payload)
        dependency = 0
        if flags & HAS_PRIORITY:
            if len(payload) < 5:
                raise ProtocolError("HEADERS too short for its priority", FRAME_SIZE_ERROR)
            dependency = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            payload = payload[5:]
        if flags & END_HEADERS:
            self._on_header_block(stream_id, payload, flags & END_STREAM, dependency)
        else:
            self.continuing = _HeaderBlock(stream_id, payload, flags & END_STREAM, dependency)

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        block = self.continuing
        if block is None:
            raise ProtocolError("CONTINUATION without its HEADERS")
        block.frames += 1
        block.data += payload
        if block.frames > MAX_CONTINUATIONS or len(block.data) > MAX_HEADER_BLOCK:
            raise ProtocolError("a header block over the limit", ENHANCE_YOUR_CALM)
        if flags & END_HEADERS:
            self.continuing = None
            self._on_header_block(stream_id, bytes(block.data), block.end_stream, block.dependency)

    def _on_header_block(
        self, stream_id: int, block: bytes, end_stream: int, dependency: int
    ) -> None:
        head = self._head_of(block)  # decoded even when refused: HPACK keeps up
        stream = self.streams.get(stream_id)
        if stream is not None:  # a second block on a stream: trailers
            if stream.client_done:
                return self._reset(stream_id, stream, STREAM_CLOSED)
            if not end_stream or head.pseudo or head.bad_field:  # RFC 9113 8.1
                return self._reset(stream_id, stream, PROTOCOL_ERROR)
            return self._end_of_request(stream_id, stream)
        if stream_id % 2 == 0:
            raise ProtocolError(f"HEADERS on stream {stream_id}: even ids are the server's")
        if stream_id <= self.last_stream_id:
            ended = self.closed_streams.get(stream_id)
            if ended == _IGNORING:
                return None  # sent before our RST_STREAM reached the client
            if ended == _RESET:
                return self._emit_reset(stream_id, STREAM_CLOSED)
            if ended == _ENDED:
                raise ProtocolError(f"HEADERS on closed stream {stream_id}", STREAM_CLOSED)
            raise ProtocolError(f"HEADERS on stream {stream_id}, below {self.last_stream_id}")
        if self.client_went_away:
            raise ProtocolError(f"HEADERS opening stream {stream_id} after the client's GOAWAY")
        if self.going_away:
            return None
        self.last_stream_id = stream_id
        if dependency == stream_id or head.malformed:
            return self._refuse(stream_id, PROTOCOL_ERROR, end_stream)
        if len(self.streams) >= MAX_STREAMS:
            return self._refuse(stream_id, REFUSED_STREAM, end_stream)
        stream = self.streams[stream_id] = _Stream(head)
        if head.refusal is not None:
            http_status, reason = head.refusal
            stream.client_done = bool(end_stream)
            self._answer(stream_id, stream, INTERNAL, reason, http_status)
            return None
        if head.timeout is not None:  # timed from now; see _time_calls
            self.timed.append((time.monotonic() + head.timeout, stream_id, stream))
        if end_stream:
            self._end_of_request(stream_id, stream)
        return None

    def _head_of(self, block: bytes) -> _Head:
        """The request fields of a header block; every block is decoded so HPACK keeps up.

        Except a block made only of one-byte indexed fields, as grpc-go sends once a method
        was called before: it cannot change the table, so while no other block has, the
        same bytes mean the same fields, and what was read from them last time is reused.
        """
        head = self.heads.get(block)
        if head is not None:
            return head
        try:
            head = _read_head(self.decoder.decode(block), self.plain_fields)
        except HeaderListTooLarge as exc:
            raise ProtocolError(str(exc), ENHANCE_YOUR_CALM) from exc
        except HpackError as exc:
            raise ProtocolError(f"bad header block: {exc}", COMPRESSION_ERROR) from exc
        if block and all(0x80 < byte < 0xFF for byte in block):
            if len(self.heads) < 256:
                self.heads[block] = head
        else:
            self.heads.clear()  # the table may have changed: indexes mean other fields
        return head

    def _on_priority(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 5:
            return self._priority_error(stream_id, FRAME_SIZE_ERROR)
        if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id:  # RFC 9113 5.3.1
            return self._priority_error(stream_id, PROTOCOL_ERROR)
        return None  # priorities are advice a unary server has no use for

    def _priority_error(self, stream_id: int, code: int) -> None:
        """A stream error, except on an idle stream, which RST_STREAM may not name."""
        if self._is_idle(stream_id):
            raise ProtocolError(f"bad PRIORITY on idle stream {stream_id}", code)
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._reset(stream_id, stream, code)
        elif self.closed_streams.get(stream_id) != _IGNORING:
            self._emit_reset(stream_id, code)

    def _on_rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError("RST_STREAM that is not 4 bytes", FRAME_SIZE_ERROR)
        stream = self.streams.get(stream_id)
        if stream is None:
            return self._on_closed_stream(RST_STREAM, stream_id)
        self._close(stream_id, stream, _RESET, None)  # a call not started never will
        return None

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if flags & ACK:
            if payload:
                raise ProtocolError("a SETTINGS ACK with a payload", FRAME_SIZE_ERROR)
            return
        if len(payload) % 6:
            raise ProtocolError("SETTINGS not a multiple of 6 bytes", FRAME_SIZE_ERROR)
        for pos in range(0, len(payload), 6):
            ident = int.from_bytes(payload[pos : pos + 2], "big")
            value = int.from_bytes(payload[pos + 2 : pos + 6], "big")
            if ident in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL) and value > 1:
                raise ProtocolError(f"SETTINGS {ident} = {value}, not 0 or 1")
            if ident == INITIAL_WINDOW_SIZE:
                self._set_initial_window(value)
            elif ident == MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= LARGEST_FRAME:
                    raise ProtocolError(f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.peer_max_frame = value
        self._emit(EMPTY_SETTINGS_ACK)
        if self.waiting:
            self._resume_waiting()

    def _set_initial_window(self, value: int) -> None:
        if value > MAX_WINDOW:
            raise ProtocolError("initial window over 2^31-1", FLOW_CONTROL_ERROR)
        if value > self.peer_initial_window and any(
            value + stream.send_delta > MAX_WINDOW for stream in self.streams.values()
        ):
            raise ProtocolError("a stream window over 2^31-1", FLOW_CONTROL_ERROR)
        self.peer_initial_window = value  # every stream's window moves with it (6.9.2)

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise ProtocolError("PUSH_PROMISE from a client")

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 8:
            raise ProtocolError("a PING that is not 8 bytes", FRAME_SIZE_ERROR)
        if not flags & ACK:
            if self.ready:
                self._dispatch_ready()  # its ACK follows the answers to what came before it
            self._emit(frame(PING, ACK, 0, payload))

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) < 8:
            raise ProtocolError("GOAWAY shorter than 8 bytes", FRAME_SIZE_ERROR)
        self.client_went_away = True  # it runs its streams to the end, and opens no more

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError("WINDOW_UPDATE that is not 4 bytes", FRAME_SIZE_ERROR)
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise ProtocolError("WINDOW_UPDATE of 0 for the connection")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise ProtocolError("connection window over 2^31-1", FLOW_CONTROL_ERROR)
            if self.waiting:
                self._resume_waiting()
            return None
        stream = self.streams.get(stream_id)
        if stream is None:
            return self._on_closed_stream(WINDOW_UPDATE, stream_id)
        if not increment:
            return self._reset(stream_id, stream, PROTOCOL_ERROR)
        stream.send_delta += increment
        if self.peer_initial_window + stream.send_delta > MAX_WINDOW:
            return self._reset(stream_id, stream, FLOW_CONTROL_ERROR)
        if stream_id in self.waiting:
            self._continue(stream_id, stream)
        return None

    def _on_closed_stream(self, kind: int, stream_id: int) -> None:
        """DATA, RST_STREAM or WINDOW_UPDATE for a stream that is not open (RFC 9113 5.1)."""
        if self._is_idle(stream_id):
            if self.going_away and stream_id % 2:
                return  # a stream opened after our GOAWAY: ignored, as its HEADERS were
            raise ProtocolError(f"{FRAME_NAMES[kind]} on idle stream {stream_id}")
        if kind != DATA or self.closed_streams.get(stream_id) == _IGNORING:
            # DATA sent before our RST_STREAM reached the client; a WINDOW_UPDATE may trail
            # any close (RFC 9113 5.1 has it both ways after the client's own RST_STREAM:
            # like h2, it is let be); a reset is never answered with a reset (5.4.2)
            return
        self._emit_reset(stream_id, STREAM_CLOSED)

    # ------------------------------------------------------------------ request bodies

    def _take(self, stream_id: int, stream: _Stream, payload: bytes) -> bool:
        """Add DATA to a request body; False when that answered the request early."""
        body = stream.body
        body += payload
        if stream.message_end < 0:
            if len(body) < 5:
                return True
            size = int.from_bytes(body[1:5], "big")
            if body[0] > 1:
                return self._answer(stream_id, stream, INTERNAL, f"message flag {body[0]}")
            if body[0]:
                message = "compressed messages are not accepted"
                return self._answer(stream_id, stream, UNIMPLEMENTED, message)
            if size > MAX_MESSAGE_BYTES:
                message = f"a request message of {size} bytes; the limit is {MAX_MESSAGE_BYTES}"
                return self._answer(stream_id, stream, RESOURCE_EXHAUSTED, message)
            stream.message_end = 5 + size
            self._reserve(stream_id, stream)
        elif stream.reserved:
            stream.consumed += len(payload)
        if len(body) > stream.message_end:
            message = "a unary request holds more than one message"
            return self._answer(stream_id, stream, INTERNAL, message)
        return True

    def _reserve(self, stream_id: int, stream: _Stream) -> None:
        """Hold budget for the whole message, or park the stream until there is some.

        A reserved request is sure to complete, so parked ones cannot starve it; a parked
        one holds at most its stream window. One message may pass the budget when it is
        alone (it is still at most MAX_MESSAGE_BYTES).
        """
        need = stream.message_end
        if self.budget_used and self.budget_used + need > REQUEST_BUDGET:
            self.parked[stream_id] = stream
            return
        self.budget_used += need
        stream.reserved = need
        stream.consumed += len(stream.body)

    def _admit_parked(self) -> None:
        for stream_id, stream in list(self.parked.items()):
            if self.budget_used and self.budget_used + stream.message_end > REQUEST_BUDGET:
                return
            del self.parked[stream_id]
            self._reserve(stream_id, stream)
            if stream.client_done:
                self.ready.append((stream_id, stream))
            else:
                self._give_back(stream_id, stream)

    def _give_back(self, stream_id: int, stream: _Stream) -> None:
        """WINDOW_UPDATE for the bytes a reserved request consumed."""
        if stream.consumed and not stream.client_done:
            increment, stream.consumed = stream.consumed, 0
            stream.receive_window += increment
            self._emit(frame(WINDOW_UPDATE, 0, stream_id, increment.to_bytes(4, "big")))

    def _end_of_request(self, stream_id: int, stream: _Stream) -> None:
        stream.client_done = True
        limit = stream.head.content_length
        if limit >= 0 and stream.received != limit:  # malformed (RFC 9113 8.1.1)
            return self._reset(stream_id, stream, PROTOCOL_ERROR)
        if stream.message_end < 0:
            message = "the request has no message" if not stream.body else "a cut-off prefix"
            self._answer(stream_id, stream, INTERNAL, message)
            return None
        if len(stream.body) < stream.message_end:
            self._answer(stream_id, stream, INTERNAL, "the request message is cut off")
            return None
        if stream.reserved:
            self.ready.append((stream_id, stream))
        return None  # a parked request waits for the budget

    # ------------------------------------------------------------------ calls

    def _dispatch_ready(self) -> None:
        """Start the requests completed by this read, except those reset meanwhile."""
        ready, self.ready = self.ready, []
        for stream_id, stream in ready:
            if self.streams.get(stream_id) is stream:
                reserved, stream.reserved = stream.reserved, 0  # the call holds it now
                message = bytes(memoryview(stream.body)[5:])
                stream.body = _NO_BODY
                self.server.dispatch(self, stream_id, stream, message, reserved)

    def is_live(self, stream_id: int, stream: _Stream) -> bool:
        return not self.closed and self.streams.get(stream_id) is stream

    def end_call(
        self, stream_id: int, stream: _Stream, reserved: int, result: tuple | None
    ) -> None:
        """From a worker: the call's budget back, its answer out (unless reset meanwhile)."""
        with self.lock:
            self.calls -= 1
            self.budget_used -= reserved
            if self.closed:
                return
            try:
                if result is not None:
                    self.finish(stream_id, stream, *result)
                self._send()
            except Exception:  # noqa: BLE001 (socket or TLS broken: the loop drops it)
                self.closed = True
            if self.outbound or self.closed or self.parked:
                self.server.wake(self)

    def finish(
        self,
        stream_id: int,
        stream: _Stream,
        status: int,
        message: str = "",
        response: bytes = b"",
    ) -> None:
        """End a call (lock held): the response message when status is OK, else the status."""
        if self.streams.get(stream_id) is not stream or self.closed:
            return  # reset or timed out meanwhile
        if status != OK:
            self._answer(stream_id, stream, status, message)
            return
        stream.pending = memoryview(b"\x00" + len(response).to_bytes(4, "big") + response)
        stream.headers_sent = True
        self._continue(stream_id, stream, frame(HEADERS, END_HEADERS, stream_id, RESPONSE_HEADERS))

    def expire(self, stream_id: int, stream: _Stream) -> None:
        """grpc-timeout passed: the call is cancelled (lock held)."""
        if self.streams.get(stream_id) is stream:
            self._answer(stream_id, stream, DEADLINE_EXCEEDED, "deadline exceeded")

    def _answer(
        self, stream_id: int, stream: _Stream, status: int, message: str, http_status: int = 200
    ) -> bool:
        """End a stream with a gRPC status (and no message); always False."""
        fields = status_fields(status, message)
        block = fields if stream.headers_sent else _status_headers(http_status) + fields
        self._emit(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, block))
        self._close(stream_id, stream, _ENDED)
        return False

    def _continue(self, stream_id: int, stream: _Stream, headers: bytes = b"") -> None:
        """Frame as much of the stream's response as the windows allow, after `headers`;
        trailers at the end."""
        pending, offset = stream.pending, stream.offset
        assert pending is not None  # set by finish() before the first _continue
        end = len(pending)
        out = [headers] if headers else []
        size_out = len(headers)
        unsent = len(self.outbound) + self.frames_out_size
        done = True
        while offset < end:
            window = min(self.peer_initial_window + stream.send_delta, self.send_window)
            size = min(end - offset, window, self.peer_max_frame, LARGEST_DATA_SENT)
            if size <= 0 or unsent + size_out >= OUTBOUND_HIGH:
                self.waiting[stream_id] = stream  # the rest goes when there is room
                self.outbound_full |= size > 0
                done = False
                break
            out.append(frame(DATA, 0, stream_id, pending[offset : offset + size]))
            offset += size
            size_out += 9 + size
            stream.send_delta -= size
            self.send_window -= size
        stream.offset = offset
        if done:
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, stream_id, TRAILERS_OK))
            size_out += 9 + len(TRAILERS_OK)
        if out:
            self.frames_out += out
            self.frames_out_size += size_out
        if done:
            self._close(stream_id, stream, _ENDED)

    def _resume_waiting(self) -> None:
        for stream_id, stream in list(self.waiting.items()):
            if self.send_window <= 0:
                return
            self._continue(stream_id, stream)

    def _reset(self, stream_id: int, stream: _Stream, code: int) -> None:
        """A stream error (RFC 9113 5.4.2)."""
        self._close(stream_id, stream, _RESET, code)

    def _refuse(self, stream_id: int, code: int, client_done: int) -> None:
        """A stream error on a stream that never opened here."""
        self._emit_reset(stream_id, code)
        self._remember(stream_id, _RESET if client_done else _IGNORING)

    def _emit_reset(self, stream_id: int, code: int) -> None:
        self._emit(frame(RST_STREAM, 0, stream_id, code.to_bytes(4, "big")))

    def _close(self, stream_id: int, stream: _Stream, how: int, code: int | None = None) -> None:
        """Forget an open stream. `how` is _ENDED (answered), or _RESET with the RST_STREAM
        `code` to send (None when the client reset it)."""
        del self.streams[stream_id]
        self.waiting.pop(stream_id, None)
        self.parked.pop(stream_id, None)
        if stream.reserved:  # not dispatched: the body goes with the stream
            self.budget_used -= stream.reserved
            stream.reserved = 0
        stream.body, stream.pending = _NO_BODY, None  # a deadline may keep the stream a while
        if how == _ENDED and not stream.client_done:
            how = _IGNORING  # answered early: ask the client to stop sending (8.1)
            self._emit_reset(stream_id, NO_ERROR)
        elif how == _RESET and code is not None:
            self._emit_reset(stream_id, code)
            if not stream.client_done:
                how = _IGNORING
        self._remember(stream_id, how)

    def _remember(self, stream_id: int, how: int) -> None:
        closed = self.closed_streams
        closed[stream_id] = how
        if len(closed) > 2 * CLOSED_STREAMS_KEPT:
            self.closed_streams = dict(list(closed.items())[-CLOSED_STREAMS_KEPT:])

    def has_unsent(self) -> bool:
        """Response bytes not yet on the socket (lock held)."""
        return bool(self.outbound or self.frames_out or self.waiting)

    def go_away(self, code: int = NO_ERROR) -> None:
        """GOAWAY naming the last stream taken; later streams are ignored (lock held)."""
        payload = self.last_stream_id.to_bytes(4, "big") + code.to_bytes(4, "big")
        self._emit(frame(GOAWAY, 0, 0, payload))
        self.going_away = True
        self._send()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.streams.clear()
            self.waiting.clear()
            self.parked.clear()
        self.sock.close()


# Each frame type's handler, and whether it must be (True) or must not be (False) on stream
# 0; WINDOW_UPDATE goes either way.
_FRAME_HANDLERS = (
    (_Connection._on_data, False),
    (_Connection._on_headers, False),
    (_Connection._on_priority, False),
    (_Connection._on_rst_stream, False),
    (_Connection._on_settings, True),
    (_Connection._on_push_promise, False),
    (_Connection._on_ping, True),
    (_Connection._on_goaway, True),
    (_Connection._on_window_update, None),
    (_Connection._on_continuation, False),
)


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
        self._deadlines: list[tuple[float, int, _Connection, int, _Stream]] = []  # a heap
        self._deadline_count = 0
        self._draining = False  # stop() began: GOAWAY sent, no new connections
        self._listening = True
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
        """GOAWAY to every client, up to `grace` seconds for calls in flight, then close."""
        if self._stopping or self._draining:
            return
        if not self._thread.is_alive():
            self._stopping = True
            self.listener.close()
            return
        deadline = time.monotonic() + grace
        self._draining = True
        self._wake_loop()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, grace)
        while self._unsent_responses() and time.monotonic() < deadline:
            time.sleep(0.01)  # a response waits for the socket or the client's window
        self._stopping = True
        self._wake_loop()
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
        self._wake_loop()

    def _wake_loop(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is awake; closed: it is gone
            self._wake_w.send(b"x")

    # ------------------------------------------------------------------ calls

    def dispatch(
        self,
        connection: _Connection,
        stream_id: int,
        stream: _Stream,
        message: bytes,
        reserved: int,
    ) -> None:
        """A request is complete (loop thread, connection lock held)."""
        path = stream.head.path
        route = self.router(path)
        if route is None or route.hold or route.pool is None:
            connection.budget_used -= reserved
            if route is None:
                connection.finish(stream_id, stream, UNIMPLEMENTED, f"unknown method {path}")
            elif not route.hold:
                connection.finish(stream_id, stream, *self._call(route.call, message))
            return
        if connection.calls >= MAX_CALLS:
            raise ProtocolError("too many calls in flight", ENHANCE_YOUR_CALM)
        connection.calls += 1
        with self._idle:
            self._in_flight += 1
        try:
            route.pool.submit(
                self._call_in_pool, route, connection, stream_id, stream, message, reserved
            )
        except RuntimeError as exc:  # no thread could be started
            connection.calls -= 1
            connection.budget_used -= reserved
            self._call_done()
            connection.finish(stream_id, stream, UNAVAILABLE, f"no worker: {exc}")

    def _call_in_pool(
        self,
        route: Route,
        connection: _Connection,
        stream_id: int,
        stream: _Stream,
        message: bytes,
        reserved: int,
    ) -> None:
        try:
            result = None
            if connection.is_live(stream_id, stream):  # a call reset or timed out never starts
                result = self._call(route.call, message)
            del message
            connection.end_call(stream_id, stream, reserved, result)
        finally:
            self._call_done()

    def _call_done(self) -> None:
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

    def add_deadline(
        self, deadline: float, connection: _Connection, stream_id: int, stream: _Stream
    ) -> None:
        """Cancel the call at `deadline` (time.monotonic) unless it ended (loop thread)."""
        self._deadline_count += 1
        entry = (deadline, self._deadline_count, connection, stream_id, stream)
        heapq.heappush(self._deadlines, entry)
        if len(self._deadlines) > 4 * MAX_STREAMS * (len(self._connections) + 1):
            # ended streams' entries wait for their time; drop them once they pile up
            live = [e for e in self._deadlines if e[2].is_live(e[3], e[4])]
            heapq.heapify(live)
            self._deadlines = live

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, connection, stream_id, stream = heapq.heappop(self._deadlines)
            if connection.is_live(stream_id, stream):
                with connection.lock:
                    connection.expire(stream_id, stream)
                self._serve(connection, 0)

    def _next_timeout(self) -> float:
        return max(0.0, self._deadlines[0][0] - time.monotonic())

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
            timeout = self._next_timeout() if self._deadlines else None
            for key, mask in self._selector.select(timeout):
                if key.data is None:
                    self._accept()
                elif key.data == "wake":
                    self._on_wake()
                elif not key.data.closed:  # closed earlier this round
                    self._serve(key.data, mask)
            if self._deadlines:
                self._expire_deadlines()
        if self._draining:  # stop() may finish before the loop saw its wake-up
            self._drain()
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
        if self._draining:
            self._drain()
        with self._woken_lock:
            woken, self._woken = self._woken, set()
        for connection in woken:
            if connection in self._connections:
                self._serve(connection, 0)

    def _drain(self) -> None:
        """stop() began: no new connection, and GOAWAY to every client (once)."""
        if self._listening:
            self._listening = False
            self._selector.unregister(self.listener)
            self.listener.close()
            for connection in list(self._connections):
                with contextlib.suppress(OSError, ValueError), connection.lock:
                    connection.go_away()

    def _serve(self, connection: _Connection, mask: int) -> None:
        try:
            if connection.closed:
                raise ConnectionResetError("a worker found the connection broken")
            if mask & selectors.EVENT_READ:
                connection.on_readable()  # sends what it made
            if mask != selectors.EVENT_READ or connection.needs_writing():
                connection.on_writable()
        except Exception as exc:  # noqa: BLE001 (a bug costs one connection, never the loop)
            if not isinstance(exc, (OSError, ValueError, ProtocolError)):
                self._log("error", "gRPC connection failed", error=f"{type(exc).__name__}: {exc}")
            elif not connection.authenticated:
                self._log("warn", "refused a plugin client", reason=str(exc))
            elif isinstance(exc, ProtocolError):
                with contextlib.suppress(OSError, ValueError), connection.lock:
                    connection.go_away(exc.code)
                self._log("warn", "closed a client that broke HTTP/2", reason=str(exc))
            self._drop(connection)
            return
        outbound = len(connection.outbound)
        wanted = selectors.EVENT_READ if outbound < OUTBOUND_HIGH else 0
        if outbound:
            wanted |= selectors.EVENT_WRITE
        if self._selector.get_key(connection.sock).events != wanted:
            self._selector.modify(connection.sock, wanted, connection)

    def _drop(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.close()
