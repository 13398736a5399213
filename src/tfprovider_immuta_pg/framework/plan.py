"""Validation and planning rules shared by every resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .diagnostics import Diagnostics, Key, Path
from .schema import (
    LIST,
    MAP,
    SINGLE,
    Attribute,
    Block,
    NestedAttribute,
    PlanStep,
    Schema,
    elements,
)
from .values import UNKNOWN

# ------------------------------------------------------------------ validation


def validate_values(schema: Schema, config: Any, diags: Diagnostics) -> None:
    """Run validators on every known, non-null configured value, element by element."""
    _validate_object(schema.block, config, (), diags)


def _validate_object(block: Block, value: Any, path: Path, diags: Diagnostics) -> None:
    if value is None or value is UNKNOWN:
        return
    for name, attr in block.attributes.items():
        inner = value.get(name)
        if inner is None or inner is UNKNOWN:
            continue
        here = path + (name,)
        for validator in attr.validators:
            validator(inner, here, diags)
        if isinstance(attr, NestedAttribute):
            for element_path, element in elements(attr.nesting, inner, here):
                if element is not None and element is not UNKNOWN:
                    for validator in attr.element_validators:
                        validator(element, element_path, diags)
                _validate_object(attr.block, element, element_path, diags)
    for name, nested in block.blocks.items():
        for element_path, element in elements(nested.nesting, value.get(name), path + (name,)):
            _validate_object(nested.block, element, element_path, diags)


# ------------------------------------------------------------------ planning


def plan_change(schema: Schema, prior: Any, proposed: Any, config: Any) -> tuple[Any, list[Path]]:
    """The planned state and the paths that force replacement.

    The plan merges configuration over prior state as Terraform's proposed new state
    does (configured values win; computed values left unset keep their prior value),
    matching each element of a list by index, of a map by key and of a set by its
    non-computed values; it makes that merge itself, element by element, so `proposed`
    only tells a destroy (null) apart. Then defaults fill what the configuration leaves null,
    write-only values are dropped, and semantically equal values keep their prior
    spelling.

    Unknown computed values are decided per object: the resource, and each element of
    a list, set or map (nested attribute or block), is judged by its own values. An
    object that plans exactly as its prior keeps every computed value; a new or changed
    one leaves its computed values unset by configuration unknown ("known after
    apply"), unless a plan modifier (say, UseStateForUnknown) keeps them. So a change of
    one entry of a large map shows only that entry. Objects nested as SINGLE belong to
    the object holding them. Plan modifiers run last, those deciding replacement first.
    """
    if proposed is None:
        return None, []
    planner = _Planner(creating=prior is None)
    planned, _ = planner.scope(schema.block, prior, config if config is not None else {}, ())
    return planned, planner.run_modifiers()


class Nested(Protocol):
    """A nested attribute or block: objects of `block`, nested as `nesting`."""

    @property
    def block(self) -> Block: ...

    @property
    def nesting(self) -> str: ...


Slot = tuple[dict[str, Any], str]  # where a computed value may become unknown: (object, name)


class _Planner:
    def __init__(self, creating: bool) -> None:
        self.creating = creating
        # (attribute, path, prior value, configured value, planned object, name)
        self.sites: list[tuple[Attribute, Path, Any, Any, dict[str, Any], str]] = []

    def scope(
        self, block: Block, prior: dict[str, Any] | None, config: dict[str, Any], path: Path
    ) -> tuple[dict[str, Any], bool]:
        """An object judged by its own values: (planned object, whether it changed)."""
        slots: list[Slot] = []
        planned, changed = self.object(block, prior, config, path, slots)
        changed = changed or prior is None
        if changed:
            for parent, name in slots:
                parent[name] = UNKNOWN
        return planned, changed

    def object(
        self,
        block: Block,
        prior: dict[str, Any] | None,
        config: dict[str, Any],
        path: Path,
        slots: list[Slot],
    ) -> tuple[dict[str, Any], bool]:
        planned: dict[str, Any] = {}
        changed = False
        prior_get = (_EMPTY if prior is None else prior).get
        config_get = config.get
        for name, attr, nested, default, computed, write_only, equal in _rules(block):
            configured = config_get(name)
            before = prior_get(name)
            source = default if configured is None else configured
            differs: bool | None = None  # None: compare the planned value with `before`
            if write_only:
                value = None
            elif source is None:
                value = None
                if computed:
                    value = _fresh(before)
                    slots.append((planned, name))
            elif source is UNKNOWN:
                value = UNKNOWN
            elif nested is not None:
                value, differs = self.nested(nested, before, source, path + (name,), slots)
            else:
                value = source if type(source) is str else _fresh(source)
            if (
                equal is not None
                and before is not None
                and value is not None
                and value is not UNKNOWN
                and value != before
                and equal(before, value)
            ):
                value, differs = _fresh(before), False
            planned[name] = value
            if attr.plan_modifiers:
                self.sites.append((attr, path + (name,), before, configured, planned, name))
            if not changed:
                changed = value != before if differs is None else differs
        for name, nested_block in block.blocks.items():
            configured = config_get(name)
            before = prior_get(name)
            if configured is None or configured is UNKNOWN:
                planned[name] = configured
                changed = changed or configured != before
            else:
                value, differs = self.nested(
                    nested_block, before, configured, path + (name,), slots
                )
                planned[name] = value
                changed = changed or differs
        return planned, changed

    def nested(
        self, nested: Nested, before: Any, source: Any, path: Path, slots: list[Slot]
    ) -> tuple[Any, bool]:
        """A known, non-null nested value: (planned value, whether it changed)."""
        block = nested.block
        if nested.nesting == SINGLE:
            value, changed = self.object(block, before, source, path, slots)
            return value, changed or before is None
        if nested.nesting == MAP:
            prior_map: dict[str, Any] = before or {}
            planned_map: dict[str, Any] = {}
            changed = before is None or len(prior_map) != len(source)
            for key, element in source.items():
                planned_map[key], differs = self.element(
                    block, prior_map.get(key), element, path + (Key(key),)
                )
                changed = changed or differs
            return planned_map, changed
        prior_list: list[Any] = before or []
        if nested.nesting == LIST:
            counterparts = prior_list[: len(source)]
            counterparts += [None] * (len(source) - len(counterparts))
        else:
            counterparts = _set_counterparts(block, prior_list, source)
        changed = before is None or len(prior_list) != len(source)
        planned_list = []
        for index, (element, prior_element) in enumerate(zip(source, counterparts, strict=True)):
            value, differs = self.element(block, prior_element, element, path + (index,))
            planned_list.append(value)
            changed = changed or differs
        return planned_list, changed

    def element(self, block: Block, prior: Any, element: Any, path: Path) -> tuple[Any, bool]:
        """One element of a list, set or map: its own scope."""
        if element is None:
            return None, prior is not None
        if element is UNKNOWN:
            # Terraform wants a known object here; its attributes are what is unknown.
            return dict.fromkeys([*block.attributes, *block.blocks], UNKNOWN), True
        return self.scope(block, prior, element, path)

    def run_modifiers(self) -> list[Path]:
        steps = [
            (PlanStep(path, before, configured, parent[name], self.creating), attr, parent, name)
            for attr, path, before, configured, parent, name in self.sites
        ]
        requires_replace: list[Path] = []
        # Modifiers that decide replacement run first, so the others know of it.
        for step, attr, _, _ in steps:
            for modifier in attr.plan_modifiers:
                if not modifier.needs_replace_decision:
                    modifier(step)
            if step.requires_replace:
                requires_replace.append(step.path)
        for step, attr, parent, name in steps:
            step.replacing = bool(requires_replace)
            for modifier in attr.plan_modifiers:
                if modifier.needs_replace_decision:
                    modifier(step)
            parent[name] = step.planned
        return requires_replace


_EMPTY: dict[str, Any] = {}  # the prior object of a new one; never written to

# What planning needs of each attribute of a block, read once per block rather than per
# element: (name, attribute, nested attribute or None, default, computed, write-only,
# semantically_equal).
_Rule = tuple[
    str, Attribute, "NestedAttribute | None", Any, bool, bool, "Callable[[Any, Any], bool] | None"
]
_rules_by_block: dict[int, tuple[Block, list[_Rule]]] = {}


def _rules(block: Block) -> list[_Rule]:
    entry = _rules_by_block.get(id(block))
    if entry is None or entry[0] is not block:
        rules = [
            (
                name,
                attr,
                attr if isinstance(attr, NestedAttribute) else None,
                attr.default,
                attr.computed,
                attr.write_only,
                attr.semantically_equal,
            )
            for name, attr in block.attributes.items()
        ]
        entry = _rules_by_block[id(block)] = (block, rules)  # holding block keeps its id
    return entry[1]


def _set_counterparts(block: Block, prior: list[Any], config: list[Any]) -> list[Any]:
    """For each configured set element, the prior element it continues, or None.

    Set elements have no key: as Terraform does, an element continues a prior one
    whose non-computed values are the same.
    """
    names = [n for n, a in block.attributes.items() if not a.computed] + list(block.blocks)
    unused: dict[Any, list[Any]] = {}
    for element in prior:
        if element is not None:
            unused.setdefault(_identity(element, names), []).append(element)
    found = []
    for element in config:
        candidates = None
        if element is not None and element is not UNKNOWN:
            candidates = unused.get(_identity(element, names))
        found.append(candidates.pop(0) if candidates else None)
    return found


def _identity(element: dict[str, Any], names: list[str]) -> tuple[Any, ...]:
    return tuple(_hashable(element.get(name)) for name in names)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _fresh(value: Any) -> Any:
    """A copy of the containers in `value`, so the plan never shares them with its inputs."""
    kind = type(value)
    if kind is dict:
        return {k: _fresh(v) for k, v in value.items()}
    if kind is list:
        return [_fresh(v) for v in value]
    return value
