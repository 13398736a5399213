"""The server's HPACK decoder against the `hpack` package's encoder and RFC 7541's examples."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfprovider_immuta_pg.protocol import hpack_decoder
from tfprovider_immuta_pg.protocol.hpack_decoder import (
    STATIC_TABLE,
    Decoder,
    HeaderListTooLarge,
    HpackError,
    huffman_decode,
)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-:", min_size=1, max_size=20)
values = st.binary(max_size=60) | st.text(max_size=40).map(str.encode)
header_lists = st.lists(st.tuples(names.map(str.encode), values), max_size=12)


def test_static_table_is_rfc_7541_appendix_a() -> None:
    reference = [
        (n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
        for n, v in hpack.table.HeaderTable.STATIC_TABLE
    ]
    assert list(STATIC_TABLE) == reference


def test_every_byte_survives_huffman_coding() -> None:
    every_byte = bytes(range(256)) * 2
    assert (
        huffman_decode(
            hpack.huffman.HuffmanEncoder(
                hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
            ).encode(every_byte)
        )
        == every_byte
    )


def test_rfc_7541_c_4_requests_with_huffman_coding() -> None:
    """Appendix C.4: three requests on one connection, the table carried between them."""
    decoder = Decoder()
    first = bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff")
    assert decoder.decode(first) == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ]
    second = decoder.decode(bytes.fromhex("828684be5886a8eb10649cbf"))
    assert second[3:] == [(b":authority", b"www.example.com"), (b"cache-control", b"no-cache")]
    assert decoder.table_size == 110  # RFC 7541 C.4.2: two entries, 110 octets


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_lists, st.booleans()), min_size=1, max_size=8))
def test_blocks_from_hpacks_encoder_decode_to_what_was_encoded(blocks) -> None:
    """A connection's worth of blocks: the dynamic table must stay in step with the encoder."""
    encoder, decoder = hpack.Encoder(), Decoder()
    for headers, huffman in blocks:
        block = encoder.encode(headers, huffman=huffman)
        assert decoder.decode(block) == headers


@settings(max_examples=100, deadline=None)
@given(header_lists, st.sampled_from([0, 64, 256, 4096]))
def test_table_size_updates_evict_as_the_encoder_does(headers, size) -> None:
    encoder, decoder = hpack.Encoder(), Decoder()
    decoder.decode(encoder.encode(headers))
    encoder.header_table_size = size
    assert decoder.decode(encoder.encode(headers)) == headers
    assert decoder.table_size <= size
    assert decoder.decode(encoder.encode(headers)) == headers


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (b"\x80", "no table entry 0"),
        (b"\xbe", "no table entry 62"),  # the dynamic table is empty
        (b"\xff\xff\xff\xff\xff\xff", "integer too large"),
        (b"\xff", "truncated integer"),
        (b"\x04\x05/ab", "truncated string"),
        (b"\x3f\xe2\x1f", "table size 4097 above"),
        (b"\x04\x81\x00", "bad Huffman padding"),  # eight 0 bits: no code, no padding
        (b"\x04\x84\xff\xff\xff\xff", "EOS inside a Huffman-coded string"),
    ],
)
def test_malformed_blocks_are_refused(block: bytes, error: str) -> None:
    with pytest.raises(HpackError, match=error):
        Decoder().decode(block)


def test_a_header_list_over_64_kib_is_refused() -> None:
    block = hpack.Encoder().encode([("x-big", "v" * 70_000)], huffman=False)
    with pytest.raises(HpackError, match="header list over 65536 bytes"):
        Decoder().decode(block)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_huffman_decode_as_the_hpack_package_decodes_them(data: bytes) -> None:
    """The table, made an entry at a time, against hpack's nibble state machine: the same
    symbols, and the same strings refused (EOS inside, padding over 7 bits or not all 1s)."""
    try:
        expected = hpack.huffman_table.decode_huffman(data)
    except hpack.HPACKDecodingError:
        with pytest.raises(HpackError):
            huffman_decode(data)
    else:
        assert huffman_decode(data) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_huffman_coded_bytes_come_back(data: bytes) -> None:
    encoded = hpack.huffman.HuffmanEncoder(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
    ).encode(data)
    assert huffman_decode(encoded) == data


def test_a_string_that_cannot_fit_is_refused_before_it_is_decoded(monkeypatch) -> None:
    """400 Huffman-coded bytes hold at least 106 symbols (30 bits at most each): over a
    100-byte list, refused without decoding them."""
    decoded: list[bytes] = []
    monkeypatch.setattr(hpack_decoder, "huffman_decode", lambda raw: decoded.append(raw) or b"")
    block = b"\x00\x01x" + b"\xff\x91\x02" + bytes(400)  # name "x", Huffman value of 400 bytes
    with pytest.raises(HeaderListTooLarge, match="over 100 bytes"):
        Decoder(max_header_list_size=100).decode(block)
    assert decoded == []
