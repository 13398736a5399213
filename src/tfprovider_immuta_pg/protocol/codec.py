"""cty values <-> msgpack and JSON, as Terraform puts them in DynamicValue.

Unknown values travel as msgpack extension 0 (12 carries refinements of an
unknown, which we read as plain unknown). A `dynamic` value travels as a
two-element array: the JSON type, then the value.
"""

from __future__ import annotations

import json
import math
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
    Primitive,
    Set,
    Tuple,
    from_json,
)
from ..framework.values import UNKNOWN

UNKNOWN_EXT = 0
REFINED_UNKNOWN_EXT = 12
_UNKNOWN_WIRE = msgpack.ExtType(UNKNOWN_EXT, b"\x00")


class CodecError(ValueError):
    """A value on the wire does not match the schema's type."""


# ---------------------------------------------------------------- msgpack


def encode_msgpack(value: Any, ty: CtyType) -> bytes:
    return msgpack.packb(_to_wire(value, ty), use_bin_type=True)


def decode_msgpack(data: bytes, ty: CtyType) -> Any:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise CodecError(f"malformed msgpack value: {exc}") from None
    return _from_wire(raw, ty, "")


def _to_wire(value: Any, ty: CtyType) -> Any:
    if value is UNKNOWN:
        return _UNKNOWN_WIRE
    if value is None:
        return None
    if ty == DYNAMIC:
        inferred = infer_type(value)
        return [inferred.encoded(), _to_wire(value, inferred)]
    if ty == STRING:
        return str(value)
    if ty == NUMBER:
        return _number_to_wire(value)
    if ty == BOOL:
        return bool(value)
    if isinstance(ty, (List, Set)):
        return [_to_wire(v, ty.element) for v in value]
    if isinstance(ty, Tuple):
        return [_to_wire(v, t) for v, t in zip(value, ty.elements, strict=True)]
    if isinstance(ty, Map):
        return {k: _to_wire(v, ty.element) for k, v in value.items()}
    if isinstance(ty, Object):
        return {k: _to_wire(value.get(k), t) for k, t in ty.attributes.items()}
    raise CodecError(f"cannot encode a value of type {ty.to_json()!r}")


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


def _from_wire(raw: Any, ty: CtyType, path: str) -> Any:
    if isinstance(raw, msgpack.ExtType):
        if raw.code in (UNKNOWN_EXT, REFINED_UNKNOWN_EXT):
            return UNKNOWN
        raise CodecError(f"{path or 'value'}: unexpected msgpack extension {raw.code}")
    if raw is None:
        return None
    if ty == DYNAMIC:
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], (bytes, str))):
            raise CodecError(f"{path or 'value'}: a dynamic value must be [type, value]")
        try:
            inner = from_json(json.loads(raw[0]))
        except ValueError as exc:
            raise CodecError(f"{path or 'value'}: {exc}") from None
        return _from_wire(raw[1], inner, path)
    if ty == STRING:
        return _expect(raw, str, "a string", path)
    if ty == NUMBER:
        return _number_from_wire(raw, path)
    if ty == BOOL:
        return _expect(raw, bool, "a bool", path)
    if isinstance(ty, (List, Set)):
        items = _expect(raw, list, "a list", path)
        return [_from_wire(v, ty.element, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(ty, Tuple):
        items = _expect(raw, list, "a tuple", path)
        if len(items) != len(ty.elements):
            raise CodecError(f"{path or 'value'}: expected {len(ty.elements)} tuple elements")
        return [
            _from_wire(v, t, f"{path}[{i}]")
            for i, (v, t) in enumerate(zip(items, ty.elements, strict=True))
        ]
    if isinstance(ty, Map):
        items = _expect(raw, dict, "a map", path)
        return {
            _key(k, path): _from_wire(v, ty.element, f"{path}[{k!r}]") for k, v in items.items()
        }
    if isinstance(ty, Object):
        items = _expect(raw, dict, "an object", path)
        unexpected = set(items) - set(ty.attributes)
        if unexpected:
            raise CodecError(
                f"{path or 'value'}: unsupported attribute {sorted(map(str, unexpected))[0]!r}"
            )
        return {
            k: _from_wire(items.get(k), t, f"{path}.{k}" if path else k)
            for k, t in ty.attributes.items()
        }
    raise CodecError(f"cannot decode a value of type {ty.to_json()!r}")


def _expect(raw: Any, kind: type, what: str, path: str) -> Any:
    if not isinstance(raw, kind) or (kind is not bool and isinstance(raw, bool)):
        raise CodecError(f"{path or 'value'}: expected {what}, got {type(raw).__name__}")
    return raw


def _key(key: Any, path: str) -> str:
    if not isinstance(key, str):
        raise CodecError(f"{path or 'value'}: map keys must be strings")
    return key


def _number_from_wire(raw: Any, path: str) -> int | float:
    if isinstance(raw, bool):
        raise CodecError(f"{path or 'value'}: expected a number, got bool")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() and abs(raw) < 2**53 else raw
    if isinstance(raw, str):
        try:
            number = float(raw) if any(c in raw for c in ".eE") else int(raw)
        except ValueError:
            raise CodecError(f"{path or 'value'}: {raw!r} is not a number") from None
        if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
            return int(number)
        return number
    raise CodecError(f"{path or 'value'}: expected a number, got {type(raw).__name__}")


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
    """A value parsed from JSON, checked against and shaped by `ty`."""
    return _from_json_value(raw, ty, "")


def _from_json_value(raw: Any, ty: CtyType, path: str) -> Any:
    if raw is None:
        return None
    if ty == DYNAMIC:
        if not (isinstance(raw, dict) and set(raw) == {"value", "type"}):
            raise CodecError(f"{path or 'value'}: a dynamic JSON value needs value and type")
        try:
            inner = from_json(raw["type"])
        except ValueError as exc:
            raise CodecError(f"{path or 'value'}: {exc}") from None
        return _from_json_value(raw["value"], inner, path)
    if isinstance(ty, Primitive) and ty == NUMBER:
        return _number_from_wire(raw, path)
    if isinstance(ty, Object):
        items = _expect(raw, dict, "an object", path)
        # Attributes dropped from the schema since the state was written are ignored.
        return {
            k: _from_json_value(items.get(k), t, f"{path}.{k}" if path else k)
            for k, t in ty.attributes.items()
        }
    if isinstance(ty, (List, Set)):
        items = _expect(raw, list, "a list", path)
        return [_from_json_value(v, ty.element, f"{path}[{i}]") for i, v in enumerate(items)]
    if isinstance(ty, Tuple):
        items = _expect(raw, list, "a tuple", path)
        return [_from_json_value(v, t, path) for v, t in zip(items, ty.elements, strict=False)]
    if isinstance(ty, Map):
        items = _expect(raw, dict, "a map", path)
        return {k: _from_json_value(v, ty.element, f"{path}[{k!r}]") for k, v in items.items()}
    return _from_wire(raw, ty, path)
