"""The gRPC server's limits, each against the attack it bounds, and gRPC's own rules.

In-process servers (the `served` fixture) where the server's own state is the measure;
the built executable where the process is (its memory, its errors, its GOAWAY).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hpack
import pytest
from harness.grpc_served import (
    ECHO,
    HOLD,
    INLINE_ECHO,
    NO_BDP,
    SLOW_ECHO,
    Served,
    start_tls_server,
    unary,
)
from harness.plugin import PROVIDER_EXE, PluginProcess, make_client_certificate, plugin_env
from harness.raw_http2 import (
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    NO_ERROR,
    PING,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    RawClient,
    grpc_message,
    h2frame,
    literal_block,
    request_fields,
    setting,
)

from tfprovider_immuta_pg.protocol import grpc_server
from tfprovider_immuta_pg.protocol.grpc_server import (
    MAX_CALLS,
    MAX_CONTINUATIONS,
    MAX_HEADER_BLOCK,
    OUTBOUND_HIGH,
    REQUEST_BUDGET,
    STREAM_WINDOW,
    Route,
    WorkerPool,
)
from tfprovider_immuta_pg.protocol.tls import (
    _x509_time,
    generate_certificate,
)

pytest_plugins = ["harness.grpc_fixtures"]

MIB = 1024 * 1024


def the_connection(served: Served) -> grpc_server._Connection:
    """The server's one connection (the test's raw client)."""
    deadline = time.monotonic() + 5
    while len(served.server._connections) != 1:
        assert time.monotonic() < deadline, "no single connection"
        time.sleep(0.01)
    return next(iter(served.server._connections))


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def answered_within(served: Served, seconds: float) -> bool:
    """A new client's call answered within `seconds` (a liveness bound, not a speed one)."""
    with served.channel() as channel:
        return unary(channel, INLINE_ECHO)(b"bystander", timeout=seconds) == b"bystander"


# ---------------------------------------------------------------------- what is announced


def test_the_server_announces_its_limits(served: Served) -> None:
    client = RawClient(served.path)
    try:
        frames = client.start()
    finally:
        client.close()
    settings = next(f for f in frames if f.kind == SETTINGS and not f.flags & 1)
    announced = {
        int.from_bytes(settings.payload[i : i + 2], "big"): int.from_bytes(
            settings.payload[i + 2 : i + 6], "big"
        )
        for i in range(0, len(settings.payload), 6)
    }
    assert announced == {
        MAX_CONCURRENT_STREAMS: 100,
        INITIAL_WINDOW_SIZE: 65535,
        MAX_HEADER_LIST_SIZE: 32768,
    }
    raise_window = next(f for f in frames if f.kind == WINDOW_UPDATE)
    assert raise_window.stream_id == 0
    assert int.from_bytes(raise_window.payload, "big") == 16 * MIB - 65535


# ---------------------------------------------------------------------- request bytes


def push_until_stalled(client: RawClient, remaining: dict[int, int]) -> int:
    """Send each stream's body (zeros) as far as the server's windows allow, until they
    stay shut for 0.3 s; the bytes sent."""
    sent, chunk = 0, bytes(16384)
    last_progress = time.monotonic()
    while time.monotonic() - last_progress < 0.3:
        for stream_id in remaining:
            while remaining[stream_id] and (room := client.window(stream_id)) > 0:
                size = min(16384, room, remaining[stream_id])
                client.send(h2frame(DATA, 0, stream_id, chunk[:size]))
                client.send_window -= size
                client.stream_windows[stream_id] = client.stream_windows.get(stream_id, 0) - size
                remaining[stream_id] -= size
                sent += size
                last_progress = time.monotonic()
        with contextlib.suppress(TimeoutError):  # take the WINDOW_UPDATEs that came
            while True:
                client.kept.append(client._receive(0.01))
    return sent


def open_large_requests(client: RawClient, count: int, size: int) -> dict[int, int]:
    """`count` requests on streams 1, 3, ... whose prefix announces `size` bytes; what each
    still has to send."""
    for number in range(count):
        stream_id = 2 * number + 1
        block = client.header_block(ECHO)
        client.send(h2frame(HEADERS, END_HEADERS, stream_id, block))
        client.send_data(stream_id, b"\x00" + u32(size), end=False)
    return {2 * number + 1: size for number in range(count)}


def test_unfinished_request_bodies_hold_at_most_the_budget(served: Served, raw: RawClient) -> None:
    """16 streams of 8 MiB each, never finished: the server grew by 128 MiB before; now three
    fit the 32 MiB budget and the others wait at one stream window each."""
    sent = push_until_stalled(raw, open_large_requests(raw, 16, 8 * MIB))
    connection = the_connection(served)
    with connection.lock:
        held = sum(len(stream.body) for stream in connection.streams.values())
        parked, used = len(connection.parked), connection.budget_used
    assert held == sent + 16 * 5
    assert used <= REQUEST_BUDGET and parked == 13
    assert held <= REQUEST_BUDGET + 16 * STREAM_WINDOW
    assert answered_within(served, 5)


def test_a_message_larger_than_the_budget_is_served_alone(served: Served) -> None:
    payload = os.urandom(REQUEST_BUDGET + MIB)
    with served.channel(NO_BDP) as channel:
        assert unary(channel, ECHO)(payload, timeout=60) == payload


def test_requests_waiting_for_the_budget_are_served_when_it_frees(served: Served) -> None:
    """Four 12 MiB requests at once on one connection: two fit, two wait; none stalls."""
    payloads = [os.urandom(12 * MIB + i) for i in range(4)]
    with served.channel(NO_BDP) as channel:
        calls = [unary(channel, ECHO).future(p, timeout=60) for p in payloads]
        assert [call.result(timeout=60) for call in calls] == payloads


@pytest.mark.skipif(not PROVIDER_EXE.is_file(), reason="run ./build.sh first")
def test_the_provider_grows_by_the_budget_not_by_what_clients_send() -> None:
    """The same 16 x 8 MiB against the built executable, measured by its resident memory."""
    with PluginProcess() as process:
        with process.channel() as channel:  # load the provider first: its memory is not ours
            unary(channel, "/tfplugin6.Provider/GetProviderSchema")(b"", timeout=30)
        before = _rss(process.proc.pid)
        client = RawClient(process.handshake.address)
        try:
            client.start()
            sent = push_until_stalled(client, open_large_requests(client, 16, 8 * MIB))
            grown = _rss(process.proc.pid) - before
        finally:
            client.close()
    assert sent <= REQUEST_BUDGET + 16 * STREAM_WINDOW
    assert grown < 48 * MIB, f"grew by {grown / MIB:.1f} MiB"


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------- streams and calls


def test_grpcio_with_more_calls_than_streams_gets_every_answer(served: Served) -> None:
    """150 calls at once on one channel: the client queues what passes MAX_CONCURRENT_STREAMS."""
    with served.channel() as channel:
        calls = [unary(channel, SLOW_ECHO).future(b"%d" % i, timeout=30) for i in range(150)]
        assert [call.result(timeout=30) for call in calls] == [b"%d" % i for i in range(150)]


def counting_route(served: Served, block: threading.Event | None = None) -> list[bytes]:
    """Every path runs one call at a time (one worker), recorded; `block` holds it."""
    calls: list[bytes] = []
    pool = WorkerPool(1, "counted")

    def call(message: bytes) -> bytes:
        calls.append(message)
        if block is not None:
            block.wait(10)
        return message

    served.server.router = lambda path: Route(call=call, pool=pool)
    return calls


def test_a_burst_of_resets_runs_no_call_and_others_are_answered(
    served: Served, raw: RawClient
) -> None:
    """3000 requests each reset at once (the rapid-reset pattern) ran 3000 handlers before."""
    calls = counting_route(served)
    block = raw.header_block("/t.T/Apply")
    burst = b"".join(
        h2frame(HEADERS, END_HEADERS, stream_id, block)
        + h2frame(DATA, END_STREAM, stream_id, grpc_message(b"x"))
        + h2frame(RST_STREAM, 0, stream_id, u32(CANCEL))
        for stream_id in range(1, 6001, 2)
    )
    sender = threading.Thread(target=raw.send, args=(burst,))
    sender.start()
    assert answered_within(served, 5)
    sender.join(10)
    assert all(f.kind != GOAWAY for f in raw.frames_until_ping_ack())
    assert len(calls) <= len(burst) // (64 * 1024) + 1  # at most one per read boundary
    raw.request(6001, "/t.T/Apply", b"after")
    assert raw.response(6001).message == b"after"


def test_calls_queued_per_connection_are_capped(served: Served, raw: RawClient) -> None:
    """Calls reset while they wait for a worker still hold a place in the queue; past
    MAX_CALLS the connection is closed (ENHANCE_YOUR_CALM), and none of them runs."""
    release = threading.Event()
    calls = counting_route(served, block=release)
    try:
        raw.request(1, "/t.T/Blocker", b"first")
        raw.frames_until_ping_ack()
        frames = []
        for number in range(1, MAX_CALLS + 1):
            stream_id = 2 * number + 1
            raw.request(stream_id, "/t.T/Apply", b"queued")
            frames += raw.frames_until_ping_ack()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                raw.send(h2frame(RST_STREAM, 0, stream_id, u32(CANCEL)))
            if any(f.kind == GOAWAY for f in frames):
                break
        goaway = next(f for f in frames if f.kind == GOAWAY)
        assert goaway.error_code == ENHANCE_YOUR_CALM
        assert number == MAX_CALLS  # the first call and MAX_CALLS - 1 queued were let in
    finally:
        release.set()
    time.sleep(0.2)  # the queued calls are dequeued, found reset, and dropped
    assert calls == [b"first"]


def test_a_window_update_touches_only_the_responses_that_wait(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """99 held streams and one response held by flow control: a connection WINDOW_UPDATE
    (or SETTINGS) looks at that one response only, not at every stream."""
    looked_at: list[int] = []
    original = grpc_server._Connection._continue

    def counting(self, stream_id, *args):  # noqa: ANN001
        looked_at.append(stream_id)
        return original(self, stream_id, *args)

    monkeypatch.setattr(grpc_server._Connection, "_continue", counting)
    client = RawClient(served.path)
    try:
        client.start(setting(INITIAL_WINDOW_SIZE, 0))  # no response can send DATA
        for stream_id in range(1, 199, 2):
            client.request(stream_id, HOLD, b"")
        client.request(199, INLINE_ECHO, b"waits for window")
        client.frames_until_ping_ack()
        looked_at.clear()
        client.send(*(h2frame(WINDOW_UPDATE, 0, 0, u32(1)) for _ in range(1000)))
        client.send(*(h2frame(SETTINGS, 0, 0) for _ in range(100)))
        client.frames_until_ping_ack()
    finally:
        client.close()
    assert set(looked_at) == {199}
    assert len(looked_at) <= 1100


# ---------------------------------------------------------------------- header blocks


def test_a_header_block_in_more_than_32_continuations_is_refused(served: Served) -> None:
    """100,000 empty CONTINUATION frames were accepted; now a block may come in 33 frames."""
    for continuations, refused in ((MAX_CONTINUATIONS, False), (MAX_CONTINUATIONS + 1, True)):
        client = RawClient(served.path)
        try:
            client.start()
            block = client.header_block(INLINE_ECHO)
            client.send(
                h2frame(HEADERS, 0, 1, block),
                *(h2frame(CONTINUATION, 0, 1) for _ in range(continuations - 1)),
                h2frame(CONTINUATION, END_HEADERS, 1),
            )
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # when refused
                client.send_data(1, grpc_message(b"many pieces"))
            frames = client.frames_until_ping_ack()
        finally:
            client.close()
        goaways = [f for f in frames if f.kind == GOAWAY]
        if refused:
            assert [f.error_code for f in goaways] == [ENHANCE_YOUR_CALM]
        else:
            assert not goaways and any(f.kind == DATA for f in frames)


def test_a_header_list_that_decodes_past_the_limit_is_refused(
    served: Served, raw: RawClient
) -> None:
    """A 4000-byte entry in the HPACK table, named nine times: a small block, 36 KB of
    fields (over the 32 KiB announced)."""
    entry = b"\x40" + literal_block([("x-big", "v" * 4000)])[1:]  # literal, indexed
    block = raw.header_block(INLINE_ECHO) + entry + b"\xbe" * 8
    assert len(block) < MAX_HEADER_BLOCK
    raw.send(h2frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    goaways = [f for f in raw.read_until_closed() if f.kind == GOAWAY]
    assert [f.error_code for f in goaways] == [ENHANCE_YOUR_CALM]


def test_huffman_header_blocks_do_not_stall_other_connections(served: Served) -> None:
    """Header blocks of 30 KiB, Huffman-coded random bytes (the slowest to decode), one
    after another; another client is answered meanwhile."""
    encoder = hpack.Encoder()
    value = bytes(byte | 0x80 for byte in os.urandom(9 * 1024))  # codes of 19 to 30 bits
    block = encoder.encode(request_fields(INLINE_ECHO) + [("x-noise", value)], huffman=True)
    assert 16 * 1024 < len(block) <= MAX_HEADER_BLOCK
    client = RawClient(served.path)
    try:
        client.start()
        frames = [
            h2frame(HEADERS, 0, stream_id, block[:16384])
            + h2frame(CONTINUATION, END_HEADERS, stream_id, block[16384:])
            + h2frame(DATA, END_STREAM, stream_id, grpc_message(b"n"))
            for stream_id in range(1, 101, 2)
        ]
        sender = threading.Thread(target=client.send, args=(b"".join(frames),))
        sender.start()
        assert answered_within(served, 5)
        sender.join(10)
        answers = [f for f in client.frames_until_ping_ack(10) if f.kind == HEADERS]
        assert len(answers) == 2 * 50  # headers and trailers of each
    finally:
        client.close()


# ---------------------------------------------------------------------- the outgoing side


def test_a_client_that_never_reads_holds_at_most_a_few_mib(served: Served) -> None:
    """Windows wide open, responses of 1 MiB and PINGs, nothing read: the server stops
    framing responses and reading the connection past OUTBOUND_HIGH."""
    one_mib = bytes(MIB)
    served.server.router = lambda path: Route(call=lambda message: one_mib)
    client = RawClient(served.path)
    most = 0
    try:
        client.start(setting(INITIAL_WINDOW_SIZE, 2**31 - 1) + setting(MAX_FRAME_SIZE, 2**24 - 1))
        client.send(h2frame(WINDOW_UPDATE, 0, 0, u32(2**31 - 1 - 65535)))
        block = client.header_block("/t.T/Big")
        requests = b"".join(
            h2frame(HEADERS, END_HEADERS, sid, block)
            + h2frame(DATA, END_STREAM, sid, grpc_message(b""))
            for sid in range(1, 81, 2)
        )
        pings = h2frame(PING, 0, 0, bytes(8)) * 100_000
        sender = threading.Thread(target=_send_quietly, args=(client.sock, requests + pings))
        sender.start()
        connection = the_connection(served)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with connection.lock:
                most = max(most, len(connection.outbound) + connection.frames_out_size)
            time.sleep(0.005)
    finally:
        with contextlib.suppress(OSError):
            client.sock.shutdown(
                socket.SHUT_RDWR
            )  # the sender is blocked: the server stopped reading
        client.close()
        sender.join(10)
    assert OUTBOUND_HIGH <= most <= OUTBOUND_HIGH + 256 * 1024


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    sock.settimeout(10)
    with contextlib.suppress(OSError):
        sock.sendall(data)


# ---------------------------------------------------------------------- gRPC's rules


def request_with(client: RawClient, stream_id: int, path: str, *extra: tuple[str, str]) -> None:
    block = client.header_block(path, *extra)
    client.send(h2frame(HEADERS, END_HEADERS, stream_id, block))
    client.send_data(stream_id, grpc_message(b"m"))


def test_grpc_timeout_answers_a_held_call_with_deadline_exceeded(raw: RawClient) -> None:
    request_with(raw, 1, HOLD, ("grpc-timeout", "200m"))
    response = raw.response(1)
    assert response.status == "4" and response.headers["grpc-message"] == "deadline exceeded"


def test_grpc_timeout_cancels_a_running_call_and_drops_its_answer(
    served: Served, raw: RawClient
) -> None:
    handlers = served.handlers
    request_with(raw, 1, "/t.T/Block", ("grpc-timeout", "100m"))
    assert handlers.started.wait(5)
    response = raw.response(1)
    assert response.status == "4"
    handlers.release.set()
    assert handlers.finished.wait(5)
    raw.request(3, ECHO, b"next")
    assert raw.response(3).message == b"next"  # fails on any frame for stream 1


def test_a_call_past_its_deadline_before_it_starts_never_runs(
    served: Served, raw: RawClient
) -> None:
    release = threading.Event()
    calls = counting_route(served, block=release)
    try:
        raw.request(1, "/t.T/Blocker", b"first")
        request_with(raw, 3, "/t.T/Apply", ("grpc-timeout", "50m"))
        assert raw.next_frame_of(3).kind == HEADERS
    finally:
        release.set()
    assert raw.response(1).message == b"first"
    time.sleep(0.2)
    assert calls == [b"first"]


@pytest.mark.parametrize("value", ["1x", "123456789S", "S", "-1S"])
def test_a_malformed_grpc_timeout_is_refused(raw: RawClient, value: str) -> None:
    request_with(raw, 1, ECHO, ("grpc-timeout", value))
    response = raw.response(1)
    assert response.headers[":status"] == "400" and response.status == "13"
    assert "malformed grpc-timeout" in response.headers["grpc-message"]


@pytest.mark.parametrize(
    ("field", "http_status"),
    [(("content-type", "text/plain"), "415"), ((":method", "GET"), "405")],
)
def test_a_request_grpc_cannot_serve_gets_an_http_status(
    served: Served, raw: RawClient, field: tuple[str, str], http_status: str
) -> None:
    fields = [field if name == field[0] else (name, v) for name, v in request_fields(ECHO)]
    raw.send(
        h2frame(HEADERS, END_HEADERS, 1, literal_block(fields)),
        h2frame(DATA, END_STREAM, 1, grpc_message(b"")),
    )
    response = raw.response(1)
    assert response.headers[":status"] == http_status and response.status == "13"
    assert ECHO not in served.handlers.routed


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", "13", "the request has no message"),
        (b"\x00\x00\x00", "13", "a cut-off prefix"),
        (grpc_message(b"12345")[:-1], "13", "the request message is cut off"),
        (grpc_message(b"one") + grpc_message(b"two"), "13", "more than one message"),
        (b"\x02" + grpc_message(b"x")[1:], "13", "message flag 2"),
        (b"\x00" + u32(2**28 + 1), "8", "the limit is 268435456"),
    ],
)
def test_the_length_prefix_is_checked_against_the_body(
    served: Served, raw: RawClient, body: bytes, status: str, message: str
) -> None:
    raw.send(h2frame(HEADERS, END_HEADERS, 1, raw.header_block(ECHO)))
    raw.send(h2frame(DATA, END_STREAM, 1, body))
    response = raw.response(1)
    assert response.status == status and message in response.headers["grpc-message"]
    assert ECHO not in served.handlers.routed  # the call never started
    raw.request(3, INLINE_ECHO, b"next")
    assert raw.response(3).message == b"next"


def test_a_message_over_the_limit_is_refused_before_its_body_comes(raw: RawClient) -> None:
    """The prefix says 300 MiB: answered at once, and RST_STREAM(NO_ERROR) asks the client
    to stop sending (RFC 9113 8.1); what it sent meanwhile is ignored."""
    raw.send(h2frame(HEADERS, END_HEADERS, 1, raw.header_block(ECHO)))
    raw.send(h2frame(DATA, 0, 1, b"\x00" + u32(300 * MIB) + bytes(1000)))
    frames = raw.frames_until_ping_ack()
    answer = next(f for f in frames if f.kind == HEADERS)
    assert answer.flags & END_STREAM
    assert dict(raw.decoder.decode(answer.payload))["grpc-status"] == "8"
    resets = [f for f in frames if f.kind == RST_STREAM]
    assert [(f.stream_id, f.error_code) for f in resets] == [(1, NO_ERROR)]
    raw.send(h2frame(DATA, END_STREAM, 1, bytes(1000)))
    assert [f for f in raw.frames_until_ping_ack() if f.stream_id == 1] == []


# ---------------------------------------------------------------------- stopping


def test_stop_sends_goaway_and_finishes_the_calls_it_took(served: Served, raw: RawClient) -> None:
    """GOAWAY(NO_ERROR) names the last stream taken; a stream opened after it is not run,
    and the call in flight still gets its answer."""
    handlers = served.handlers
    raw.request(1, SLOW_ECHO, b"in flight")
    assert handlers.started.wait(5)
    stopper = threading.Thread(target=served.server.stop, kwargs={"grace": 3})
    stopper.start()
    goaway = raw.next_frame_of(0)
    while goaway.kind != GOAWAY:
        goaway = raw.next_frame_of(0)
    assert (int.from_bytes(goaway.payload[:4], "big"), goaway.error_code) == (1, NO_ERROR)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        raw.request(3, INLINE_ECHO, b"too late")
    raw.auto_window = False  # the server may close as soon as this answer is out
    assert raw.response(1).message == b"in flight"
    stopper.join(5)
    rest = raw.read_until_closed()
    assert [f for f in rest if f.stream_id == 3] == []
    assert INLINE_ECHO not in handlers.routed


@pytest.mark.skipif(not PROVIDER_EXE.is_file(), reason="run ./build.sh first")
def test_shutdown_ends_the_connection_with_goaway() -> None:
    with PluginProcess() as process:
        client = RawClient(process.handshake.address)
        try:
            client.start()
            client.request(1, "/plugin.GRPCController/Shutdown", b"")
            client.auto_window = False  # bytes the server never reads would reset the socket
            assert client.response(1).status == "0"
            frames = client.read_until_closed(10)
        finally:
            client.close()
        assert [(f.kind, f.error_code) for f in frames if f.kind == GOAWAY] == [(GOAWAY, NO_ERROR)]
        assert process.wait(timeout=10) == 0


# ---------------------------------------------------------------------- TLS


@pytest.fixture
def tls_server(start_server: Callable[..., Served]) -> tuple[Served, ssl.SSLContext]:
    return start_tls_server(start_server, generate_certificate(), make_client_certificate())


def tls_client(served: Served, context: ssl.SSLContext, **kwargs: object) -> ssl.SSLSocket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(served.path)
    return context.wrap_socket(sock, server_hostname="localhost", **kwargs)


def test_tls_sessions_never_resume(tls_server: tuple[Served, ssl.SSLContext]) -> None:
    served, context = tls_server
    first = tls_client(served, context)
    client = RawClient(sock=first)
    try:
        client.start()
        client.request(1, INLINE_ECHO, b"over tls")
        assert client.response(1).message == b"over tls"
        assert first.version() == "TLSv1.3"
        session = first.session
        assert not session.has_ticket  # TLS 1.3 resumes only from a ticket
    finally:
        client.close()
    second = tls_client(served, context, session=session)
    try:
        RawClient(sock=second).start()
        assert not second.session_reused
    finally:
        second.close()


def test_tls_1_2_is_refused(tls_server: tuple[Served, ssl.SSLContext]) -> None:
    served, context = tls_server
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_client(served, context).close()
    assert served.wait_for_log("refused a plugin client")


def test_certificate_times_past_2049_are_generalized_time() -> None:
    """RFC 5280 4.1.2.5: a ten-year certificate made after 2039 ends in GeneralizedTime."""
    assert _x509_time(2524608000.0 - 1) == b"\x17\x0d491231235959Z"  # 2049-12-31 23:59:59
    assert _x509_time(2524608000.0) == b"\x18\x0f20500101000000Z"


# ---------------------------------------------------------------------- the socket folder


def run_provider(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROVIDER_EXE)], env=plugin_env(env), capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def short_folder() -> Iterator[Path]:
    """A folder with a short path: pytest's tmp_path is too long for some socket paths."""
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="sd"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not PROVIDER_EXE.is_file(), reason="run ./build.sh first")
@pytest.mark.parametrize(
    ("problem", "said"),
    [
        ("missing", "No such file or directory"),
        ("a file", "Not a directory"),
        ("too long", "is too long"),
    ],
)
def test_a_bad_socket_folder_is_one_line_and_leaves_nothing(
    short_folder: Path, problem: str, said: str
) -> None:
    folder = {
        "missing": short_folder / "no-such-folder",
        "a file": short_folder / "file",
        "too long": short_folder / ("d" * (100 - len(str(short_folder)))),
    }[problem]
    if problem == "a file":
        folder.write_text("")
    if problem == "too long":
        folder.mkdir()
    before = sorted(short_folder.rglob("*"))
    result = run_provider({"PLUGIN_UNIX_SOCKET_DIR": str(folder)})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("terraform-provider-immuta: "), result.stderr
    assert f"PLUGIN_UNIX_SOCKET_DIR={folder}" in lines[0] and said in lines[0]
    assert sorted(short_folder.rglob("*")) == before


@pytest.mark.skipif(not PROVIDER_EXE.is_file(), reason="run ./build.sh first")
def test_a_relative_socket_folder_still_gives_an_absolute_address(short_folder: Path) -> None:
    (short_folder / "sockets").mkdir()
    with PluginProcess({"PLUGIN_UNIX_SOCKET_DIR": "sockets"}, cwd=short_folder) as process:
        address = Path(process.handshake.address)
        assert address.is_absolute() and address.parent.parent == short_folder / "sockets"
        with process.channel() as channel:
            unary(channel, "/grpc.health.v1.Health/Check")(b"", timeout=10)
