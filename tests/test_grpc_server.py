"""The hand-written gRPC server in-process: grpcio's client and raw HTTP/2 frames against it."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from harness.grpc_served import (
    BLOCK,
    BOOM,
    ECHO,
    HOLD,
    INLINE_ECHO,
    MESSAGE,
    NO_BDP,
    NOT_FOUND,
    ODD_MESSAGE,
    SLOW_ECHO,
    UNLIMITED,
    Served,
    assert_a_new_client_is_served,
    start_tls_server,
    unary,
)
from harness.plugin import ClientCertificate, make_client_certificate
from harness.raw_http2 import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HAS_PRIORITY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PROTOCOL_ERROR,
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

from tfprovider_immuta_pg.protocol.grpc_server import Route, RpcError, WorkerPool
from tfprovider_immuta_pg.protocol.tls import (
    ServerCertificate,
    client_certificate_der,
    generate_certificate,
    server_context,
)

pytest_plugins = ["harness.grpc_fixtures"]
# ---------------------------------------------------------------------- grpcio: payloads


def test_echo_8_mib_each_way_through_flow_control(served: Served) -> None:
    """8 MiB up and down: far past grpcio's 64 KiB windows, so WINDOW_UPDATEs drive both."""
    payload = os.urandom(8 * 1024 * 1024)
    with served.channel(NO_BDP) as channel:
        assert unary(channel, ECHO)(payload, timeout=10) == payload


def test_echo_inline_route(served: Served) -> None:
    """A route without a pool answers from the loop thread."""
    with served.channel() as channel:
        assert unary(channel, INLINE_ECHO)(b"inline", timeout=5) == b"inline"
        assert unary(channel, INLINE_ECHO)(b"", timeout=5) == b""


def echo_at_once(channels: list[grpc.Channel], payloads: list[bytes], timeout: float) -> list:
    """Each payload echoed on its own channel, all calls started together; closes the channels."""
    barrier = threading.Barrier(len(payloads))

    def call(index: int) -> bytes:
        barrier.wait(5)
        return unary(channels[index], ECHO)(payloads[index], timeout=10)

    try:
        with futures.ThreadPoolExecutor(len(payloads)) as pool:
            return list(pool.map(call, range(len(payloads)), timeout=timeout))
    finally:
        for channel in channels:
            channel.close()


def test_eight_concurrent_clients_get_their_own_bytes(served: Served) -> None:
    """Eight channels (eight connections), 1 MiB each, all at once."""
    payloads = [os.urandom(1024 * 1024 + i) for i in range(8)]
    channels = [served.channel(NO_BDP) for _ in payloads]
    assert echo_at_once(channels, payloads, timeout=15) == payloads


def test_many_calls_multiplexed_on_one_connection(served: Served) -> None:
    """64 concurrent calls on one channel: streams interleave on one connection."""
    payloads = [os.urandom(20_000 + i) for i in range(64)]
    with served.channel(NO_BDP) as channel:
        echo = unary(channel, ECHO)
        calls = [echo.future(p, timeout=10) for p in payloads]
        assert [c.result(timeout=10) for c in calls] == payloads


def test_two_servers_in_one_process_do_not_mix_bytes(start_server: Callable[..., Served]) -> None:
    """Two servers, each with its loop thread, echoing at the same time.

    Found a bug, since fixed: every loop thread received into one module-level buffer, so one
    server's recv overwrote bytes the other had not copied yet; it parsed garbage, sent
    GOAWAY FRAME_SIZE_ERROR and grpcio reported UNAVAILABLE. Each server now has its own.
    """
    servers = [start_server(), start_server()]
    jobs = [(s, os.urandom(2 * 1024 * 1024 + i)) for i in range(4) for s in servers]
    payloads = [payload for _, payload in jobs]
    channels = [s.channel(NO_BDP) for s, _ in jobs]
    assert echo_at_once(channels, payloads, timeout=20) == payloads


# ---------------------------------------------------------------------- grpcio: statuses


def test_unknown_method_is_unimplemented(served: Served) -> None:
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/t.T/Nobody")(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "/t.T/Nobody" in caught.value.details()


def test_rpc_error_becomes_its_status(served: Served) -> None:
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, NOT_FOUND)(b"x", timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "nope"


def test_handler_exception_is_internal_and_logged(served: Served) -> None:
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, BOOM)(b"x", timeout=5)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert "boom" in caught.value.details()
    assert served.wait_for_log("RPC handler failed")
    # the connection is still good
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"after", timeout=5) == b"after"


def test_status_message_is_percent_encoded_and_round_trips(served: Served) -> None:
    """Non-ASCII, '%', tabs and newlines reach grpcio's details() exactly."""
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, MESSAGE)(b"", timeout=5)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == ODD_MESSAGE


def test_status_message_on_the_wire(served: Served, raw: RawClient) -> None:
    """A trailers-only response: :status 200, grpc-status, grpc-message percent-encoded."""
    raw.request(1, MESSAGE, b"")
    response = raw.response(1)
    assert response.body == b"" and response.trailers == {}
    assert response.headers[":status"] == "200"
    assert response.headers["content-type"] == "application/grpc"
    assert response.headers["grpc-status"] == "9"
    wire = response.headers["grpc-message"]
    assert wire.isascii() and "%25" in wire and "%0A" in wire and "%E2%9C%93" in wire
    assert " " in wire  # printable ASCII stays as it is


# ---------------------------------------------------------------------- held streams, deadlines


def test_held_call_hits_its_deadline_and_the_server_goes_on(served: Served) -> None:
    with served.channel() as channel:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            unary(channel, HOLD)(b"", timeout=0.5)
        assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3
        assert unary(channel, ECHO)(b"same channel", timeout=5) == b"same channel"
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"new channel", timeout=5) == b"new channel"


def test_held_stream_stays_open_while_other_calls_are_served(
    served: Served, raw: RawClient
) -> None:
    raw.request(1, HOLD, b"")
    for stream_id in (3, 5, 7):
        raw.request(stream_id, ECHO, b"%d" % stream_id)
        response = raw.response(stream_id)
        assert response.message == b"%d" % stream_id and response.status == "0"
    raw.expect_silence(0.2)  # nothing ever comes for stream 1


# ---------------------------------------------------------------------- raw frames


def test_server_settings_and_settings_ack(served: Served) -> None:
    client = RawClient(served.path)
    try:
        frames = client.start()
    finally:
        client.close()
    settings = [f for f in frames if f.kind == SETTINGS and not f.flags & ACK]
    assert len(settings) == 1 and settings[0].stream_id == 0
    assert len(settings[0].payload) % 6 == 0
    acks = [f for f in frames if f.kind == SETTINGS and f.flags & ACK]
    assert len(acks) == 1 and acks[0].payload == b""
    assert frames.index(settings[0]) < frames.index(acks[0])


def test_server_settings_come_before_the_client_speaks(served: Served) -> None:
    """In plaintext the server's SETTINGS go out on accept."""
    client = RawClient(served.path)
    try:
        assert client.read_frame(5).kind == SETTINGS
    finally:
        client.close()


def test_ping_is_acknowledged_with_its_payload(raw: RawClient) -> None:
    raw.send(h2frame(PING, ACK, 0, b"not-echo"))  # an ACK is never answered
    raw.send(h2frame(PING, 0, 0, b"12345678"))
    f = raw.read_frame()
    while f.kind == WINDOW_UPDATE:
        f = raw.read_frame()
    assert (f.kind, f.flags, f.stream_id, f.payload) == (PING, ACK, 0, b"12345678")
    raw.expect_silence(0.1)


def test_headers_continued_by_continuation(raw: RawClient) -> None:
    block = raw.header_block(ECHO)
    raw.send(
        h2frame(HEADERS, 0, 1, block[:5]),
        h2frame(CONTINUATION, 0, 1, block[5:9]),
        h2frame(CONTINUATION, END_HEADERS, 1, block[9:]),
        h2frame(DATA, END_STREAM, 1, grpc_message(b"continued")),
    )
    response = raw.response(1)
    assert response.message == b"continued" and response.status == "0"


def test_headers_with_end_stream_and_continuation(raw: RawClient) -> None:
    """END_STREAM on HEADERS applies once CONTINUATION ends the block: a request without
    a message, which gRPC refuses (a unary call has exactly one)."""
    block = raw.header_block(ECHO)
    raw.send(
        h2frame(HEADERS, END_STREAM, 1, block[:3]),
        h2frame(CONTINUATION, END_HEADERS, 1, block[3:]),
    )
    response = raw.response(1)
    assert response.body == b"" and response.status == "13"
    assert response.headers["grpc-message"] == "the request has no message"


def test_padded_and_prioritised_frames(raw: RawClient) -> None:
    block = raw.header_block(ECHO)
    priority = (0).to_bytes(4, "big") + b"\x10"
    raw.send(
        h2frame(PRIORITY, 0, 1, priority),
        h2frame(
            HEADERS, END_HEADERS | PADDED | HAS_PRIORITY, 1, b"\x03" + priority + block + b"\0" * 3
        ),
        h2frame(DATA, PADDED, 1, b"\x04" + grpc_message(b"padded")[:4] + b"\0" * 4),
        h2frame(DATA, PADDED | END_STREAM, 1, b"\x02" + grpc_message(b"padded")[4:] + b"\0\0"),
    )
    response = raw.response(1)
    assert response.message == b"padded"


def test_request_dribbled_one_byte_at_a_time(served: Served) -> None:
    client = RawClient(served.path)
    try:
        wire = PREFACE + h2frame(SETTINGS, 0, 0)
        wire += h2frame(HEADERS, END_HEADERS, 1, client.header_block(ECHO))
        wire += h2frame(DATA, END_STREAM, 1, grpc_message(b"dribble"))
        for i in range(len(wire)):
            client.sock.sendall(wire[i : i + 1])
        assert client.response(1).message == b"dribble"
    finally:
        client.close()


def test_interleaved_streams_on_one_connection(raw: RawClient) -> None:
    """Two requests whose frames interleave; the HPACK table carries over between them."""
    first, second = grpc_message(b"a" * 3000), grpc_message(b"b" * 5000)
    raw.send(
        h2frame(HEADERS, END_HEADERS, 1, raw.header_block(ECHO)),
        h2frame(HEADERS, END_HEADERS, 3, raw.header_block(INLINE_ECHO)),
        h2frame(DATA, 0, 1, first[:1000]),
        h2frame(DATA, 0, 3, second[:10]),
        h2frame(DATA, END_STREAM, 3, second[10:]),
        h2frame(DATA, END_STREAM, 1, first[1000:]),
    )
    data: dict[int, bytes] = {1: b"", 3: b""}
    ended: set[int] = set()
    while ended != {1, 3}:
        f = raw.read_frame()
        if f.kind == DATA:
            data[f.stream_id] += f.payload
        elif f.kind == HEADERS and f.flags & END_STREAM:
            ended.add(f.stream_id)
    assert data == {1: first, 3: second}


def test_response_respects_the_clients_stream_window(raw: RawClient) -> None:
    """INITIAL_WINDOW_SIZE 100: 100 bytes, then only what each WINDOW_UPDATE allows."""
    raw.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 100)))
    raw.request(1, ECHO, b"z" * 995)  # 1000 bytes framed
    got = bytearray()
    assert raw.next_frame_of(1).kind == HEADERS
    raw.read_data(1, got, 100)
    raw.expect_silence(0.2)
    raw.send(h2frame(WINDOW_UPDATE, 0, 1, (400).to_bytes(4, "big")))
    raw.read_data(1, got, 500)
    raw.expect_silence(0.2)
    # a larger INITIAL_WINDOW_SIZE applies to the stream in flight (RFC 9113 6.9.2)
    raw.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 600)))
    while True:
        f = raw.next_frame_of(1)
        if f.kind == HEADERS:
            break
        got += f.payload
    assert f.flags & END_STREAM
    assert bytes(got) == grpc_message(b"z" * 995)


def test_response_respects_the_connection_window(raw: RawClient) -> None:
    """A 200 KB response needs connection WINDOW_UPDATEs beyond the first 65535 bytes."""
    raw.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 1 << 20)))
    payload = os.urandom(200_000)
    raw.request(1, ECHO, payload)
    body = bytearray()
    assert raw.next_frame_of(1).kind == HEADERS
    raw.read_data(1, body, 65535)
    raw.expect_silence(0.2)
    while True:
        raw.send(h2frame(WINDOW_UPDATE, 0, 0, (50_000).to_bytes(4, "big")))
        received = 0
        while received < 50_000 and len(body) < 200_005:
            f = raw.next_frame_of(1)
            assert f.kind == DATA
            body += f.payload
            received += len(f.payload)
        if len(body) == 200_005:
            break
        assert received == 50_000
        raw.expect_silence(0.05)
    f = raw.next_frame_of(1)
    assert f.kind == HEADERS and f.flags & END_STREAM
    assert bytes(body) == grpc_message(payload)


@pytest.mark.parametrize("max_frame", [16384, 20000])
def test_data_frames_respect_max_frame_size(served: Served, max_frame: int) -> None:
    client = RawClient(served.path)
    try:
        settings = setting(INITIAL_WINDOW_SIZE, 1 << 20)
        if max_frame != 16384:
            settings += setting(MAX_FRAME_SIZE, max_frame)
        client.start(settings)
        payload = os.urandom(100_000)
        client.request(1, ECHO, payload)
        response = client.response(1)
        assert response.message == payload
        assert max(response.data_sizes) == max_frame
    finally:
        client.close()


def test_compressed_message_is_unimplemented(raw: RawClient) -> None:
    """The compressed flag set: the server never negotiated compression."""
    raw.send(
        h2frame(HEADERS, END_HEADERS, 1, raw.header_block(ECHO)),
        h2frame(DATA, END_STREAM, 1, b"\x01" + grpc_message(b"zip")[1:]),
    )
    response = raw.response(1)
    assert response.body == b"" and response.headers["grpc-status"] == "12"
    raw.request(3, ECHO, b"plain")
    assert raw.response(3).message == b"plain"


def test_unknown_method_on_the_wire(raw: RawClient) -> None:
    raw.request(1, "/t.T/Nobody", b"")
    response = raw.response(1)
    assert response.headers[":status"] == "200" and response.headers["grpc-status"] == "12"
    assert response.trailers == {} and response.body == b""


def test_oversized_frame_gets_goaway_frame_size_error(served: Served, raw: RawClient) -> None:
    raw.send(h2frame(HEADERS, END_HEADERS, 1, b"\x00" * 16385))
    goaways = [f for f in raw.read_until_closed() if f.kind == GOAWAY]
    assert len(goaways) == 1
    assert int.from_bytes(goaways[0].payload[4:8], "big") == FRAME_SIZE_ERROR
    assert served.wait_for_log("closed a client that broke HTTP/2")


def test_interrupted_header_block_gets_goaway_protocol_error(raw: RawClient) -> None:
    raw.send(
        h2frame(HEADERS, 0, 1, raw.header_block(ECHO)),
        h2frame(PING, 0, 0, b"12345678"),
    )
    frames = raw.read_until_closed()
    goaways = [f for f in frames if f.kind == GOAWAY]
    assert len(goaways) == 1
    assert int.from_bytes(goaways[0].payload[4:8], "big") == PROTOCOL_ERROR
    assert not [f for f in frames if f.kind == PING]


def test_endless_continuation_is_cut_off(served: Served, raw: RawClient) -> None:
    """A header block that never ends must not grow without bound (here 2 MiB of it): the
    server stops at 32 KiB, before decoding any of it."""
    raw.send(h2frame(HEADERS, 0, 1, raw.header_block(ECHO)))
    piece = h2frame(CONTINUATION, 0, 1, b"\x00" * 16384)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(128):
            raw.send(piece)
    goaways = [f for f in raw.read_until_closed() if f.kind == GOAWAY]
    assert len(goaways) == 1
    assert goaways[0].error_code == ENHANCE_YOUR_CALM
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"still serving", timeout=5) == b"still serving"


def test_garbage_preface_is_closed_and_server_goes_on(served: Served) -> None:
    client = RawClient(served.path)
    try:
        client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        client.read_until_closed(5)
    finally:
        client.close()
    assert_a_new_client_is_served(served)
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"grpcio too", timeout=5) == b"grpcio too"


def test_client_closing_mid_request_does_not_hurt(served: Served) -> None:
    client = RawClient(served.path)
    client.start()
    client.send(h2frame(HEADERS, END_HEADERS, 1, client.header_block(ECHO)))
    client.send(h2frame(DATA, 0, 1, grpc_message(b"x" * 1000)[:500]))
    client.close()
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"fine", timeout=5) == b"fine"


# ---------------------------------------------------------------------- RST_STREAM


def test_rst_stream_on_a_pooled_call(served: Served, raw: RawClient) -> None:
    """The worker's late answer to a reset stream is dropped; the connection goes on."""
    handlers = served.handlers
    raw.request(1, BLOCK, b"one")
    assert handlers.started.wait(5)
    raw.send(h2frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")))
    raw.send(h2frame(PING, 0, 0, b"barrier!"))  # its ACK means the reset was read
    while (f := raw.read_frame()).kind != PING:
        assert f.stream_id != 1, f"frame for the reset stream: {f}"
    handlers.release.set()
    assert handlers.finished.wait(5)
    raw.request(3, ECHO, b"next")
    response = raw.response(3)  # fails on any frame for stream 1
    assert response.message == b"next" and response.status == "0"
    raw.expect_silence(0.1)


def test_rst_stream_while_a_response_waits_for_window(raw: RawClient) -> None:
    """A reset stream whose response is parked on flow control is forgotten."""
    raw.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 10)))
    raw.request(1, ECHO, b"q" * 1000)
    while raw.read_frame().kind != DATA:
        pass
    raw.send(h2frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")))
    raw.send(h2frame(WINDOW_UPDATE, 0, 1, (5000).to_bytes(4, "big")))
    raw.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 1 << 16)))
    raw.request(3, INLINE_ECHO, b"after reset")
    response = raw.response(3)  # fails on any frame for stream 1
    assert response.message == b"after reset"


def test_grpcio_cancel_of_a_pooled_call(served: Served) -> None:
    handlers = served.handlers
    with served.channel() as channel:
        call = unary(channel, BLOCK).future(b"one", timeout=10)
        assert handlers.started.wait(5)
        assert call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result(timeout=5)
        handlers.release.set()
        assert handlers.finished.wait(5)
        assert unary(channel, ECHO)(b"same channel", timeout=5) == b"same channel"
    with served.channel() as channel:
        assert unary(channel, ECHO)(b"new channel", timeout=5) == b"new channel"


# ---------------------------------------------------------------------- mutual TLS


@pytest.fixture(scope="module")
def server_certificate() -> ServerCertificate:
    return generate_certificate()


@pytest.fixture(scope="module")
def announced_client() -> ClientCertificate:
    return make_client_certificate("secp256r1")


@pytest.fixture
def tls_served(
    start_server: Callable[..., Served],
    server_certificate: ServerCertificate,
    announced_client: ClientCertificate,
) -> Served:
    return start_server(
        tls_context_factory=lambda: server_context(server_certificate, announced_client.cert_pem),
        expected_client_der=client_certificate_der(announced_client.cert_pem),
    )


def tls_channel(
    served: Served, server_certificate: ServerCertificate, client: ClientCertificate | None
) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=server_certificate.cert_pem,
        private_key=client.key_pem.encode() if client else None,
        certificate_chain=client.cert_pem.encode() if client else None,
    )
    options = [
        ("grpc.ssl_target_name_override", "localhost"),
        ("grpc.use_local_subchannel_pool", 1),
        *UNLIMITED,
    ]
    return grpc.secure_channel(f"unix:{served.path}", credentials, options=options)


def signed_by(issuer: ClientCertificate) -> ClientCertificate:
    """A client certificate the announced one (a CA) signed: it verifies, yet is not it."""
    issuer_key = serialization.load_pem_private_key(issuer.key_pem.encode(), None)
    issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ClientCertificate(
        cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()
    )


def test_tls_with_the_announced_client_certificate(
    tls_served: Served, server_certificate: ServerCertificate, announced_client: ClientCertificate
) -> None:
    with tls_channel(tls_served, server_certificate, announced_client) as channel:
        assert unary(channel, ECHO)(b"secret", timeout=10) == b"secret"
        payload = os.urandom(3 * 1024 * 1024)
        assert unary(channel, ECHO)(payload, timeout=10) == payload
    assert "refused a plugin client" not in tls_served.log_messages()


@pytest.mark.parametrize("who", ["stranger", "signed-by-announced", "no-certificate"])
def test_tls_refuses_other_clients(
    tls_served: Served,
    server_certificate: ServerCertificate,
    announced_client: ClientCertificate,
    who: str,
) -> None:
    client = {
        "stranger": make_client_certificate("secp256r1"),
        "signed-by-announced": signed_by(announced_client),
        "no-certificate": None,
    }[who]
    with (
        tls_channel(tls_served, server_certificate, client) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        unary(channel, ECHO)(b"let me in", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert tls_served.wait_for_log("refused a plugin client")
    # the rightful client still gets in
    with tls_channel(tls_served, server_certificate, announced_client) as channel:
        assert unary(channel, ECHO)(b"me", timeout=10) == b"me"


def test_tls_refuses_plaintext(tls_served: Served) -> None:
    with tls_served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, ECHO)(b"plain", timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert tls_served.wait_for_log("refused a plugin client")


def test_tls_p521_client_over_raw_http2(
    start_server: Callable[..., Served], server_certificate: ServerCertificate
) -> None:
    """Terraform's P-521 client key, which grpcio cannot present: Python's ssl as the client."""
    client_cert = make_client_certificate("secp521r1")
    served, context = start_tls_server(start_server, server_certificate, client_cert)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(served.path)
    tls = context.wrap_socket(sock, server_hostname="localhost")
    client = RawClient(sock=tls)
    try:
        assert tls.selected_alpn_protocol() == "h2"
        client.start()
        payload = os.urandom(300_000)
        client.send(h2frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 1 << 20)))
        client.request(1, ECHO, payload)
        assert client.response(1).message == payload
        client.send(h2frame(PING, 0, 0, b"tls ping"))
        while (f := client.read_frame()).kind != PING:
            pass
        assert f.flags & ACK and f.payload == b"tls ping"
    finally:
        client.close()


def test_tls_context_factory_failure_refuses_every_client(
    start_server: Callable[..., Served],
) -> None:
    def broken() -> ssl.SSLContext:
        raise RuntimeError("no context")

    served = start_server(tls_context_factory=broken, expected_client_der=b"x")
    assert served.wait_for_log("TLS set-up failed; every connection will be refused")
    deadline = time.monotonic() + 5  # the listener is closed right after the log line
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        with sock:
            try:
                sock.connect(served.path)
            except ConnectionRefusedError:
                break
        assert time.monotonic() < deadline, "the listener still accepts"
        time.sleep(0.01)


# ---------------------------------------------------------------------- stop()


def connect_after_stop(path: str) -> None:
    """Connecting is refused, or the connection is closed at once."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2)
    with sock:
        try:
            sock.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return
        sock.sendall(PREFACE + h2frame(SETTINGS, 0, 0))
        assert sock.recv(100) == b""


def test_stop_closes_the_listener_and_connections(served: Served) -> None:
    client = RawClient(served.path)
    client.start()
    started = time.monotonic()
    served.server.stop(grace=1)
    assert time.monotonic() - started < 0.5  # nothing in flight: no waiting
    try:
        client.read_until_closed(2)
    finally:
        client.close()
    connect_after_stop(served.path)


@pytest.mark.parametrize("stopper", ["this thread", "another thread"])
def test_stop_lets_a_call_in_flight_finish(served: Served, stopper: str) -> None:
    """stop() while the handler sleeps 0.2 s: it waits for it, and the client gets its answer."""
    handlers = served.handlers
    with served.channel() as channel:
        call = unary(channel, SLOW_ECHO).future(b"in flight", timeout=5)
        assert handlers.started.wait(5)
        started = time.monotonic()
        thread = threading.Thread(target=served.server.stop, kwargs={"grace": 1})
        thread.start()
        if stopper == "this thread":
            thread.join(5)
            assert handlers.finished.is_set()
            assert time.monotonic() - started < 1
        assert call.result(timeout=5) == b"in flight"
        thread.join(5)
        assert not thread.is_alive()
    connect_after_stop(served.path)


def test_stop_flushes_a_large_response_in_flight(served: Served) -> None:
    """A response bigger than the client's window must still be delivered within the grace.

    Found a bug, since fixed: stop() waited only until the worker had *produced* the
    response; the part held back by the client's window (everything past grpcio's 64 KiB)
    was dropped with the connection. stop() now also waits for unsent responses.
    """
    handlers = served.handlers
    payload = os.urandom(1024 * 1024)
    with served.channel(NO_BDP) as channel:
        call = unary(channel, SLOW_ECHO).future(payload, timeout=5)
        assert handlers.started.wait(5)
        served.server.stop(grace=2)
        assert call.result(timeout=5) == payload


def test_stop_does_not_wait_for_held_streams(served: Served) -> None:
    """Held streams (GRPCStdio) are not calls in flight: stop() returns at once."""
    with served.channel() as channel:
        call = unary(channel, HOLD).future(b"", timeout=10)
        assert served.handlers.hold_routed.wait(5)
        started = time.monotonic()
        served.server.stop(grace=2)
        assert time.monotonic() - started < 0.5
        with pytest.raises(grpc.RpcError) as caught:
            call.result(timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_stop_gives_up_on_a_stuck_call_after_the_grace(served: Served) -> None:
    handlers = served.handlers
    with served.channel() as channel:
        call = unary(channel, BLOCK).future(b"stuck", timeout=10)
        assert handlers.started.wait(5)
        started = time.monotonic()
        served.server.stop(grace=0.3)
        assert 0.25 < time.monotonic() - started < 1.5
        with pytest.raises(grpc.RpcError) as caught:
            call.result(timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        handlers.release.set()
        assert handlers.finished.wait(5)  # the late answer finds the connection closed
    connect_after_stop(served.path)


def test_a_repeated_indexed_header_block_follows_the_table(served: Served, raw: RawClient) -> None:
    """The same all-indexed bytes name another path once the table was rebuilt.

    The server reuses the path of an all-indexed block it saw before; this fails if that
    shortcut outlives a change of the HPACK table.
    """

    def indexed_literals(path: str) -> bytes:
        """:method POST and :scheme http (static 3 and 6), then literals with incremental
        indexing: the table becomes te (62), content-type, :authority, :path (65)."""
        fields = [(":path", path), (":authority", "localhost")] + request_fields(path)[-2:]
        return b"\x83\x86" + b"".join(b"\x40" + literal_block([f])[1:] for f in fields)

    all_indexed = b"\x83\x86\xc1\xc0\xbf\xbe"  # :method :scheme :path :authority ct te
    empty_the_table = b"\x20\x3f\xe1\x1f"  # size updates to 0, then back to 4096
    blocks = [
        indexed_literals(ECHO),
        all_indexed,
        empty_the_table + indexed_literals(INLINE_ECHO),
        all_indexed,
    ]
    for number, block in enumerate(blocks):
        stream_id = 1 + 2 * number
        raw.send(
            h2frame(HEADERS, END_HEADERS, stream_id, block),
            h2frame(DATA, END_STREAM, stream_id, grpc_message(b"m%d" % number)),
        )
        assert raw.response(stream_id).message == b"m%d" % number
    assert served.handlers.routed == [ECHO, ECHO, INLINE_ECHO, INLINE_ECHO]


# ---------------------------------------------------------------------- found by review


def _raising(error: BaseException) -> Callable[[bytes], bytes]:
    def call(message: bytes) -> bytes:
        raise error

    return call


@pytest.mark.parametrize("kind", [HEADERS, DATA])
def test_an_empty_padded_frame_costs_its_connection_not_the_loop(
    served: Served, raw: RawClient, kind: int
) -> None:
    """A PADDED flag on an empty payload once raised IndexError and killed the loop thread;
    every call on every connection then hung."""
    if kind == DATA:
        raw.send(h2frame(HEADERS, END_HEADERS, 1, raw.header_block(ECHO)))
    raw.send(h2frame(kind, PADDED | END_HEADERS, 1))
    assert any(f.kind == GOAWAY for f in raw.read_until_closed())
    assert_a_new_client_is_served(served)


@pytest.mark.parametrize("length", [20_000, 17 * 1024 * 1024])
def test_a_long_status_message_is_truncated_to_fit_one_frame(served: Served, length: int) -> None:
    """A status over 16 KiB once made a HEADERS frame grpc-go refuses (it then drops the
    whole connection: "frame too large"); over 16 MiB, frame() raised and the call hung."""
    pool = WorkerPool(1, "t")
    served.server.router = lambda path: Route(call=_raising(RpcError(13, "é" * length)), pool=pool)
    with served.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        unary(channel, "/t.T/Long")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    details = caught.value.details()
    assert details.endswith(" [truncated]") and set(details[: -len(" [truncated]")]) == {"é"}
    assert 1000 < len(details) < 8192


def test_a_base_exception_in_a_handler_is_answered_and_keeps_the_worker(
    served: Served,
) -> None:
    pool = WorkerPool(1, "t")  # one worker: a lost thread would hang the second call
    calls = {"/t.T/Exit": _raising(SystemExit("handler called sys.exit")), ECHO: lambda m: m}
    served.server.router = lambda path: Route(call=calls[path], pool=pool)
    with served.channel() as channel:
        with pytest.raises(grpc.RpcError) as caught:
            unary(channel, "/t.T/Exit")(b"", timeout=5)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        assert "SystemExit" in caught.value.details()
        assert unary(channel, ECHO)(b"next", timeout=5) == b"next"


def test_headers_on_a_closed_stream_never_run_the_call_again(served: Served) -> None:
    """RFC 9113 5.1.1: a reused stream id is a connection error, never a second apply."""
    calls: list[bytes] = []
    served.server.router = lambda path: Route(call=lambda m: calls.append(m) or m)
    raw = RawClient(served.path)
    try:
        raw.start()
        raw.request(1, "/t.T/Apply", b"once")
        assert raw.response(1).message == b"once"
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.request(1, "/t.T/Apply", b"twice")  # the server closes after the HEADERS
        goaway = next(f for f in raw.read_until_closed() if f.kind == GOAWAY)
        assert int.from_bytes(goaway.payload[4:8], "big") == 5  # STREAM_CLOSED
    finally:
        raw.close()
    assert calls == [b"once"]


def test_goaway_names_the_last_stream_the_server_took(served: Served) -> None:
    """grpc-go retries streams above GOAWAY's last-stream-id on a new connection: an id of
    0 while stream 1 ran would have applied it twice."""
    release = threading.Event()
    pool = WorkerPool(1, "t")
    served.server.router = lambda path: Route(call=lambda m: (release.wait(5), m)[1], pool=pool)
    raw = RawClient(served.path)
    try:
        raw.start()
        raw.request(1, "/t.T/Apply", b"in flight")
        raw.send(h2frame(PING, 0, 0, b"12345678"))
        assert raw.next_frame_of(0).kind in (PING, SETTINGS, WINDOW_UPDATE)
        # a header block interrupted by DATA: a protocol error
        raw.send(h2frame(HEADERS, 0, 3, raw.header_block("/t.T/Apply")), h2frame(DATA, 0, 3))
        goaway = next(f for f in raw.read_until_closed() if f.kind == GOAWAY)
        assert int.from_bytes(goaway.payload[:4], "big") == 1
    finally:
        release.set()
        raw.close()


@pytest.mark.parametrize(
    ("ident", "value"),
    [
        (MAX_FRAME_SIZE, 0),
        (MAX_FRAME_SIZE, 16383),
        (MAX_FRAME_SIZE, 1 << 24),
        (INITIAL_WINDOW_SIZE, 1 << 31),
    ],
)
def test_impossible_settings_are_refused(served: Served, ident: int, value: int) -> None:
    """A MAX_FRAME_SIZE of 0 once stalled every response for good; RFC 9113 6.5.2 allows
    2^14 to 2^24-1."""
    raw = RawClient(served.path)
    try:
        raw.send(PREFACE, h2frame(SETTINGS, 0, 0, setting(ident, value)))
        assert any(f.kind == GOAWAY for f in raw.read_until_closed())
    finally:
        raw.close()
