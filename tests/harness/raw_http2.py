"""HTTP/2 by hand (RFC 9113), independent of the server's own helpers: the raw-frame client
the gRPC server's tests speak through, with `hpack`'s codec."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import deque
from dataclasses import dataclass

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, HAS_PRIORITY = 0x4, 0x8, 0x20
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x3, 0x4
MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x5, 0x6
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x0, 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB


def h2frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


def setting(ident: int, value: int) -> bytes:
    return ident.to_bytes(2, "big") + value.to_bytes(4, "big")


def grpc_message(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def request_fields(path: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """What a gRPC client sends for a unary call to `path`."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


def literal_block(fields: list[tuple[str, str]]) -> bytes:
    """A header block of "literal without indexing" fields: no HPACK table state anywhere,
    so it can be sent on any connection and mean the same."""

    def string(text: str) -> bytes:
        raw = text.encode()
        return hpack.hpack.encode_integer(len(raw), 7) + raw

    return b"".join(b"\x00" + string(name) + string(value) for name, value in fields)


@dataclass
class Frame:
    kind: int
    flags: int
    stream_id: int
    payload: bytes

    @property
    def error_code(self) -> int:
        """RST_STREAM's and GOAWAY's error code."""
        return int.from_bytes(self.payload[-4:] if self.kind == RST_STREAM else self.payload[4:8])


@dataclass
class Response:
    headers: dict[str, str]
    body: bytes
    trailers: dict[str, str]
    data_sizes: list[int]

    @property
    def message(self) -> bytes:
        assert self.body[0] == 0
        assert int.from_bytes(self.body[1:5], "big") == len(self.body) - 5
        return self.body[5:]

    @property
    def status(self) -> str:
        return (self.trailers or self.headers).get("grpc-status", "")


class RawClient:
    """A client connection over a unix socket (or any connected socket).

    It keeps the server's flow-control windows: `request` sends no more DATA than they
    allow and waits for WINDOW_UPDATEs (frames read meanwhile are kept for the reader).
    `send` puts bytes on the wire as they are, for frames that break the rules.
    """

    def __init__(self, path: str | None = None, sock: socket.socket | None = None) -> None:
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(path)
        sock.settimeout(5)
        self.sock = sock
        self.encoder, self.decoder = hpack.Encoder(), hpack.Decoder()
        self.buffer = bytearray()
        self.kept: deque[Frame] = deque()  # read while waiting for window, not yet returned
        self.auto_window = True  # send WINDOW_UPDATEs for what DATA frames used
        self.send_window = 65535
        self.initial_window = 65535
        self.stream_windows: dict[int, int] = {}  # the delta from the initial window
        self.ended: set[int] = set()  # streams whose response ended

    def send(self, *frames: bytes) -> None:
        self.sock.settimeout(10)  # not what the last read left (reads may wait 10 ms)
        self.sock.sendall(b"".join(frames))

    def start(self, settings: bytes = b"") -> list[Frame]:
        """Preface and SETTINGS; returns the frames up to the server's SETTINGS ACK."""
        self.send(PREFACE, h2frame(SETTINGS, 0, 0, settings))
        frames = []
        while True:
            f = self.read_frame()
            frames.append(f)
            if f.kind == SETTINGS and f.flags & ACK:
                return frames

    def _receive(self, timeout: float) -> Frame:
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) >= 9 + length:
                    head, payload = self.buffer[:9], bytes(self.buffer[9 : 9 + length])
                    del self.buffer[: 9 + length]
                    stream_id = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                    f = Frame(head[3], head[4], stream_id, payload)
                    self._track_windows(f)
                    return f
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buffer += chunk

    def _track_windows(self, f: Frame) -> None:
        if f.kind == SETTINGS and not f.flags & ACK:
            for pos in range(0, len(f.payload), 6):
                if int.from_bytes(f.payload[pos : pos + 2], "big") == INITIAL_WINDOW_SIZE:
                    self.initial_window = int.from_bytes(f.payload[pos + 2 : pos + 6], "big")
        elif f.kind == WINDOW_UPDATE:
            increment = int.from_bytes(f.payload, "big")
            if f.stream_id == 0:
                self.send_window += increment
            else:
                delta = self.stream_windows.get(f.stream_id, 0)
                self.stream_windows[f.stream_id] = delta + increment

    def read_frame(self, timeout: float = 5) -> Frame:
        """The next frame; EOFError when the server closed the connection."""
        return self.kept.popleft() if self.kept else self._receive(timeout)

    def window(self, stream_id: int) -> int:
        return min(self.send_window, self.initial_window + self.stream_windows.get(stream_id, 0))

    def send_data(self, stream_id: int, data: bytes, end: bool = True, timeout: float = 5) -> None:
        """DATA frames of at most 16384 bytes, within the server's windows."""
        deadline = time.monotonic() + timeout
        pos = 0
        while True:
            size = min(len(data) - pos, 16384, self.window(stream_id))
            if size > 0 or pos == len(data):
                last = pos + size == len(data)
                flags = END_STREAM if last and end else 0
                self.send(h2frame(DATA, flags, stream_id, data[pos : pos + size]))
                self.send_window -= size
                self.stream_windows[stream_id] = self.stream_windows.get(stream_id, 0) - size
                pos += size
                if last:
                    return
            else:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no window to send on stream {stream_id}"
                self.kept.append(self._receive(remaining))

    def next_frame_of(self, stream_id: int) -> Frame:
        """The next frame on `stream_id` that is not a WINDOW_UPDATE, skipping the others."""
        while True:
            f = self.read_frame()
            if f.stream_id == stream_id and f.kind != WINDOW_UPDATE:
                return f

    def read_data(self, stream_id: int, into: bytearray, total: int) -> None:
        """DATA frames of `stream_id` into `into` until it holds exactly `total` bytes."""
        while len(into) < total:
            f = self.next_frame_of(stream_id)
            assert f.kind == DATA, f
            into += f.payload
        assert len(into) == total

    def read_until_closed(self, timeout: float = 5) -> list[Frame]:
        """Every frame until EOF; fails when the connection stays open past `timeout`."""
        deadline, frames = time.monotonic() + timeout, []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"connection still open; frames: {frames[-5:]}"
            try:
                frames.append(self.read_frame(remaining))
            except (EOFError, ConnectionResetError):
                return frames

    def frames_until_ping_ack(self, timeout: float = 5) -> list[Frame]:
        """PING, then every frame up to its ACK (all the server made of what came before);
        the frames up to the close if the server closes the connection instead."""
        with_payload = b"barrier!"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send(h2frame(PING, 0, 0, with_payload))
        deadline, frames = time.monotonic() + timeout, []
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no PING ACK; frames: {frames[-5:]}"
            try:
                f = self.read_frame(remaining)
            except (EOFError, ConnectionResetError):
                return frames
            if f.kind == PING and f.flags & ACK and f.payload == with_payload:
                return frames
            frames.append(f)

    def header_block(self, path: str, *extra: tuple[str, str]) -> bytes:
        return self.encoder.encode(request_fields(path, *extra))

    def request(self, stream_id: int, path: str, message: bytes) -> None:
        """HEADERS, then the message in DATA frames, within the server's windows."""
        self.send(h2frame(HEADERS, END_HEADERS, stream_id, self.header_block(path)))
        self.send_data(stream_id, grpc_message(message))

    def response(self, stream_id: int, timeout: float = 5) -> Response:
        """Reads until `stream_id` ends; other streams' frames fail the test."""
        headers: dict[str, str] = {}
        trailers: dict[str, str] = {}
        body, sizes = bytearray(), []
        while True:
            f = self.read_frame(timeout)
            if f.kind in (SETTINGS, WINDOW_UPDATE, PING) and f.stream_id in (0, stream_id):
                continue
            if f.kind == RST_STREAM and f.error_code == NO_ERROR and f.stream_id in self.ended:
                continue  # the server's "stop sending" after a response that came early
            assert f.stream_id == stream_id, f"unexpected frame {f}"
            if f.kind == HEADERS:
                assert f.flags & END_HEADERS
                fields = dict(self.decoder.decode(f.payload))
                (trailers if headers else headers).update(fields)
            elif f.kind == DATA:
                assert headers, "DATA before HEADERS"
                body += f.payload
                sizes.append(len(f.payload))
                if self.auto_window and f.payload:
                    increment = len(f.payload).to_bytes(4, "big")
                    self.send(
                        h2frame(WINDOW_UPDATE, 0, 0, increment),
                        h2frame(WINDOW_UPDATE, 0, stream_id, increment),
                    )
            else:
                raise AssertionError(f"unexpected frame {f}")
            if f.flags & END_STREAM:
                self.ended.add(stream_id)
                return Response(headers, bytes(body), trailers, sizes)

    def expect_silence(self, seconds: float) -> None:
        """No frame but WINDOW_UPDATEs arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                f = self.read_frame(remaining)
            except TimeoutError:
                return
            assert f.kind == WINDOW_UPDATE, f"unexpected frame {f}"

    def close(self) -> None:
        self.sock.close()
