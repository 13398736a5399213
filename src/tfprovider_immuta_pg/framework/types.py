"""cty types as data: what an attribute holds, and how Terraform spells it in JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class CtyType:
    """A Terraform value type; `to_json` gives the wire form used in schemas."""

    def to_json(self) -> Any:
        raise NotImplementedError

    def encoded(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Primitive(CtyType):
    name: str

    def to_json(self) -> Any:
        return self.name


STRING = Primitive("string")
NUMBER = Primitive("number")
BOOL = Primitive("bool")
DYNAMIC = Primitive("dynamic")


@dataclass(frozen=True)
class List(CtyType):
    element: CtyType

    def to_json(self) -> Any:
        return ["list", self.element.to_json()]


@dataclass(frozen=True)
class Set(CtyType):
    element: CtyType

    def to_json(self) -> Any:
        return ["set", self.element.to_json()]


@dataclass(frozen=True)
class Map(CtyType):
    element: CtyType

    def to_json(self) -> Any:
        return ["map", self.element.to_json()]


@dataclass(frozen=True)
class Tuple(CtyType):
    elements: tuple[CtyType, ...]

    def to_json(self) -> Any:
        return ["tuple", [e.to_json() for e in self.elements]]


@dataclass(frozen=True)
class Object(CtyType):
    attributes: dict[str, CtyType] = field(hash=False)

    def to_json(self) -> Any:
        return ["object", {k: v.to_json() for k, v in self.attributes.items()}]

    def __hash__(self) -> int:
        return hash(tuple(self.attributes))


def from_json(spec: Any) -> CtyType:
    """Parse Terraform's JSON type spelling (as in `["list","string"]`)."""
    if isinstance(spec, str):
        if spec in ("string", "number", "bool", "dynamic"):
            return Primitive(spec)
        raise ValueError(f"unknown primitive type {spec!r}")
    if isinstance(spec, list) and len(spec) == 2:
        kind, inner = spec
        if kind == "object" and not isinstance(inner, dict):
            raise ValueError(f"an object type needs a map of attributes, got {inner!r}")
        if kind == "tuple" and not isinstance(inner, list):
            raise ValueError(f"a tuple type needs a list of element types, got {inner!r}")
        if kind == "list":
            return List(from_json(inner))
        if kind == "set":
            return Set(from_json(inner))
        if kind == "map":
            return Map(from_json(inner))
        if kind == "tuple":
            return Tuple(tuple(from_json(e) for e in inner))
        if kind == "object":
            return Object({k: from_json(v) for k, v in inner.items()})
    raise ValueError(f"unrecognised type specification {spec!r}")
