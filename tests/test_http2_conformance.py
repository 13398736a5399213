"""RFC 9113 conformance of the gRPC server, with the `h2` package as the reference.

Each case sends the same bytes to the project's server (over a real socket) and to an h2
server connection. The project's server must refuse whatever h2 refuses, and refuse it the
way the RFC says: a connection error (GOAWAY) or a stream error (RST_STREAM), with the
RFC's error code. The table is generated: every frame type against every stream state,
then the frames whose payload, size or fields break a rule. Hypothesis then makes frame
streams of its own: they must never stop the loop or change another connection's answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from harness.grpc_served import HOLD, INLINE_ECHO, Served, assert_a_new_client_is_served
from harness.h2_reference import ReferenceServer, Verdict
from harness.raw_http2 import (
    ACK,
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HAS_PRIORITY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    Frame,
    RawClient,
    grpc_message,
    h2frame,
    literal_block,
    request_fields,
    setting,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest_plugins = ["harness.grpc_fixtures"]

REQUEST = literal_block(request_fields(INLINE_ECHO))  # answered at once, on the loop
HOLD_REQUEST = literal_block(request_fields(HOLD))  # answered never
MESSAGE = grpc_message(b"hi")
CLIENT_START = PREFACE + h2frame(SETTINGS, 0, 0)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def connection(code: int) -> tuple[str, int]:
    return ("connection", code)


def stream(code: int) -> tuple[str, int]:
    return ("stream", code)


def request(stream_id: int, fields: list[tuple[str, str]], body: bytes = MESSAGE) -> bytes:
    """A request of literal fields and a body, ended."""
    return h2frame(HEADERS, END_HEADERS, stream_id, literal_block(fields)) + h2frame(
        DATA, END_STREAM, stream_id, body
    )


# ---------------------------------------------------------------------- the cases

# Stream states (RFC 9113 5.1): the target stream, and the steps that bring it there.
STATES: dict[str, tuple[int, tuple[bytes, ...]]] = {
    "stream 0": (0, ()),
    "idle": (1, ()),
    "idle, even": (2, ()),
    "open": (1, (h2frame(HEADERS, END_HEADERS, 1, REQUEST),)),
    "half-closed (remote)": (
        1,
        (h2frame(HEADERS, END_HEADERS, 1, HOLD_REQUEST) + h2frame(DATA, END_STREAM, 1, MESSAGE),),
    ),
    "closed": (
        1,
        (h2frame(HEADERS, END_HEADERS, 1, REQUEST) + h2frame(DATA, END_STREAM, 1, MESSAGE),),
    ),
    "closed by the client's reset": (
        1,
        (h2frame(HEADERS, END_HEADERS, 1, REQUEST) + h2frame(RST_STREAM, 0, 1, u32(CANCEL)),),
    ),
    "closed by the server's reset": (
        1,
        (
            h2frame(HEADERS, END_HEADERS, 1, HOLD_REQUEST) + h2frame(DATA, END_STREAM, 1, MESSAGE),
            h2frame(DATA, 0, 1, MESSAGE),  # DATA after END_STREAM: RST_STREAM(STREAM_CLOSED)
        ),
    ),
    "implicitly closed": (1, (h2frame(HEADERS, END_HEADERS | END_STREAM, 3, REQUEST),)),
}

# One well-formed frame of each type, for stream `s`.
FRAMES: dict[str, Callable[[int], bytes]] = {
    "DATA": lambda s: h2frame(DATA, 0, s, MESSAGE),
    "HEADERS": lambda s: h2frame(HEADERS, END_HEADERS | END_STREAM, s, REQUEST),
    "PRIORITY": lambda s: h2frame(PRIORITY, 0, s, u32(0) + b"\x10"),
    "RST_STREAM": lambda s: h2frame(RST_STREAM, 0, s, u32(CANCEL)),
    "SETTINGS": lambda s: h2frame(SETTINGS, 0, s),
    "PUSH_PROMISE": lambda s: h2frame(PUSH_PROMISE, END_HEADERS, s, u32(2) + REQUEST),
    "PING": lambda s: h2frame(PING, 0, s, b"12345678"),
    "GOAWAY": lambda s: h2frame(GOAWAY, 0, s, bytes(8)),
    "WINDOW_UPDATE": lambda s: h2frame(WINDOW_UPDATE, 0, s, u32(1)),
    "CONTINUATION": lambda s: h2frame(CONTINUATION, END_HEADERS, s, REQUEST),
    "unknown type 0x20": lambda s: h2frame(0x20, 0, s, b"abc"),
}


def rfc_9113(state: str, kind: str) -> tuple[tuple[str, int] | str, str]:
    """What RFC 9113 requires of a server for frame `kind` on a stream in `state`, and where."""
    if kind == "unknown type 0x20":
        return "accepted", "4.1"
    if state == "stream 0":
        if kind in ("SETTINGS", "PING", "GOAWAY", "WINDOW_UPDATE"):
            return "accepted", "6.5, 6.7, 6.8, 6.9"
        return connection(PROTOCOL_ERROR), "6.1-6.4, 6.6, 6.10: these frames need a stream"
    if kind in ("SETTINGS", "PING", "GOAWAY"):
        return connection(PROTOCOL_ERROR), "6.5, 6.7, 6.8: stream 0 only"
    if kind == "PUSH_PROMISE":
        return connection(PROTOCOL_ERROR), "8.4: a client cannot push"
    if kind == "CONTINUATION":
        return connection(PROTOCOL_ERROR), "6.10: no header block in progress"
    if kind == "PRIORITY":
        return "accepted", "5.1: PRIORITY is allowed in every state"
    if state.startswith("idle"):
        if kind == "HEADERS":
            if state == "idle":
                return "accepted", "5.1: HEADERS opens an idle stream"
            return connection(PROTOCOL_ERROR), "5.1.1: clients use odd stream ids"
        return connection(PROTOCOL_ERROR), "5.1 idle: only HEADERS or PRIORITY"
    if kind in ("RST_STREAM", "WINDOW_UPDATE"):
        return "accepted", "5.1: may trail a close; a reset is never answered (5.4.2)"
    if state == "open":
        if kind == "DATA":
            return "accepted", "5.1 open"
        return stream(PROTOCOL_ERROR), "8.1: trailers carry no pseudo-header"
    if kind == "DATA":
        return stream(STREAM_CLOSED), "5.1 half-closed (remote), 6.1"
    if state == "closed":
        return connection(STREAM_CLOSED), "5.1 closed"
    if state == "implicitly closed":
        return connection(PROTOCOL_ERROR), "5.1.1: a new stream id must be the highest"
    return stream(STREAM_CLOSED), "5.1 half-closed (remote), closed after RST_STREAM"


@dataclass(frozen=True)
class Case:
    name: str
    state: str  # a key of STATES
    frames: bytes
    expected: tuple[str, int] | str
    rfc: str  # the section that says so
    h2_accepts: str = ""  # when h2 lets it through: why the project's server does not
    client_start: bytes = CLIENT_START


def generated_cases() -> list[Case]:
    cases = []
    for state, (target, _) in STATES.items():
        for kind, make in FRAMES.items():
            expected, rfc = rfc_9113(state, kind)
            cases.append(Case(f"{kind} on {state}", state, make(target), expected, rfc))
    return cases


OPEN = "open"
IDLE = "idle"
MALFORMED = stream(PROTOCOL_ERROR)


def field_cases() -> list[Case]:
    """Malformed requests (RFC 9113 8.1.1, 8.2, 8.3): stream errors of type PROTOCOL_ERROR."""
    fields = request_fields(INLINE_ECHO)
    without = {name: [f for f in fields if f[0] != name] for name, _ in fields}
    variants = {
        "without :method": without[":method"],
        "without :scheme": without[":scheme"],
        "without :path": without[":path"],
        "with an empty :path": [(":path", "") if n == ":path" else (n, v) for n, v in fields],
        "without :authority or host": without[":authority"],
        "with host other than :authority": [*fields, ("host", "elsewhere")],
        "with an unknown pseudo-header": [(":foo", "bar"), *fields],
        "with :status": [(":status", "200"), *fields],
        "with :protocol": [(":protocol", "websocket"), *fields],
        "with a pseudo-header after a regular field": [*fields, (":method", "POST")],
        "with :path twice": [(":path", INLINE_ECHO), *fields],
        "with an uppercase field name": [*fields, ("X-Upper", "1")],
        "with an empty field name": [*fields, ("", "1")],
        "with a colon inside a field name": [*fields, ("x:y", "1")],
        "with connection: keep-alive": [*fields, ("connection", "keep-alive")],
        "with te: gzip": [*fields[:-1], ("te", "gzip")],
        "with a field value holding LF": [*fields, ("x-a", "a\nb")],
        "with a field value holding NUL": [*fields, ("x-a", "a\0b")],
        "with a field value starting with a space": [*fields, ("x-a", " a")],
        "a CONNECT with :path": [(":method", "CONNECT"), *without[":method"]],
        "with content-length other than its DATA": [*fields, ("content-length", "10")],
    }
    cases = [
        Case(f"a request {name}", IDLE, request(1, variant), MALFORMED, "8.1.1, 8.2, 8.3")
        for name, variant in variants.items()
    ]
    trailers = literal_block([("x-trailer", "1")])
    cases += [
        Case(
            "trailers",
            OPEN,
            h2frame(DATA, 0, 1, MESSAGE) + h2frame(HEADERS, END_HEADERS | END_STREAM, 1, trailers),
            "accepted",
            "8.1",
        ),
        Case(
            "trailers without END_STREAM",
            OPEN,
            h2frame(HEADERS, END_HEADERS, 1, trailers),
            MALFORMED,
            "8.1",
        ),
        Case(
            "a header block that does not decode",
            IDLE,
            h2frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\x0f"),
            connection(COMPRESSION_ERROR),
            "4.3",
        ),
    ]
    return cases


def frame_cases() -> list[Case]:
    """Frames whose size, payload or sequence breaks a rule, and a few that merely look odd."""
    full_window = (2**31 - 1) - 65535
    data_16385 = h2frame(DATA, 0, 1, grpc_message(bytes(16380)))
    hundred_open = b"".join(h2frame(HEADERS, END_HEADERS, 2 * i + 1, REQUEST) for i in range(100))
    return [
        Case("a frame over 16384 bytes", OPEN, data_16385, connection(FRAME_SIZE_ERROR), "4.2"),
        Case(
            "DATA padding as long as the frame",
            OPEN,
            h2frame(DATA, PADDED, 1, b"\x05abcd"),
            connection(PROTOCOL_ERROR),
            "6.1",
        ),
        Case(
            "DATA, padded",
            OPEN,
            h2frame(DATA, PADDED, 1, b"\x03" + MESSAGE + b"\0\0\0"),
            "accepted",
            "6.1",
        ),
        Case(
            "HEADERS padding as long as the frame",
            IDLE,
            h2frame(HEADERS, PADDED | END_HEADERS, 1, b"\x10abcd"),
            connection(PROTOCOL_ERROR),
            "6.2",
        ),
        Case(
            "HEADERS, padded and prioritised",
            IDLE,
            h2frame(
                HEADERS,
                PADDED | HAS_PRIORITY | END_HEADERS,
                1,
                b"\x02" + u32(0) + b"\x10" + REQUEST + b"\0\0",
            ),
            "accepted",
            "6.2",
        ),
        Case(
            "HEADERS too short for its priority",
            IDLE,
            h2frame(HEADERS, HAS_PRIORITY | END_HEADERS, 1, b"\0\0\0"),
            connection(FRAME_SIZE_ERROR),
            "4.2: a frame carrying a field block",
        ),
        Case(
            "HEADERS depending on their own stream",
            IDLE,
            h2frame(
                HEADERS, HAS_PRIORITY | END_HEADERS | END_STREAM, 1, u32(1) + b"\x10" + REQUEST
            ),
            MALFORMED,
            "5.3.1",
        ),
        Case(
            "HEADERS, then CONTINUATION",
            IDLE,
            h2frame(HEADERS, 0, 1, REQUEST[:7])
            + h2frame(CONTINUATION, END_HEADERS, 1, REQUEST[7:]),
            "accepted",
            "6.10",
        ),
        Case(
            "a header block interrupted by PING",
            IDLE,
            h2frame(HEADERS, 0, 1, REQUEST[:7]) + h2frame(PING, 0, 0, bytes(8)),
            connection(PROTOCOL_ERROR),
            "6.10",
        ),
        Case(
            "a header block continued on another stream",
            IDLE,
            h2frame(HEADERS, 0, 1, REQUEST[:7])
            + h2frame(CONTINUATION, END_HEADERS, 3, REQUEST[7:]),
            connection(PROTOCOL_ERROR),
            "6.10",
        ),
        Case(
            "PRIORITY of 4 bytes",
            OPEN,
            h2frame(PRIORITY, 0, 1, u32(0)),
            stream(FRAME_SIZE_ERROR),
            "6.3",
        ),
        Case(
            "PRIORITY depending on its own stream",
            OPEN,
            h2frame(PRIORITY, 0, 1, u32(1) + b"\x10"),
            stream(PROTOCOL_ERROR),
            "5.3.1",
        ),
        Case(
            "RST_STREAM of 3 bytes",
            OPEN,
            h2frame(RST_STREAM, 0, 1, b"\0\0\x08"),
            connection(FRAME_SIZE_ERROR),
            "6.4",
        ),
        Case(
            "SETTINGS of 5 bytes",
            OPEN,
            h2frame(SETTINGS, 0, 0, bytes(5)),
            connection(FRAME_SIZE_ERROR),
            "6.5",
        ),
        Case(
            "SETTINGS ACK with a payload",
            OPEN,
            h2frame(SETTINGS, ACK, 0, setting(ENABLE_PUSH, 0)),
            connection(FRAME_SIZE_ERROR),
            "6.5",
        ),
        Case(
            "SETTINGS_ENABLE_PUSH of 2",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(ENABLE_PUSH, 2)),
            connection(PROTOCOL_ERROR),
            "6.5.2",
        ),
        Case(
            "SETTINGS_INITIAL_WINDOW_SIZE of 2^31",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 2**31)),
            connection(FLOW_CONTROL_ERROR),
            "6.5.2",
        ),
        Case(
            "SETTINGS_MAX_FRAME_SIZE of 16383",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 16383)),
            connection(PROTOCOL_ERROR),
            "6.5.2",
        ),
        Case(
            "SETTINGS_MAX_FRAME_SIZE of 2^24",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 2**24)),
            connection(PROTOCOL_ERROR),
            "6.5.2",
        ),
        Case(
            "SETTINGS_ENABLE_CONNECT_PROTOCOL of 2",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(0x8, 2)),
            connection(PROTOCOL_ERROR),
            "RFC 8441 3",
            h2_accepts="h2 does not check RFC 8441's setting",
        ),
        Case(
            "an unknown setting",
            OPEN,
            h2frame(SETTINGS, 0, 0, setting(0x99, 7)),
            "accepted",
            "6.5.2",
        ),
        Case(
            "PING of 7 bytes",
            OPEN,
            h2frame(PING, 0, 0, bytes(7)),
            connection(FRAME_SIZE_ERROR),
            "6.7",
        ),
        Case("PING ACK", OPEN, h2frame(PING, ACK, 0, bytes(8)), "accepted", "6.7"),
        Case(
            "GOAWAY of 7 bytes",
            OPEN,
            h2frame(GOAWAY, 0, 0, bytes(7)),
            connection(FRAME_SIZE_ERROR),
            "6.8",
        ),
        Case(
            "WINDOW_UPDATE of 3 bytes",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 1, b"\0\0\x01"),
            connection(FRAME_SIZE_ERROR),
            "6.9",
        ),
        Case(
            "WINDOW_UPDATE of 0 for the connection",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 0, u32(0)),
            connection(PROTOCOL_ERROR),
            "6.9",
        ),
        Case(
            "WINDOW_UPDATE of 0 for a stream",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 1, u32(0)),
            stream(PROTOCOL_ERROR),
            "6.9",
        ),
        Case(
            "the connection's window past 2^31-1",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 0, u32(2**31 - 1)),
            connection(FLOW_CONTROL_ERROR),
            "6.9.1",
        ),
        Case(
            "a stream's window past 2^31-1",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 1, u32(2**31 - 1)),
            stream(FLOW_CONTROL_ERROR),
            "6.9.1",
        ),
        Case(
            "SETTINGS_INITIAL_WINDOW_SIZE that takes a stream's window past 2^31-1",
            OPEN,
            h2frame(WINDOW_UPDATE, 0, 1, u32(full_window))
            + h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 65536)),
            connection(FLOW_CONTROL_ERROR),
            "6.9.2",
        ),
        Case(
            "a 101st open stream",
            IDLE,
            hundred_open + h2frame(HEADERS, END_HEADERS, 201, REQUEST),
            stream(REFUSED_STREAM),
            "5.1.2",
        ),
        Case(
            "a stream opened after the client's GOAWAY",
            IDLE,
            h2frame(GOAWAY, 0, 0, bytes(8)) + h2frame(HEADERS, END_HEADERS, 1, REQUEST),
            connection(PROTOCOL_ERROR),
            "6.8: its sender opens no more streams",
        ),
        Case(
            "no SETTINGS after the preface",
            IDLE,
            h2frame(PING, 0, 0, bytes(8)),
            connection(PROTOCOL_ERROR),
            "3.4",
            h2_accepts="h2 does not check that SETTINGS comes first",
            client_start=PREFACE,
        ),
    ]


CASES = generated_cases() + field_cases() + frame_cases()


# ---------------------------------------------------------------------- running a case


def our_verdict(frames: list[Frame]) -> Verdict:
    verdict = Verdict()
    for f in frames:
        if f.kind == GOAWAY and f.error_code != NO_ERROR:
            verdict.connection_error = f.error_code
        elif f.kind == RST_STREAM and f.error_code != NO_ERROR:
            verdict.stream_errors.setdefault(f.stream_id, f.error_code)
    return verdict


def run_ours(served: Served, case: Case) -> tuple[Verdict, Verdict]:
    """(the verdict on the last step that sets the state, the verdict on the case's frames)."""
    client = RawClient(served.path)
    try:
        client.send(case.client_start)
        steps = STATES[case.state][1]
        before = Verdict()
        for step in steps:
            client.send(step)
            before = our_verdict(client.frames_until_ping_ack())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # closed midway
            client.send(case.frames)
        return before, our_verdict(client.frames_until_ping_ack())
    finally:
        client.close()


def run_h2(case: Case) -> tuple[Verdict, Verdict]:
    reference = ReferenceServer()
    reference.receive(case.client_start)
    before = Verdict()
    for step in STATES[case.state][1]:
        before = reference.receive(step)
        reference.verdict = Verdict(before.connection_error)  # stream errors: per step
    return before, reference.receive(case.frames)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_server_refuses_what_h2_refuses_as_the_rfc_says(served: Served, case: Case) -> None:
    h2_before, h2_after = run_h2(case)
    ours_before, ours_after = run_ours(served, case)
    assert ours_before.kind() == h2_before.kind(), "the steps to the stream state differ"
    assert ours_after.kind() == case.expected, f"RFC 9113 {case.rfc}"
    if h2_after.refused:
        assert ours_after.refused, f"h2 refuses: {h2_after.kind()}"
    else:
        assert not ours_after.refused or case.h2_accepts, "h2 accepts it; say why we do not"
    assert_a_new_client_is_served(served)


def test_every_frame_type_meets_every_stream_state() -> None:
    names = {case.name for case in CASES}
    assert len(STATES) * len(FRAMES) == len(generated_cases())
    assert {f"{kind} on {state}" for state in STATES for kind in FRAMES} <= names


# ---------------------------------------------------------------------- hypothesis

STREAM_IDS = st.sampled_from([0, 1, 1, 1, 2, 3, 3, 5])
FLAGS = st.sampled_from(
    [0, END_STREAM, END_HEADERS, END_STREAM | END_HEADERS, PADDED, HAS_PRIORITY | END_HEADERS, ACK]
) | st.integers(0, 255)
BLOCKS = st.sampled_from(
    [
        REQUEST,
        HOLD_REQUEST,
        literal_block([("x-trailer", "1")]),
        literal_block(request_fields(INLINE_ECHO, ("content-length", "7"))),
        REQUEST[:9],
    ]
)
PAYLOADS = {
    DATA: st.sampled_from([MESSAGE, MESSAGE[:3], MESSAGE[3:], b"", b"\x01" + MESSAGE[1:]])
    | st.binary(max_size=24),
    HEADERS: BLOCKS | st.binary(max_size=24),
    PRIORITY: st.binary(min_size=5, max_size=5) | st.binary(max_size=7),
    RST_STREAM: st.sampled_from([u32(CANCEL), u32(0)]) | st.binary(max_size=5),
    SETTINGS: st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 2**32 - 1)).map(lambda p: setting(*p)),
        max_size=3,
    ).map(b"".join)
    | st.binary(max_size=8),
    PUSH_PROMISE: st.binary(max_size=12),
    PING: st.binary(min_size=8, max_size=8) | st.binary(max_size=9),
    GOAWAY: st.binary(min_size=8, max_size=12),
    WINDOW_UPDATE: st.integers(0, 2**31).map(u32) | st.binary(max_size=5),
    CONTINUATION: BLOCKS | st.binary(max_size=12),
}


@st.composite
def frame_streams(draw: st.DrawFn) -> list[bytes]:
    """Up to 10 frames; a GOAWAY ends the stream: h2 takes the connection as closed once
    the client sent one and refuses any frame after it, where RFC 9113 6.8 lets the client
    finish its streams (the server refuses only a new stream then: see the table)."""
    frames = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from([*PAYLOADS, 0x20]))
        payload = draw(PAYLOADS.get(kind, st.binary(max_size=8)))
        frames.append(h2frame(kind, draw(FLAGS), draw(STREAM_IDS), payload))
        if kind == GOAWAY:
            break
    return frames


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=frame_streams())
def test_frame_streams_never_stop_the_loop_or_touch_another_connection(
    served: Served, frames: list[bytes]
) -> None:
    """A bystander keeps one connection through every example; each example is a new
    connection. Whatever h2 refuses, the server refuses too."""
    bystander = getattr(served, "bystander", None)
    if bystander is None:
        bystander = served.bystander = RawClient(served.path)
        bystander.start()
        served.next_stream = 1
    wire = b"".join(frames)
    expected = ReferenceServer()
    expected.receive(CLIENT_START)
    reference = expected.receive(wire)
    client = RawClient(served.path)
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.send(CLIENT_START + wire)
        ours = our_verdict(client.frames_until_ping_ack())
    finally:
        client.close()
    if reference.refused:
        assert ours.refused, f"h2 refuses ({reference.kind()}), the server does not"
    assert served.server._thread.is_alive()
    stream_id, served.next_stream = served.next_stream, served.next_stream + 2
    bystander.request(stream_id, INLINE_ECHO, b"%d" % stream_id)
    assert bystander.response(stream_id).message == b"%d" % stream_id
