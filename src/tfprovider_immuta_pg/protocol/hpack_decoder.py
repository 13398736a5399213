"""HPACK (RFC 7541) header-block decoding, the half of HPACK a gRPC server needs.

The server answers with literal fields that touch no table, so it never encodes with a
table of its own; it must decode what grpc-go sends: indexed fields, literals (Huffman
coded or not) that enter the dynamic table, and table size updates.

Ours rather than the `hpack` package, whose import of `logging` would add to every
provider process's start-up (docs/performance.md, *The transport's own numbers*).
"""

from __future__ import annotations

import threading

DEFAULT_TABLE_SIZE = 4096  # SETTINGS_HEADER_TABLE_SIZE: the server never announces another
MAX_HEADER_LIST_SIZE = 64 * 1024  # the default; the gRPC server passes its own, smaller
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
# canonical, so the lengths alone give every code (see huffman_codes).
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


def huffman_codes() -> dict[int, int]:
    """{1 << length | code: symbol}: canonical codes, assigned in order of (length, symbol),
    each behind a leading 1 bit so that its length is part of it."""
    codes: dict[int, int] = {}
    code, previous_length = -1, 0
    lengths = HUFFMAN_CODE_LENGTHS
    for symbol in sorted(range(len(lengths)), key=lengths.__getitem__):  # stable: by symbol
        length = lengths[symbol]
        code = (code + 1) << (length - previous_length)
        previous_length = length
        codes[1 << length | code] = symbol
    return codes


class HpackError(ValueError):
    pass


class HeaderListTooLarge(HpackError):
    """The block holds more than the decoder's max_header_list_size (not a coding error)."""


class _HuffmanTable:
    """Huffman decoding a byte at a time, by table.

    A state is the bits read since the last whole symbol, behind a leading 1 bit; each
    state reached gets a row of 256 entries, one per input byte: the row of the state after
    that byte, and the symbols the byte completes. An entry is made the first time it is
    needed, so a process pays only for the transitions its clients use; what the full
    table costs, once, is in docs/performance.md.
    """

    def __init__(self) -> None:
        self.codes = huffman_codes()
        self.lock = threading.Lock()  # two loop threads (two servers) may add rows at once
        self.rows: dict[int, int] = {}  # state: its row's first index (a multiple of 256)
        self.states: list[int] = []  # row number: state
        self.next_state: list[int] = []  # -1 where the entry is not made yet
        self.symbols: list[bytes] = []
        self._pieces: dict[bytes, bytes] = {}  # one object per symbol string
        self.failed = self._row(0)  # after EOS: every byte keeps it there
        self.start = self._row(1)

    def _row(self, state: int) -> int:
        row = self.rows.get(state)
        if row is None:
            row = self.rows[state] = len(self.next_state)
            self.states.append(state)
            self.next_state += [-1] * 256
            self.symbols += [b""] * 256
        return row

    def make(self, index: int) -> int:
        """Fill the entry at `index` (a row plus a byte); returns the next state's row."""
        codes = self.codes
        with self.lock:
            state, byte, symbols = self.states[index >> 8], index & 0xFF, b""
            if state:
                for shift in (7, 6, 5, 4, 3, 2, 1, 0):
                    state = state << 1 | (byte >> shift & 1)
                    symbol = codes.get(state)
                    if symbol is not None:
                        if symbol == EOS:
                            state = 0
                            break
                        symbols += bytes((symbol,))
                        state = 1
            row = self._row(state)
            self.symbols[index] = self._pieces.setdefault(symbols, symbols)
            self.next_state[index] = row
            return row


_table: _HuffmanTable | None = None
# Padding is up to 7 bits, all ones (the start of EOS): the states a string may end in.
_COMPLETE = frozenset((2 << ones) - 1 for ones in range(8))


def huffman_decode(data: bytes) -> bytes:
    global _table
    table = _table or (_table := _HuffmanTable())
    next_state, symbols = table.next_state, table.symbols
    state, out = table.start, bytearray()
    for byte in data:
        index = state | byte
        state = next_state[index]
        if state < 0:
            state = table.make(index)
            next_state, symbols = table.next_state, table.symbols  # rows may have been added
        out += symbols[index]
    if table.states[state >> 8] not in _COMPLETE:
        if state == table.failed:
            raise HpackError("EOS inside a Huffman-coded string")
        raise HpackError("bad Huffman padding")
    return bytes(out)


class Decoder:
    """One connection's decoding context: the dynamic table, newest entry first.

    `max_header_list_size` bounds a block's fields as RFC 9113 6.5.2 counts them (name,
    value and 32 octets each); a string that cannot fit is refused before it is decoded.
    """

    def __init__(self, max_header_list_size: int = MAX_HEADER_LIST_SIZE) -> None:
        self.table: list[tuple[bytes, bytes]] = []
        self.table_size = 0
        self.max_table_size = DEFAULT_TABLE_SIZE
        self.max_header_list_size = max_header_list_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The (name, value) fields of a header block; HpackError when it is malformed."""
        fields: list[tuple[bytes, bytes]] = []
        pos, end = 0, len(block)
        room = self.max_header_list_size  # what the rest of the list may still hold
        while pos < end:
            first = block[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                field = self._entry(index)
            elif first & 0x40:  # literal with incremental indexing
                field, pos = self._literal(block, pos, 6, room)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                size, pos = _integer(block, pos, 5)
                if size > DEFAULT_TABLE_SIZE:
                    raise HpackError(f"table size {size} above the {DEFAULT_TABLE_SIZE} allowed")
                self.max_table_size = size
                self._evict(0)
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                field, pos = self._literal(block, pos, 4, room)
            room -= len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
            if room < 0:
                raise HeaderListTooLarge(f"header list over {self.max_header_list_size} bytes")
            fields.append(field)
        return fields

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if index == 0 or dynamic >= len(self.table):
            raise HpackError(f"no table entry {index}")
        return self.table[dynamic]

    def _literal(
        self, block: bytes, pos: int, prefix: int, room: int
    ) -> tuple[tuple[bytes, bytes], int]:
        index, pos = _integer(block, pos, prefix)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = _string(block, pos, room, self.max_header_list_size)
        value, pos = _string(block, pos, room - len(name), self.max_header_list_size)
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


def _string(block: bytes, pos: int, room: int, limit: int) -> tuple[bytes, int]:
    """RFC 7541 5.2: a string literal, Huffman coded or not, of at most `room` bytes.

    A Huffman code is at least 5 bits a symbol, at most 30, so the decoded length is known
    to within those bounds before decoding: what cannot fit is refused undecoded.
    """
    if pos >= len(block):
        raise HpackError("truncated string")
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 7)
    if pos + length > len(block):
        raise HpackError("truncated string")
    if (length * 8 // 30 if huffman else length) > room:
        raise HeaderListTooLarge(f"header list over {limit} bytes")
    raw = block[pos : pos + length]
    return (huffman_decode(raw) if huffman else bytes(raw)), pos + length
