"""Validation and planning rules shared by every resource."""

from __future__ import annotations

import copy
from typing import Any

from .diagnostics import Diagnostics, Path
from .schema import Attribute, Block, PlanStep, Schema
from .values import UNKNOWN


def validate_values(schema: Schema, config: Any, diags: Diagnostics) -> None:
    """Run attribute validators on every known, non-null configured value."""
    for path, attr, value, _ in schema.block.walk(config):
        if value is None or value is UNKNOWN:
            continue
        for validator in attr.validators:
            validator(value, path, diags)


def plan_change(schema: Schema, prior: Any, proposed: Any, config: Any) -> tuple[Any, list[Path]]:
    """The planned state and the paths that force replacement.

    Terraform's proposed state already merges config over prior state; here
    defaults are applied, computed values left to the provider become
    unknown, and plan modifiers run.
    """
    if proposed is None:
        return None, []
    planned = copy.deepcopy(proposed)
    creating = prior is None
    _apply_defaults(schema.block, planned, config)
    _clear_write_only(schema.block, planned)
    _keep_equivalent_prior(schema.block, prior, planned)
    if creating or prior != planned:
        _unknown_computed(schema.block, planned, config)
    requires_replace: list[Path] = []
    steps = _modifier_steps(schema.block, prior, config, planned, creating)
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
    return planned, requires_replace


def _apply_defaults(block: Block, planned: Any, config: Any) -> None:
    for path, attr, _, parent in block.walk(planned):
        if attr.default is not None and _at(config, path) is None:
            parent[path[-1]] = copy.deepcopy(attr.default)


def _keep_equivalent_prior(block: Block, prior: Any, planned: Any) -> None:
    for path, attr, value, parent in block.walk(planned):
        if attr.semantically_equal is None or value is None or value is UNKNOWN:
            continue
        before = _at(prior, path)
        if before is not None and before != value and attr.semantically_equal(before, value):
            parent[path[-1]] = before


def _clear_write_only(block: Block, planned: Any) -> None:
    for path, attr, _, parent in block.walk(planned):
        if attr.write_only:
            parent[path[-1]] = None


def _unknown_computed(block: Block, planned: Any, config: Any) -> None:
    for path, attr, _, parent in block.walk(planned):
        if attr.computed and attr.default is None and _at(config, path) is None:
            parent[path[-1]] = UNKNOWN


def _modifier_steps(
    block: Block, prior: Any, config: Any, planned: Any, creating: bool
) -> list[tuple[PlanStep, Attribute, dict[str, Any], Any]]:
    steps = []
    for path, attr, value, parent in block.walk(planned):
        if attr.plan_modifiers:
            step = PlanStep(path, _at(prior, path), _at(config, path), value, creating)
            steps.append((step, attr, parent, path[-1]))
    return steps


def _at(value: Any, path: Path) -> Any:
    for step in path:
        if value is None or value is UNKNOWN:
            return None
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and step < len(value) else None
        else:
            value = value.get(step if isinstance(step, str) else step.value)
    return value
