"""Framework objects <-> tfplugin6 messages: schemas, functions, diagnostics, values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..framework.capabilities import ClientCapabilities
from ..framework.diagnostics import ERROR, Diagnostic, Key, Path
from ..framework.provider import Function
from ..framework.schema import (
    LIST,
    MAP,
    SET,
    SINGLE,
    Attribute,
    Block,
    NestedAttribute,
    Schema,
)
from ..framework.secrets import redact
from ..framework.types import CtyType
from .codec import decode_json, decode_msgpack, encode_msgpack
from .gen import tfplugin6_pb2 as pb

_NESTING = {
    SINGLE: pb.Schema.NestedBlock.SINGLE,
    LIST: pb.Schema.NestedBlock.LIST,
    SET: pb.Schema.NestedBlock.SET,
}
_OBJECT_NESTING = {
    SINGLE: pb.Schema.Object.SINGLE,
    LIST: pb.Schema.Object.LIST,
    SET: pb.Schema.Object.SET,
    MAP: pb.Schema.Object.MAP,
}


def schema_to_proto(schema: Schema) -> pb.Schema:
    return pb.Schema(version=schema.version, block=_block_to_proto(schema.block))


def _attribute_to_proto(name: str, attr: Attribute) -> pb.Schema.Attribute:
    """A nested attribute has `nested_type` (its objects and how they nest) and no `type`."""
    message = pb.Schema.Attribute(
        name=name,
        description=attr.description,
        description_kind=pb.MARKDOWN,
        required=attr.required,
        optional=attr.optional,
        computed=attr.computed,
        sensitive=attr.sensitive,
        write_only=attr.write_only,
    )
    if isinstance(attr, NestedAttribute):
        message.nested_type.CopyFrom(
            pb.Schema.Object(
                attributes=[_attribute_to_proto(n, a) for n, a in attr.attributes.items()],
                nesting=_OBJECT_NESTING[attr.nesting],
            )
        )
    else:
        message.type = attr.type.encoded()
    return message


def _block_to_proto(block: Block) -> pb.Schema.Block:
    attributes = [_attribute_to_proto(name, attr) for name, attr in block.attributes.items()]
    nested = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_to_proto(item.block),
            nesting=_NESTING[item.nesting],
            min_items=item.min_items,
            max_items=item.max_items,
        )
        for name, item in block.blocks.items()
    ]
    return pb.Schema.Block(
        attributes=attributes,
        block_types=nested,
        description=block.description,
        description_kind=pb.MARKDOWN,
    )


def function_to_proto(function: Function) -> pb.Function:
    message = pb.Function(
        parameters=[
            pb.Function.Parameter(
                name=p.name,
                type=p.type.encoded(),
                allow_null_value=p.allow_null,
                description=p.description,
                description_kind=pb.MARKDOWN,
            )
            for p in function.parameters
        ],
        summary=function.summary,
        description=function.description,
        description_kind=pb.MARKDOWN,
    )
    getattr(message, "return").type = function.returns.encoded()
    return message


def diagnostics_to_proto(diags: Iterable[Diagnostic]) -> list[pb.Diagnostic]:
    out = []
    for d in diags:
        message = pb.Diagnostic(
            severity=pb.Diagnostic.ERROR if d.severity == ERROR else pb.Diagnostic.WARNING,
            summary=redact(d.summary),
            detail=redact(d.detail),
        )
        if d.path:
            message.attribute.CopyFrom(path_to_proto(d.path))
        out.append(message)
    return out


def path_to_proto(path: Path) -> pb.AttributePath:
    steps = []
    for step in path:
        if isinstance(step, str):
            steps.append(pb.AttributePath.Step(attribute_name=step))
        elif isinstance(step, Key):
            steps.append(pb.AttributePath.Step(element_key_string=step.value))
        else:
            steps.append(pb.AttributePath.Step(element_key_int=step))
    return pb.AttributePath(steps=steps)


def is_null(dynamic: pb.DynamicValue) -> bool:
    """Whether a value is null, without decoding it."""
    if dynamic.msgpack:
        return dynamic.msgpack == b"\xc0"  # msgpack's nil
    return not dynamic.json or dynamic.json.strip() == b"null"


def value_from_proto(dynamic: pb.DynamicValue, ty: CtyType) -> Any:
    if dynamic.msgpack:
        return decode_msgpack(dynamic.msgpack, ty)
    if dynamic.json:
        return decode_json(dynamic.json, ty)
    return None


def value_to_proto(value: Any, ty: CtyType) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=encode_msgpack(value, ty))


def client_from_proto(capabilities: pb.ClientCapabilities) -> ClientCapabilities:
    """A request's client capabilities (an absent message reads as all false, as it means)."""
    return ClientCapabilities(
        deferral_allowed=capabilities.deferral_allowed,
        write_only_attributes_allowed=capabilities.write_only_attributes_allowed,
    )
