"""The `h2` package (python-hyper's HTTP/2 stack) as the reference server for the project's.

`h2_verdict` feeds a client's bytes to an h2 server connection set up as the project's
server announces itself, answering requests the way the project's server does, and says
what h2 made of them: a connection error, stream errors, or nothing to object to.

The answering follows the project's gRPC rules (a unary request has exactly one message;
a refused content type, method or timeout is answered at once) because they decide when a
stream closes, and so what the next frame on it means; what h2 judges is HTTP/2 itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from .raw_http2 import NO_ERROR, RST_STREAM

HOLD = "/t.T/Hold"  # the route answered never (GRPCStdio's shape)
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass
class Verdict:
    connection_error: int | None = None  # the GOAWAY's error code
    stream_errors: dict[int, int] = field(default_factory=dict)  # stream: RST_STREAM code

    @property
    def refused(self) -> bool:
        return self.connection_error is not None or bool(self.stream_errors)

    def kind(self, stream_id: int | None = None) -> tuple[str, int] | str:
        """("connection", code), ("stream", code) for `stream_id` (any when None), or
        "accepted"."""
        if self.connection_error is not None:
            return ("connection", self.connection_error)
        for sid, code in self.stream_errors.items():
            if stream_id is None or sid == stream_id:
                return ("stream", code)
        return "accepted"


class _Request:
    def __init__(self, headers: dict[bytes, bytes]) -> None:
        self.headers = headers
        self.body = bytearray()
        self.answered = False


class ReferenceServer:
    """An h2 server connection with the project's settings; `receive` takes client bytes."""

    def __init__(self, max_streams: int = 100, max_header_list: int = 32768) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        codes = h2.settings.SettingCodes
        self.conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: max_streams,
                codes.INITIAL_WINDOW_SIZE: 65535,
                codes.MAX_HEADER_LIST_SIZE: max_header_list,
            },
        )
        self.conn.initiate_connection()
        self.conn.data_to_send()
        self.requests: dict[int, _Request] = {}
        self.verdict = Verdict()

    def receive(self, data: bytes) -> Verdict:
        """Process `data`; the verdict on everything received so far."""
        if self.verdict.connection_error is not None:
            return self.verdict
        try:
            for event in self.conn.receive_data(data):
                self._on_event(event)
        except h2.exceptions.ProtocolError as exc:
            self.verdict.connection_error = int(exc.error_code)
        self._note_resets(self.conn.data_to_send())
        return self.verdict

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            request = self.requests[event.stream_id] = _Request(dict(event.headers))
            refusal = _refusal(request.headers)
            if refusal:
                self._answer(event.stream_id, request, ended=event.stream_ended is not None)
        elif isinstance(event, h2.events.DataReceived):
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            request = self.requests.get(event.stream_id)
            if request is not None and not request.answered:
                request.body += event.data
                if _early_problem(request.body):
                    self._answer(event.stream_id, request, ended=event.stream_ended is not None)
        elif isinstance(event, h2.events.StreamEnded):
            request = self.requests.get(event.stream_id)
            if request is not None and not request.answered and _answered_at_end(request):
                self._answer(event.stream_id, request, ended=True)

    def _answer(self, stream_id: int, request: _Request, ended: bool) -> None:
        """A response, then RST_STREAM(NO_ERROR) when the client had not finished (8.1)."""
        request.answered = True
        try:
            self.conn.send_headers(stream_id, [(b":status", b"200")], end_stream=True)
            if not ended:
                self.conn.reset_stream(stream_id, NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass

    def _note_resets(self, data: bytes) -> None:
        pos = 0
        while pos + 9 <= len(data):
            length = int.from_bytes(data[pos : pos + 3], "big")
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if data[pos + 3] == RST_STREAM:
                code = int.from_bytes(data[pos + 9 : pos + 13], "big")
                if code != NO_ERROR:
                    self.verdict.stream_errors.setdefault(stream_id, code)
            pos += 9 + length


def _refusal(headers: dict[bytes, bytes]) -> bool:
    """The project answers these at once: not POST, not application/grpc, bad grpc-timeout."""
    content_type = headers.get(b"content-type", b"")
    timeout = headers.get(b"grpc-timeout")
    return (
        headers.get(b":method") != b"POST"
        or not content_type.startswith(b"application/grpc")
        or content_type[16:17] not in (b"", b"+", b";")
        or (
            timeout is not None
            and not (1 < len(timeout) <= 9 and timeout[:-1].isdigit() and timeout[-1:] in b"HMSmun")
        )
    )


def _answered_at_end(request: _Request) -> bool:
    """Every complete request is answered, but a well-formed one on the held route."""
    return request.headers.get(b":path") != HOLD.encode() or _end_problem(request.body)


def _early_problem(body: bytearray) -> bool:
    """A request body the project answers before it ends: a bad flag, a message over the
    limit, or more than one message."""
    if len(body) < 5:
        return False
    size = int.from_bytes(body[1:5], "big")
    return body[0] > 0 or size > MAX_MESSAGE_BYTES or len(body) > 5 + size


def _end_problem(body: bytearray) -> bool:
    """A complete request without exactly one whole message (answered INTERNAL)."""
    return len(body) < 5 or len(body) != 5 + int.from_bytes(body[1:5], "big")


def h2_verdict(*chunks: bytes) -> Verdict:
    """h2's verdict on a client's bytes, from the preface on, given in `chunks`."""
    server = ReferenceServer()
    for chunk in chunks:
        server.receive(chunk)
    return server.verdict
