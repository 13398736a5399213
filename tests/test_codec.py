"""cty values <-> msgpack / JSON (tfprovider_immuta_pg.protocol.codec), and nested attributes
in schemas (schema_to_proto)."""

from __future__ import annotations

import contextlib
import json

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tfprovider_immuta_pg.framework.types import (
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
)
from tfprovider_immuta_pg.framework.values import UNKNOWN
from tfprovider_immuta_pg.protocol.codec import (
    CodecError,
    decode_json,
    decode_msgpack,
    encode_msgpack,
)

RULE = Object({"port": NUMBER, "proto": STRING})
NESTED = Object(
    {
        "name": STRING,
        "enabled": BOOL,
        "tags": Map(STRING),
        "rules": List(RULE),
        "zones": Set(STRING),
        "inner": Object({"depth": NUMBER, "labels": List(STRING)}),
    }
)


def roundtrip(value, ty: CtyType):
    return decode_msgpack(encode_msgpack(value, ty), ty)


def wire(value, ty: CtyType):
    return msgpack.unpackb(encode_msgpack(value, ty), raw=False, strict_map_key=False)


# ------------------------------------------------------------------ msgpack round trips


@pytest.mark.parametrize(
    ("value", "ty"),
    [
        ("hello", STRING),
        ("", STRING),
        ("ünïcødé ✓ @/ #", STRING),
        (0, NUMBER),
        (-42, NUMBER),
        (1.5, NUMBER),
        (True, BOOL),
        (False, BOOL),
        (["a", "b"], List(STRING)),
        ([], List(STRING)),
        ([3, 1, 2], Set(NUMBER)),
        ({"a": True, "b": False}, Map(BOOL)),
        ({}, Map(STRING)),
        ({"port": 5432, "proto": "tcp"}, RULE),
        (["x", 1, True], Tuple((STRING, NUMBER, BOOL))),
    ],
)
def test_roundtrip_simple(value, ty: CtyType) -> None:
    assert roundtrip(value, ty) == value


def test_roundtrip_nested_objects_with_lists_of_objects() -> None:
    value = {
        "name": "conn",
        "enabled": True,
        "tags": {"team": "data", "env": "prod"},
        "rules": [{"port": 5432, "proto": "tcp"}, {"port": 6432, "proto": None}],
        "zones": ["a", "b"],
        "inner": {"depth": 2, "labels": ["x"]},
    }
    assert roundtrip(value, NESTED) == value
    assert wire(value, NESTED)["rules"][1] == {"port": 6432, "proto": None}


@pytest.mark.parametrize(
    "value",
    [
        None,
        {**dict.fromkeys(NESTED.attributes)},
        {
            "name": None,
            "enabled": None,
            "tags": None,
            "rules": [None],
            "zones": None,
            "inner": None,
        },
        {
            "name": "n",
            "enabled": False,
            "tags": {"k": None},
            "rules": [{"port": None, "proto": None}],
            "zones": [None],
            "inner": {"depth": None, "labels": [None, "y"]},
        },
    ],
)
def test_null_anywhere(value) -> None:
    assert roundtrip(value, NESTED) == value


@pytest.mark.parametrize(
    "value",
    [
        UNKNOWN,
        {**dict.fromkeys(NESTED.attributes, UNKNOWN)},
        {
            "name": UNKNOWN,
            "enabled": True,
            "tags": {"k": UNKNOWN},
            "rules": [UNKNOWN, {"port": UNKNOWN, "proto": "udp"}],
            "zones": [UNKNOWN],
            "inner": {"depth": 1, "labels": UNKNOWN},
        },
    ],
)
def test_unknown_anywhere(value) -> None:
    assert roundtrip(value, NESTED) == value


def test_unknown_is_msgpack_extension_zero_on_the_wire() -> None:
    # cty writes an unknown as fixext1, type 0, one zero byte.
    assert encode_msgpack(UNKNOWN, STRING) == b"\xd4\x00\x00"
    raw = wire({"port": UNKNOWN, "proto": "tcp"}, RULE)
    assert raw["port"] == msgpack.ExtType(0, b"\x00")
    assert decode_msgpack(b"\xd4\x00\x00", NUMBER) is UNKNOWN


def test_refined_unknown_extension_12_decodes_as_unknown() -> None:
    refinements = msgpack.packb({1: False, 2: "prefix-"})  # not null, string prefix
    data = msgpack.packb(
        {"port": msgpack.ExtType(12, refinements), "proto": msgpack.ExtType(12, b"")}
    )
    assert decode_msgpack(data, RULE) == {"port": UNKNOWN, "proto": UNKNOWN}


def test_other_extension_types_are_rejected() -> None:
    with pytest.raises(CodecError, match="extension 5"):
        decode_msgpack(msgpack.packb(msgpack.ExtType(5, b"x")), STRING)


# ------------------------------------------------------------------ dynamic


def test_dynamic_wire_form_is_type_json_then_value() -> None:
    raw = wire("x", DYNAMIC)
    assert raw == [b'"string"', "x"]
    raw = wire({"a": 1, "b": [True, "s"]}, DYNAMIC)
    assert json.loads(raw[0]) == ["object", {"a": "number", "b": ["tuple", ["bool", "string"]]}]
    assert raw[1] == {"a": 1, "b": [True, "s"]}


@pytest.mark.parametrize(
    "value", ["s", 7, 2.5, False, {"a": {"b": ["x", 1]}}, ["p", {"q": None}], None, UNKNOWN]
)
def test_dynamic_roundtrip(value) -> None:
    assert roundtrip(value, DYNAMIC) == value
    assert roundtrip({"v": value}, Object({"v": DYNAMIC})) == {"v": value}


@pytest.mark.parametrize("type_json", [b'["list","string"]', '["list","string"]'])
def test_dynamic_decodes_type_given_as_bytes_or_str(type_json) -> None:
    data = msgpack.packb([type_json, ["a", "b"]], use_bin_type=True)
    assert decode_msgpack(data, DYNAMIC) == ["a", "b"]


@pytest.mark.parametrize(
    "raw",
    [
        ["nonsense", 1],  # type JSON that is not JSON
        ['"bogus"', 1],  # unknown primitive
        ['"string"'],  # missing value
        "not-a-pair",
        ['["object","string"]', {}],  # object type without attribute map
        ['["tuple",5]', []],  # tuple type without element list
        ['["list"]', []],
        ['"number"', "NaN-ish"],
    ],
)
def test_dynamic_malformed_raises_codec_error(raw) -> None:
    with pytest.raises(CodecError):
        decode_msgpack(msgpack.packb(raw), DYNAMIC)


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    "value", [2**63 - 1, -(2**63), 2**64 - 1, 2**64, 2**100, -(2**63) - 1, -(10**40)]
)
def test_big_ints_roundtrip_exactly(value: int) -> None:
    assert roundtrip(value, NUMBER) == value
    assert type(roundtrip(value, NUMBER)) is int


def test_ints_beyond_64_bits_travel_as_decimal_strings() -> None:
    assert wire(2**64, NUMBER) == str(2**64)
    assert wire(2**64 - 1, NUMBER) == 2**64 - 1
    assert decode_msgpack(msgpack.packb("123456789012345678901234567890"), NUMBER) == (
        123456789012345678901234567890
    )


@pytest.mark.parametrize("value", [0.1, -2.75, 1e300, 1e-300, 2.0**60, 123456.789])
def test_floats_roundtrip(value: float) -> None:
    assert roundtrip(value, NUMBER) == value


def test_integral_floats_become_ints() -> None:
    assert wire(3.0, NUMBER) == 3 and isinstance(wire(3.0, NUMBER), int)
    assert decode_msgpack(msgpack.packb(5.0), NUMBER) == 5
    assert type(decode_msgpack(msgpack.packb(5.0), NUMBER)) is int
    assert decode_msgpack(msgpack.packb("1e3"), NUMBER) == 1000
    assert decode_msgpack(msgpack.packb("1.25"), NUMBER) == 1.25


def test_bool_is_not_a_number() -> None:
    with pytest.raises(CodecError):
        encode_msgpack(True, NUMBER)
    with pytest.raises(CodecError, match="bool"):
        decode_msgpack(msgpack.packb(True), NUMBER)


# ------------------------------------------------------------------ type mismatches


@pytest.mark.parametrize(
    ("raw", "ty", "fragment"),
    [
        (1, STRING, "expected a string"),
        ("abc", NUMBER, "is not a number"),
        ("1", BOOL, "expected a bool"),
        (1, BOOL, "expected a bool"),
        ({"a": 1}, List(STRING), "expected a list"),
        ([1], Map(STRING), "expected a map"),
        ({1: "x"}, Map(STRING), "map keys must be strings"),
        ([1, 2], RULE, "expected an object"),
        ({"port": 1, "proto": "t", "extra": 2}, RULE, "unsupported attribute 'extra'"),
        (["x"], Tuple((STRING, NUMBER)), "expected 2 tuple elements"),
        ({"port": "x", "proto": "t"}, RULE, "port"),
        (b"bytes", STRING, "expected a string"),
    ],
)
def test_type_mismatches_raise_codec_error(raw, ty: CtyType, fragment: str) -> None:
    with pytest.raises(CodecError, match=fragment):
        decode_msgpack(msgpack.packb(raw, use_bin_type=True), ty)


def test_error_names_the_nested_path() -> None:
    raw = {"rules": [{"port": 1, "proto": "a"}, {"port": "zz", "proto": "b"}]}
    ty = Object({"rules": List(RULE)})
    with pytest.raises(CodecError, match=r"rules\[1\]\.port"):
        decode_msgpack(msgpack.packb(raw), ty)


def test_missing_object_attributes_decode_as_null() -> None:
    assert decode_msgpack(msgpack.packb({"port": 1}), RULE) == {"port": 1, "proto": None}


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\xa5ab", b"\x81\xa1a", b"\x01\x02"])
def test_malformed_msgpack_raises_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError, match="malformed msgpack"):
        decode_msgpack(data, RULE)


# ------------------------------------------------------------------ nested attributes
#
# A nested attribute's value is its implied type: a MAP of objects is a msgpack map of maps,
# a LIST or SET of objects an array of maps, a SINGLE object a map.

ENTRY = Object(
    {
        "postgres": Object({"mode": STRING, "username": STRING}),
        "aws": Object({"user_type": STRING, "principal": STRING}),
        "found": BOOL,
        "revision": NUMBER,
    }
)
MAPPINGS = Object({"id": STRING, "mappings": Map(ENTRY), "ports": List(RULE), "tags": Set(RULE)})


def mapping_entry(i: int) -> dict:
    postgres = {"mode": "username", "username": f"User{i}"} if i % 2 else None
    return {"postgres": postgres, "aws": None, "found": bool(i % 3), "revision": i}


def test_map_of_objects_roundtrip_with_unknown_and_null_inside_elements() -> None:
    value = {
        "id": "c",
        "mappings": {
            "alice@example.com": mapping_entry(1),
            "bob@example.com": mapping_entry(2),
            "ünï cødé/#": {
                "postgres": {"mode": "unset", "username": UNKNOWN},
                "aws": UNKNOWN,
                "found": UNKNOWN,
                "revision": UNKNOWN,
            },
        },
        "ports": [{"port": 5432, "proto": None}],
        "tags": [{"port": 1, "proto": "a"}, {"port": 2, "proto": UNKNOWN}],
    }
    assert roundtrip(value, MAPPINGS) == value
    on_wire = wire(value, MAPPINGS)
    assert on_wire["mappings"]["bob@example.com"]["postgres"] is None
    assert on_wire["mappings"]["ünï cødé/#"]["aws"] == msgpack.ExtType(0, b"\x00")


def test_large_map_of_objects_roundtrip() -> None:
    value = {
        "id": "c",
        "mappings": {f"user{i}@example.com": mapping_entry(i) for i in range(10_000)},
        "ports": None,
        "tags": [],
    }
    assert roundtrip(value, MAPPINGS) == value


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"postgres": {"mode": 1}},
            r"mappings\['alice@example.com'\]\.postgres\.mode: expected a string",
        ),
        ({"found": 1}, r"\['alice@example.com'\]\.found: expected a bool, got int"),
        ({"revision": True}, r"\['alice@example.com'\]\.revision: expected a number, got bool"),
        ({"revision": "many"}, r"\.revision: 'many' is not a number"),
        ({"postgres": {"mode": "x", "extra": "y"}}, r"\.postgres: unsupported attribute 'extra'"),
        ({"aws": ["iam_role"]}, r"\.aws: expected an object, got list"),
    ],
)
def test_errors_inside_map_elements_name_the_key(entry: dict, fragment: str) -> None:
    raw = {"id": "c", "mappings": {"bob@example.com": {}, "alice@example.com": entry}}
    with pytest.raises(CodecError, match=fragment):
        decode_msgpack(msgpack.packb(raw), MAPPINGS)


def test_map_of_objects_refuses_non_string_keys_and_non_object_elements() -> None:
    with pytest.raises(CodecError, match="mappings: map keys must be strings"):
        decode_msgpack(msgpack.packb({"mappings": {1: {}}}), MAPPINGS)
    with pytest.raises(CodecError, match=r"mappings\['a'\]: expected an object, got str"):
        decode_msgpack(msgpack.packb({"mappings": {"a": "x"}}), MAPPINGS)


def test_json_state_with_a_map_of_objects() -> None:
    data = json.dumps(
        {
            "id": "c",
            "mappings": {"a": {"postgres": {"mode": "none", "dropped": 1}, "revision": 3}},
            "ports": None,
            "tags": [{"port": 1}],
        }
    ).encode()
    assert decode_json(data, MAPPINGS) == {
        "id": "c",
        "mappings": {
            "a": {
                "postgres": {"mode": "none", "username": None},
                "aws": None,
                "found": None,
                "revision": 3,
            }
        },
        "ports": None,
        "tags": [{"port": 1, "proto": None}],
    }


def test_schema_to_proto_declares_nested_attributes_with_nested_type() -> None:
    from tfprovider_immuta_pg.framework.schema import (
        MAP,
        Attribute,
        Block,
        NestedAttribute,
        Schema,
    )
    from tfprovider_immuta_pg.protocol.convert import schema_to_proto
    from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2 as pb

    schema = Schema(
        Block(
            attributes={
                "mappings": NestedAttribute(
                    "By user.",
                    required=True,
                    nesting=MAP,
                    attributes={
                        "postgres": NestedAttribute(
                            "PostgreSQL.",
                            optional=True,
                            attributes={"mode": Attribute(STRING, "Mode.", default="unset")},
                        ),
                        "found": Attribute(BOOL, "Found.", computed=True, sensitive=True),
                    },
                )
            }
        )
    )
    (mappings,) = schema_to_proto(schema).block.attributes
    assert mappings.name == "mappings" and mappings.required and not mappings.type
    assert mappings.nested_type.nesting == pb.Schema.Object.MAP
    postgres, found = mappings.nested_type.attributes
    assert (postgres.name, postgres.optional, postgres.type) == ("postgres", True, b"")
    assert postgres.nested_type.nesting == pb.Schema.Object.SINGLE
    (mode,) = postgres.nested_type.attributes
    assert (mode.type, mode.optional, mode.computed) == (b'"string"', True, True)
    assert (found.type, found.computed, found.sensitive) == (b'"bool"', True, True)
    assert found.description == "Found." and found.description_kind == pb.MARKDOWN


# ------------------------------------------------------------------ JSON (state upgrades)


def test_json_decoding_ignores_attributes_dropped_from_the_schema() -> None:
    data = json.dumps(
        {
            "name": "c",
            "enabled": True,
            "tags": {"a": "b"},
            "rules": [{"port": 1, "proto": "tcp", "legacy": "gone"}],
            "zones": [],
            "inner": None,
            "removed_attribute": {"whatever": 1},
        }
    ).encode()
    assert decode_json(data, NESTED) == {
        "name": "c",
        "enabled": True,
        "tags": {"a": "b"},
        "rules": [{"port": 1, "proto": "tcp"}],
        "zones": [],
        "inner": None,
    }


def test_json_missing_attributes_are_null_and_numbers_exact() -> None:
    assert decode_json(b'{"port": 12345678901234567890123}', RULE) == {
        "port": 12345678901234567890123,
        "proto": None,
    }
    assert decode_json(b'{"port": "42"}', RULE)["port"] == 42
    assert decode_json(b'{"port": 2.5}', RULE)["port"] == 2.5
    assert decode_json(b"null", RULE) is None


def test_json_dynamic_value_has_value_and_type() -> None:
    data = b'{"v": {"value": ["a", "b"], "type": ["list", "string"]}}'
    assert decode_json(data, Object({"v": DYNAMIC})) == {"v": ["a", "b"]}


@pytest.mark.parametrize(
    ("data", "ty"),
    [
        (b"{not json", RULE),
        (b"\xff\xfe", RULE),
        (b'{"port": "abc"}', RULE),
        (b'{"port": true}', RULE),
        (b'{"proto": 5}', RULE),
        (b"[1, 2]", RULE),
        (b'{"a": 1}', Map(STRING)),
        (b'"x"', List(STRING)),
        (b'{"value": 1}', DYNAMIC),
        (b'{"value": 1, "type": "bogus"}', DYNAMIC),
    ],
)
def test_json_malformed_raises_codec_error(data: bytes, ty: CtyType) -> None:
    with pytest.raises(CodecError):
        decode_json(data, ty)


# ------------------------------------------------------------------ properties

PRIMITIVES = st.sampled_from([STRING, NUMBER, BOOL])
NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


def _object_types(children):
    return st.dictionaries(NAMES, children, min_size=1, max_size=4).map(Object)


TYPES = st.recursive(
    PRIMITIVES | st.just(DYNAMIC),
    lambda children: st.one_of(
        children.map(List),
        children.map(Set),
        children.map(Map),
        _object_types(children),
        st.lists(children, min_size=1, max_size=3).map(lambda ts: Tuple(tuple(ts))),
    ),
    max_leaves=8,
)

NUMBERS = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
JSONISH = st.recursive(
    st.text(max_size=5) | NUMBERS | st.booleans(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def values(ty: CtyType) -> st.SearchStrategy:
    if ty == STRING:
        known = st.text(max_size=10)
    elif ty == NUMBER:
        known = NUMBERS
    elif ty == BOOL:
        known = st.booleans()
    elif ty == DYNAMIC:
        known = JSONISH
    elif isinstance(ty, (List, Set)):
        known = st.lists(values(ty.element), max_size=3)
    elif isinstance(ty, Map):
        known = st.dictionaries(st.text(max_size=5), values(ty.element), max_size=3)
    elif isinstance(ty, Object):
        known = st.fixed_dictionaries({k: values(t) for k, t in ty.attributes.items()})
    else:
        known = st.tuples(*(values(t) for t in ty.elements)).map(list)
    return st.one_of(known, known, st.none(), st.just(UNKNOWN))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TYPES.flatmap(lambda ty: st.tuples(st.just(ty), values(ty))))
def test_property_msgpack_roundtrip(case) -> None:
    ty, value = case
    assert decode_msgpack(encode_msgpack(value, ty), ty) == value


DECODE_TYPES = [
    STRING,
    NUMBER,
    BOOL,
    DYNAMIC,
    List(STRING),
    Map(NUMBER),
    Set(BOOL),
    Tuple((STRING, NUMBER)),
    RULE,
    NESTED,
]


def _only_codec_errors(data: bytes, ty: CtyType) -> None:
    with contextlib.suppress(CodecError):
        decode_msgpack(data, ty)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(DECODE_TYPES))
def test_property_random_bytes_only_raise_codec_error(data: bytes, ty: CtyType) -> None:
    _only_codec_errors(data, ty)


MSGPACK_OBJECTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 9), children, max_size=3)
    ),
    max_leaves=8,
)

TYPE_WORDS = st.sampled_from(
    ["string", "number", "bool", "dynamic", "list", "set", "map", "object", "tuple", "x"]
)
TYPE_SPECS = st.recursive(
    TYPE_WORDS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=2)
    ),
    max_leaves=5,
)


@settings(max_examples=400, deadline=None)
@given(MSGPACK_OBJECTS, st.sampled_from(DECODE_TYPES))
def test_property_well_formed_msgpack_of_the_wrong_shape_only_raises_codec_error(
    raw, ty: CtyType
) -> None:
    _only_codec_errors(msgpack.packb(raw, use_bin_type=True), ty)


@settings(max_examples=400, deadline=None)
@given(TYPE_SPECS, MSGPACK_OBJECTS)
@example(["object", "string"], {})
@example(["tuple", 5], [])
def test_property_dynamic_with_any_type_spec_only_raises_codec_error(spec, raw) -> None:
    data = msgpack.packb([json.dumps(spec).encode(), raw], use_bin_type=True)
    _only_codec_errors(data, DYNAMIC)


def test_a_null_value_is_told_without_decoding_it() -> None:
    from tfprovider_immuta_pg.protocol.convert import is_null
    from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2 as pb

    ty = Object({"name": STRING})
    assert is_null(pb.DynamicValue(msgpack=encode_msgpack(None, ty)))
    assert is_null(pb.DynamicValue())  # Terraform sends nothing for a destroy, too
    assert is_null(pb.DynamicValue(json=b" null "))
    assert not is_null(pb.DynamicValue(msgpack=encode_msgpack({"name": None}, ty)))
    assert not is_null(pb.DynamicValue(json=b'{"name": null}'))
