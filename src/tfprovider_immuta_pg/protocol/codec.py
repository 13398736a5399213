"""cty values <-> msgpack and JSON, as Terraform puts them in DynamicValue.

Unknown values travel as msgpack extension 0 (12 carries refinements of an
unknown, which we read as plain unknown). A `dynamic` value travels as a
two-element array: the JSON type, then the value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import msgpack

from ..framework.types import (
    BOOL,
    DYNAMIC,
    NUMBER,
    STRING,
    CtyType,
    List,
    Map,
    Object,
    Set,
    Tuple,
    from_json,
)
from ..framework.values import UNKNOWN, MalformedValue

UNKNOWN_EXT = 0
REFINED_UNKNOWN_EXT = 12
_UNKNOWN_WIRE = msgpack.ExtType(UNKNOWN_EXT, b"\x00")


class CodecError(MalformedValue):
    """A value on the wire does not match the schema's type."""


# ---------------------------------------------------------------- msgpack
#
# Each type is compiled once into a decoder and an encoder (closures), so a value
# is converted without re-dispatching on its type at every node: Terraform sends the
# same few schemas thousands of times per command.


class _PathError(CodecError):
    """A decoding error; containers prepend their step, so the full path is built once."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path or 'value'}: {message}")
        self.message, self.path = message, path

    def under(self, step: str) -> _PathError:
        joined = (
            step + (self.path if self.path.startswith("[") else "." + self.path)
            if self.path
            else step
        )
        return _PathError(self.message, joined)


Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]
_compiled: dict[int, tuple[CtyType, Decoder, Encoder]] = {}


class _Never:
    """A type no value has: the pass-through type of types that always convert."""


def _passes_decoding(ty: CtyType) -> type:
    """The Python type whose wire values decode to themselves under `ty`.

    Objects and maps check it first, so the common leaves of large values (strings,
    bools, whole numbers) cost no call; other values go through the full decoder.
    """
    if ty == NUMBER:
        return int
    return _passes_encoding(ty)


def _passes_encoding(ty: CtyType) -> type:
    """As `_passes_decoding`, for encoding (numbers are range-checked, so never pass)."""
    if ty == STRING:
        return str
    if ty == BOOL:
        return bool
    return _Never


def _codec_for(ty: CtyType) -> tuple[Decoder, Encoder]:
    entry = _compiled.get(id(ty))
    if entry is None or entry[0] is not ty:
        entry = (ty, _compile_decoder(ty), _compile_encoder(ty))
        _compiled[id(ty)] = entry  # holding ty keeps its id from being reused
    return entry[1], entry[2]


def encode_msgpack(value: Any, ty: CtyType) -> bytes:
    """`value` as msgpack; a value that does not fit `ty` raises CodecError."""
    packed: bytes = msgpack.packb(_codec_for(ty)[1](value), use_bin_type=True)
    return packed


def decode_msgpack(data: bytes, ty: CtyType) -> Any:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError(f"malformed msgpack value: {exc}") from None
    return _codec_for(ty)[0](raw)


def _compile_encoder(ty: CtyType) -> Encoder:
    if ty == DYNAMIC:

        def convert(value: Any) -> Any:
            inferred = infer_type(value)
            return [inferred.encoded(), _codec_for(inferred)[1](value)]
    elif ty == STRING:
        convert = str  # type: ignore[assignment]  # builtins convert without a Python frame
    elif ty == NUMBER:
        convert = _number_to_wire
    elif ty == BOOL:
        convert = bool  # type: ignore[assignment]
    elif isinstance(ty, (List, Set)):
        element = _codec_for(ty.element)[1]

        def convert(value: Any) -> Any:
            return [element(v) for v in value]
    elif isinstance(ty, Tuple):
        elements = [_codec_for(t)[1] for t in ty.elements]

        def convert(value: Any) -> Any:
            return [e(v) for e, v in zip(elements, value, strict=True)]
    elif isinstance(ty, Map):
        element = _codec_for(ty.element)[1]

        def convert(value: Any) -> Any:
            return {k: element(v) for k, v in value.items()}
    elif isinstance(ty, Object):
        fields = [
            (name, _codec_for(t)[1], _passes_encoding(t)) for name, t in ty.attributes.items()
        ]

        def convert(value: Any) -> Any:
            get = value.get
            return {
                name: v if (v := get(name)) is None or type(v) is plain else encode(v)
                for name, encode, plain in fields
            }
    else:
        raise CodecError(f"cannot encode a value of type {ty.to_json()!r}")

    def encode(value: Any) -> Any:
        if value is None:
            return None
        if value is UNKNOWN:
            return _UNKNOWN_WIRE
        return convert(value)

    return encode


def _number_to_wire(value: Any) -> Any:
    if isinstance(value, bool):
        raise CodecError("a bool is not a number")
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    return str(value)


def _compile_decoder(ty: CtyType) -> Decoder:
    convert = _decoder_body(ty)

    def decode(raw: Any) -> Any:
        if raw is None:
            return None
        if type(raw) is msgpack.ExtType:
            if raw.code in (UNKNOWN_EXT, REFINED_UNKNOWN_EXT):
                return UNKNOWN
            raise _PathError(f"unexpected msgpack extension {raw.code}")
        return convert(raw)

    return decode


def _decoder_body(ty: CtyType) -> Decoder:
    if ty == DYNAMIC:
        return _decode_dynamic
    if ty == STRING:
        return _exactly(str, "a string")
    if ty == NUMBER:
        return _number_from_wire
    if ty == BOOL:
        return _exactly(bool, "a bool")
    if isinstance(ty, (List, Set)):
        element = _codec_for(ty.element)[0]

        def sequence(raw: Any) -> Any:
            if type(raw) is not list:
                raise _PathError(f"expected a list, got {type(raw).__name__}")
            out = []
            for index, v in enumerate(raw):
                try:
                    out.append(element(v))
                except _PathError as exc:
                    raise exc.under(f"[{index}]") from None
            return out

        return sequence
    if isinstance(ty, Tuple):
        elements = [_codec_for(t)[0] for t in ty.elements]

        def tuple_(raw: Any) -> Any:
            if type(raw) is not list:
                raise _PathError(f"expected a tuple, got {type(raw).__name__}")
            if len(raw) != len(elements):
                raise _PathError(f"expected {len(elements)} tuple elements")
            out = []
            for index, (decode, v) in enumerate(zip(elements, raw, strict=True)):
                try:
                    out.append(decode(v))
                except _PathError as exc:
                    raise exc.under(f"[{index}]") from None
            return out

        return tuple_
    if isinstance(ty, Map):
        element = _codec_for(ty.element)[0]
        plain = _passes_decoding(ty.element)

        def mapping(raw: Any) -> Any:
            if type(raw) is not dict:
                raise _PathError(f"expected a map, got {type(raw).__name__}")
            out = {}
            k: Any = None
            try:
                for k, v in raw.items():
                    if type(k) is not str:
                        raise _PathError("map keys must be strings")
                    out[k] = v if type(v) is plain else element(v)
            except _PathError as exc:
                raise (exc if type(k) is not str else exc.under(f"[{k!r}]")) from None
            return out

        return mapping
    if isinstance(ty, Object):
        fields = [
            (name, _codec_for(t)[0], _passes_decoding(t)) for name, t in ty.attributes.items()
        ]
        names = set(ty.attributes)

        def object_(raw: Any) -> Any:
            if type(raw) is not dict:
                raise _PathError(f"expected an object, got {type(raw).__name__}")
            if len(raw) > len(fields) or not names.issuperset(raw):
                unexpected = sorted(str(k) for k in raw if k not in names)
                raise _PathError(f"unsupported attribute {unexpected[0]!r}")
            get = raw.get
            out = {}
            name = ""
            try:
                for name, decode, plain in fields:
                    v = get(name)
                    out[name] = v if v is None or type(v) is plain else decode(v)
            except _PathError as exc:
                raise exc.under(name) from None
            return out

        return object_
    raise CodecError(f"cannot decode a value of type {ty.to_json()!r}")


def _exactly(kind: type, what: str) -> Decoder:
    def check(raw: Any) -> Any:
        if type(raw) is not kind:
            raise _PathError(f"expected {what}, got {type(raw).__name__}")
        return raw

    return check


def _decode_dynamic(raw: Any) -> Any:
    if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], (bytes, str))):
        raise _PathError("a dynamic value must be [type, value]")
    try:
        inner = from_json(json.loads(raw[0]))
    except ValueError as exc:
        raise _PathError(str(exc)) from None
    return _codec_for(inner)[0](raw[1])


def _number_from_wire(raw: Any) -> int | float:
    kind = type(raw)
    if kind is int:
        whole: int = raw
        return whole
    if kind is float:
        return int(raw) if raw.is_integer() and abs(raw) < 2**53 else raw
    if kind is str:
        try:
            number = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            raise _PathError(f"{raw!r} is not a number") from None
        if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    raise _PathError(f"expected a number, got {kind.__name__}")


def infer_type(value: Any) -> CtyType:
    """The type a known value of a `dynamic` attribute is sent as."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, dict):
        return Object({k: infer_type(v) for k, v in value.items()})
    if isinstance(value, list):
        return Tuple(tuple(infer_type(v) for v in value))
    if value is None:
        return DYNAMIC
    raise CodecError(f"cannot infer a type for {type(value).__name__}")


# ---------------------------------------------------------------- JSON


def decode_json(data: bytes, ty: CtyType) -> Any:
    """Decode JSON state (UpgradeResourceState); JSON has no unknown values."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise CodecError(f"malformed JSON value: {exc}") from None
    return json_to_value(raw, ty)


def json_to_value(raw: Any, ty: CtyType) -> Any:
    """A value parsed from JSON, checked against and shaped by `ty`.

    Without `dynamic` values, JSON holds the same shapes as decoded msgpack, so the compiled
    msgpack decoder reads it (a state that still holds attributes since dropped from the
    schema, which that decoder refuses, takes the slower walk that ignores them).
    """
    if not _holds_dynamic(ty):
        try:
            return _codec_for(ty)[0](raw)
        except _PathError:
            pass
    return _from_json_value(raw, ty)


def _holds_dynamic(ty: CtyType) -> bool:
    if ty == DYNAMIC:
        return True
    if isinstance(ty, (List, Set, Map)):
        return _holds_dynamic(ty.element)
    if isinstance(ty, Tuple):
        return any(_holds_dynamic(t) for t in ty.elements)
    if isinstance(ty, Object):
        return any(_holds_dynamic(t) for t in ty.attributes.values())
    return False


def _from_json_value(raw: Any, ty: CtyType) -> Any:
    """JSON differs from msgpack in two ways: dynamic values are {value, type} objects,
    and object attributes dropped from the schema since the state was written are ignored."""
    if raw is None:
        return None
    if ty == DYNAMIC:
        if not (isinstance(raw, dict) and set(raw) == {"value", "type"}):
            raise _PathError("a dynamic JSON value needs value and type")
        try:
            inner = from_json(raw["type"])
        except ValueError as exc:
            raise _PathError(str(exc)) from None
        return _from_json_value(raw["value"], inner)
    if isinstance(ty, Object):
        if type(raw) is not dict:
            raise _PathError(f"expected an object, got {type(raw).__name__}")
        out = {}
        for name, t in ty.attributes.items():
            try:
                out[name] = _from_json_value(raw.get(name), t)
            except _PathError as exc:
                raise exc.under(name) from None
        return out
    if isinstance(ty, (List, Set, Tuple)):
        if type(raw) is not list:
            raise _PathError(f"expected a list, got {type(raw).__name__}")
        types = ty.elements if isinstance(ty, Tuple) else [ty.element] * len(raw)
        out_list = []
        for index, (v, t) in enumerate(zip(raw, types, strict=False)):
            try:
                out_list.append(_from_json_value(v, t))
            except _PathError as exc:
                raise exc.under(f"[{index}]") from None
        return out_list
    if isinstance(ty, Map):
        if type(raw) is not dict:
            raise _PathError(f"expected a map, got {type(raw).__name__}")
        out = {}
        for k, v in raw.items():
            try:
                out[k] = _from_json_value(v, ty.element)
            except _PathError as exc:
                raise exc.under(f"[{k!r}]") from None
        return out
    return _codec_for(ty)[0](raw)
