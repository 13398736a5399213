"""HPACK (RFC 7541) header-block decoding, the half of HPACK a gRPC server needs.

The server answers with literal fields that touch no table, so it never encodes with a
table of its own; it must decode what grpc-go sends: indexed fields, literals (Huffman
coded or not) that enter the dynamic table, and table size updates.

Ours rather than the `hpack` package: that one imports `logging` (~10 ms of every provider
process's start-up, which Terraform pays 3-4 times per command).
"""

from __future__ import annotations

DEFAULT_TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE: the server never announces another
MAX_HEADER_LIST_SIZE = 64 * 1024
ENTRY_OVERHEAD = 32  # RFC 7541 4.1

# RFC 7541 Appendix A.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode(), value.encode())
    for name, value in (
        (":authority", ""),
        (":method", "GET"),
        (":method", "POST"),
        (":path", "/"),
        (":path", "/index.html"),
        (":scheme", "http"),
        (":scheme", "https"),
        (":status", "200"),
        (":status", "204"),
        (":status", "206"),
        (":status", "304"),
        (":status", "400"),
        (":status", "404"),
        (":status", "500"),
        ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"),
        ("accept-language", ""),
        ("accept-ranges", ""),
        ("accept", ""),
        ("access-control-allow-origin", ""),
        ("age", ""),
        ("allow", ""),
        ("authorization", ""),
        ("cache-control", ""),
        ("content-disposition", ""),
        ("content-encoding", ""),
        ("content-language", ""),
        ("content-length", ""),
        ("content-location", ""),
        ("content-range", ""),
        ("content-type", ""),
        ("cookie", ""),
        ("date", ""),
        ("etag", ""),
        ("expect", ""),
        ("expires", ""),
        ("from", ""),
        ("host", ""),
        ("if-match", ""),
        ("if-modified-since", ""),
        ("if-none-match", ""),
        ("if-range", ""),
        ("if-unmodified-since", ""),
        ("last-modified", ""),
        ("link", ""),
        ("location", ""),
        ("max-forwards", ""),
        ("proxy-authenticate", ""),
        ("proxy-authorization", ""),
        ("range", ""),
        ("referer", ""),
        ("refresh", ""),
        ("retry-after", ""),
        ("server", ""),
        ("set-cookie", ""),
        ("strict-transport-security", ""),
        ("transfer-encoding", ""),
        ("user-agent", ""),
        ("vary", ""),
        ("via", ""),
        ("www-authenticate", ""),
    )
)

# RFC 7541 Appendix B: the code length of each symbol (0-255, then EOS). The code is
# canonical, so the lengths alone give every code (see _huffman_codes).
HUFFMAN_CODE_LENGTHS = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
)  # fmt: skip
EOS = 256


def huffman_codes() -> dict[tuple[int, int], int]:
    """{(length, code): symbol}: canonical codes, assigned in order of (length, symbol)."""
    codes: dict[tuple[int, int], int] = {}
    code, previous_length = -1, 0
    for symbol in sorted(
        range(len(HUFFMAN_CODE_LENGTHS)), key=lambda s: (HUFFMAN_CODE_LENGTHS[s], s)
    ):
        length = HUFFMAN_CODE_LENGTHS[symbol]
        code = (code + 1) << (length - previous_length)
        previous_length = length
        codes[(length, code)] = symbol
    return codes


_codes: dict[tuple[int, int], int] = {}


class HpackError(ValueError):
    pass


def huffman_decode(data: bytes) -> bytes:
    if not _codes:
        _codes.update(huffman_codes())
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            symbol = _codes.get((length, code))
            if symbol is not None:
                if symbol == EOS:
                    raise HpackError("EOS inside a Huffman-coded string")
                out.append(symbol)
                code = length = 0
            elif length > 30:
                raise HpackError("not a Huffman code")
    # Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("bad Huffman padding")
    return bytes(out)


class Decoder:
    """One connection's decoding context: the dynamic table, newest entry first."""

    def __init__(self) -> None:
        self.table: list[tuple[bytes, bytes]] = []
        self.table_size = 0
        self.max_table_size = DEFAULT_TABLE_SIZE

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The (name, value) fields of a header block; HpackError when it is malformed."""
        fields: list[tuple[bytes, bytes]] = []
        pos, end, total = 0, len(block), 0
        while pos < end:
            first = block[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                field = self._entry(index)
            elif first & 0x40:  # literal with incremental indexing
                field, pos = self._literal(block, pos, 6)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                size, pos = _integer(block, pos, 5)
                if size > DEFAULT_TABLE_SIZE:
                    raise HpackError(f"table size {size} above the {DEFAULT_TABLE_SIZE} allowed")
                self.max_table_size = size
                self._evict(0)
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                field, pos = self._literal(block, pos, 4)
            total += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if total > MAX_HEADER_LIST_SIZE:
                raise HpackError("header list larger than 64 KiB")
            fields.append(field)
        return fields

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if index == 0 or dynamic >= len(self.table):
            raise HpackError(f"no table entry {index}")
        return self.table[dynamic]

    def _literal(self, block: bytes, pos: int, prefix: int) -> tuple[tuple[bytes, bytes], int]:
        index, pos = _integer(block, pos, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = _string(block, pos)
        value, pos = _string(block, pos)
        return (name, value), pos

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
        self._evict(size)
        if size <= self.max_table_size:  # a larger entry empties the table (RFC 7541 4.4)
            self.table.insert(0, field)
            self.table_size += size

    def _evict(self, room: int) -> None:
        while self.table and self.table_size + room > self.max_table_size:
            name, value = self.table.pop()
            self.table_size -= len(name) + len(value) + ENTRY_OVERHEAD


def _integer(block: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """RFC 7541 5.1: an integer with an N-bit prefix starting at block[pos]."""
    mask = (1 << prefix) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(block):
            raise HpackError("truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HpackError("integer too large")


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """RFC 7541 5.2: a string literal, Huffman coded or not."""
    if pos >= len(block):
        raise HpackError("truncated string")
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 7)
    if pos + length > len(block):
        raise HpackError("truncated string")
    raw = block[pos : pos + length]
    return (huffman_decode(raw) if huffman else bytes(raw)), pos + length
