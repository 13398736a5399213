"""Schemas declared as data: attributes, nested attributes, blocks, validators, plan modifiers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from .diagnostics import Diagnostics, Key, Path
from .types import CtyType, List, Map, Object, Set
from .values import UNKNOWN

# How objects nest: one object, or a list, set or map of them (MAP: nested attributes only).
SINGLE = "single"
LIST = "list"
SET = "set"
MAP = "map"


class Validator(Protocol):
    """Checks one known, non-null value; reports at `path`."""

    description: str

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None: ...


@dataclass
class PlanStep:
    """What a plan modifier sees for one attribute and may change."""

    path: Path
    prior: Any  # value in prior state (None on create)
    config: Any  # value in configuration
    planned: Any  # value planned so far; modifiers may replace it
    creating: bool
    replacing: bool = False
    requires_replace: bool = False


class PlanModifier(Protocol):
    description: str
    needs_replace_decision: bool  # run after every RequiresReplace has spoken

    def __call__(self, step: PlanStep) -> None: ...


@dataclass
class Attribute:
    type: CtyType
    description: str = ""
    required: bool = False
    optional: bool = False
    computed: bool = False
    sensitive: bool = False
    write_only: bool = False
    default: Any = None
    validators: Sequence[Validator] = ()
    plan_modifiers: Sequence[PlanModifier] = ()
    env: Sequence[str] = ()  # environment fallbacks, documented; read by the provider
    # When prior and configured values mean the same (say, names that match in any case),
    # the plan keeps the prior value: no diff, and Read may keep what the user wrote.
    semantically_equal: Callable[[Any, Any], bool] | None = None

    def __post_init__(self) -> None:
        if self.default is not None:
            self.optional = self.computed = True
        if not (self.required or self.optional or self.computed):
            raise ValueError("an attribute must be required, optional or computed")


@dataclass(kw_only=True)
class NestedAttribute(Attribute):
    """An attribute holding objects: one (SINGLE), or a LIST, SET or MAP of them.

    Protocol 6 declares it with `nested_type` instead of a type; in configuration it is
    written as an attribute (`name = { ... }`), so it can be null, come from an expression,
    and a MAP of them is keyed by any string. Each element is an object of `attributes`,
    which may themselves be nested. `element_validators` run on each known element
    object with that element's path (for MAP: `(name, Key(key))`). Like a NestedBlock,
    it has a `block` (the element object's schema) and a `nesting`.
    """

    type: CtyType = field(init=False)
    attributes: dict[str, Attribute]
    nesting: str = SINGLE
    element_validators: Sequence[Validator] = ()
    block: Block = field(init=False, repr=False)  # the element object's schema

    def __post_init__(self) -> None:
        if self.nesting not in (SINGLE, LIST, SET, MAP):
            raise ValueError(f"unknown nesting {self.nesting!r}")
        self.block = Block(attributes=self.attributes)
        element = self.block.value_type()
        self.type = {SINGLE: element, LIST: List(element), SET: Set(element), MAP: Map(element)}[
            self.nesting
        ]
        super().__post_init__()
        if self.computed and not self.optional:
            settable = [n for n, a in self.attributes.items() if a.required or a.optional]
            if settable:
                raise ValueError(
                    "a computed-only nested attribute holds computed-only attributes; "
                    f"{', '.join(settable)} can be set"
                )


@dataclass
class Block:
    attributes: dict[str, Attribute] = field(default_factory=dict)
    blocks: dict[str, NestedBlock] = field(default_factory=dict)
    description: str = ""

    def value_type(self) -> Object:
        types: dict[str, CtyType] = {n: a.type for n, a in self.attributes.items()}
        for name, nested in self.blocks.items():
            inner = nested.block.value_type()
            types[name] = {SINGLE: inner, LIST: List(inner), SET: Set(inner)}[nested.nesting]
        return Object(types)

    def walk(
        self, value: Any, path: Path = ()
    ) -> Iterator[tuple[Path, Attribute, Any, dict[str, Any]]]:
        """Each attribute of a known object value: (path, attribute, value, parent).

        Goes into nested attributes (after yielding the nested attribute itself) and
        nested blocks; paths name list and set elements by index, map elements by Key.
        """
        if value is None or value is UNKNOWN:
            return
        for name, attr in self.attributes.items():
            inner = value.get(name)
            yield path + (name,), attr, inner, value
            if isinstance(attr, NestedAttribute):
                for element_path, element in elements(attr.nesting, inner, path + (name,)):
                    yield from attr.block.walk(element, element_path)
        for name, nested in self.blocks.items():
            for element_path, element in elements(nested.nesting, value.get(name), path + (name,)):
                yield from nested.block.walk(element, element_path)


def elements(nesting: str, value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """The elements of a known nested value, each with its path (an element may be null or
    unknown: a map or list can hold one)."""
    if value is None or value is UNKNOWN:
        return
    if nesting == SINGLE:
        yield path, value
    elif nesting == MAP:
        for key, element in value.items():
            yield path + (Key(key),), element
    else:
        for index, element in enumerate(value):
            yield path + (index,), element


@dataclass
class NestedBlock:
    block: Block
    nesting: str = SINGLE
    min_items: int = 0
    max_items: int = 0


@dataclass
class Schema:
    block: Block
    version: int = 0

    @cached_property
    def value_type(self) -> Object:
        """Computed once: the codec compiles a converter per type object."""
        return self.block.value_type()


# ------------------------------------------------------------------ validators


@dataclass
class OneOf:
    choices: Sequence[str]
    description: str = ""

    def __post_init__(self) -> None:
        self.description = "one of " + ", ".join(f'"{c}"' for c in self.choices)

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None:
        if value not in self.choices:
            diags.error(
                "Invalid value",
                f"{_quote(value)} is not allowed here; expected {self.description}.",
                path,
            )


@dataclass
class IntBetween:
    low: int
    high: int
    description: str = ""

    def __post_init__(self) -> None:
        self.description = f"a whole number from {self.low} to {self.high}"

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None:
        if not isinstance(value, int) or not self.low <= value <= self.high:
            diags.error(
                "Invalid value", f"{value} is out of range: expected {self.description}.", path
            )


@dataclass
class Check:
    """A validator from a function returning an error message, or None when fine."""

    check: Callable[[Any], str | None]
    description: str
    summary: str = "Invalid value"

    def __call__(self, value: Any, path: Path, diags: Diagnostics) -> None:
        problem = self.check(value)
        if problem:
            diags.error(self.summary, problem, path)


def _quote(value: Any) -> str:
    text = str(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


quote = _quote


# ------------------------------------------------------------- plan modifiers


class RequiresReplace:
    description = "Changing this value forces Terraform to replace the resource."
    needs_replace_decision = False

    def __call__(self, step: PlanStep) -> None:
        if step.creating or step.planned is UNKNOWN and step.prior is None:
            return
        if step.planned is UNKNOWN or step.planned != step.prior:
            step.requires_replace = True


class UseStateForUnknown:
    description = "The value does not change unless the resource is replaced."
    needs_replace_decision = True

    def __call__(self, step: PlanStep) -> None:
        if step.creating or step.replacing or step.prior is None:
            return
        if step.planned is UNKNOWN and step.config is None:
            step.planned = step.prior
