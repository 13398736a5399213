"""The framework's planning rules, schema walking and secret redaction."""

from __future__ import annotations

import copy
import uuid

import pytest

from tfprovider_immuta_pg.framework import secrets
from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
from tfprovider_immuta_pg.framework.plan import plan_change, validate_values
from tfprovider_immuta_pg.framework.schema import (
    LIST,
    SINGLE,
    Attribute,
    Block,
    IntBetween,
    NestedBlock,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from tfprovider_immuta_pg.framework.types import BOOL, NUMBER, STRING, List, Object
from tfprovider_immuta_pg.framework.values import UNKNOWN, is_wholly_known

OPTS = Block(
    attributes={
        "mode": Attribute(STRING, default="a", validators=[OneOf(("a", "b"))]),
        "flag": Attribute(BOOL, optional=True),
        "zone": Attribute(STRING, optional=True, plan_modifiers=[RequiresReplace()]),
        "resolved": Attribute(STRING, computed=True),
    }
)
RULES = Block(
    attributes={
        "port": Attribute(NUMBER, required=True, validators=[IntBetween(1, 10)]),
        "proto": Attribute(STRING, default="tcp"),
    }
)
SCHEMA = Schema(
    Block(
        attributes={
            "name": Attribute(STRING, required=True, plan_modifiers=[RequiresReplace()]),
            "size": Attribute(NUMBER, default=3, validators=[IntBetween(1, 9)]),
            "note": Attribute(STRING, optional=True),
            "token": Attribute(STRING, optional=True, sensitive=True, write_only=True),
            "id": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
            "version": Attribute(STRING, computed=True),
        },
        blocks={"opts": NestedBlock(OPTS, SINGLE), "rules": NestedBlock(RULES, LIST)},
    )
)


def config_of(**values):
    """A configuration: every attribute present, computed-only ones null."""
    config = dict.fromkeys(SCHEMA.block.attributes)
    config.update(opts=None, rules=[])
    config.update(values)
    return config


def proposed_create(config):
    """What Terraform proposes on create: the configuration itself."""
    return copy.deepcopy(config)


def state(**values):
    base = {
        "name": "one",
        "size": 3,
        "note": "n",
        "token": None,
        "id": "id-1",
        "version": "v1",
        "opts": {"mode": "a", "flag": True, "zone": "z1", "resolved": "r1"},
        "rules": [{"port": 1, "proto": "tcp"}],
    }
    base.update(values)
    return base


def config_from_state(prior, **changes):
    config = copy.deepcopy(prior)
    config.update(id=None, version=None)
    if config["opts"] is not None:
        config["opts"]["resolved"] = None
    config.update(changes)
    return config


def proposed_update(prior, config):
    """Terraform's proposed new state: config values, computed-only ones from prior."""
    proposed = copy.deepcopy(config)
    proposed["id"], proposed["version"] = prior["id"], prior["version"]
    if proposed["opts"] is not None and prior["opts"] is not None:
        proposed["opts"]["resolved"] = prior["opts"]["resolved"]
    return proposed


# ------------------------------------------------------------------ create


def test_create_applies_defaults_and_leaves_computed_unknown() -> None:
    config = config_of(
        name="one", opts={"mode": None, "flag": None, "zone": None, "resolved": None}
    )
    config["rules"] = [{"port": 1, "proto": None}, {"port": 2, "proto": "udp"}]
    planned, replace = plan_change(SCHEMA, None, proposed_create(config), config)
    assert replace == []
    assert planned["size"] == 3
    assert planned["opts"]["mode"] == "a"
    assert planned["rules"] == [{"port": 1, "proto": "tcp"}, {"port": 2, "proto": "udp"}]
    assert planned["id"] is UNKNOWN
    assert planned["version"] is UNKNOWN
    assert planned["opts"]["resolved"] is UNKNOWN
    assert planned["note"] is None  # optional, unset: stays null
    assert planned["opts"]["flag"] is None
    assert planned["name"] == "one"


def test_configured_value_wins_over_default() -> None:
    config = config_of(name="one", size=7)
    planned, _ = plan_change(SCHEMA, None, proposed_create(config), config)
    assert planned["size"] == 7


def test_unknown_configured_value_is_not_replaced_by_default() -> None:
    config = config_of(name="one", size=UNKNOWN)
    planned, _ = plan_change(SCHEMA, None, proposed_create(config), config)
    assert planned["size"] is UNKNOWN


def test_plan_does_not_modify_its_inputs() -> None:
    config = config_of(name="one")
    proposed = proposed_create(config)
    before = copy.deepcopy(proposed)
    plan_change(SCHEMA, None, proposed, config)
    assert proposed == before


# ------------------------------------------------------------------ update


def test_no_change_plans_the_prior_state() -> None:
    prior = state()
    config = config_from_state(prior)
    planned, replace = plan_change(SCHEMA, prior, proposed_update(prior, config), config)
    assert planned == prior
    assert is_wholly_known(planned)
    assert replace == []


def test_in_place_change_keeps_use_state_for_unknown_values() -> None:
    prior = state()
    config = config_from_state(prior, note="changed")
    planned, replace = plan_change(SCHEMA, prior, proposed_update(prior, config), config)
    assert replace == []
    assert planned["note"] == "changed"
    assert planned["id"] == "id-1"  # UseStateForUnknown
    assert planned["version"] is UNKNOWN  # plain computed: known after apply
    assert planned["opts"]["resolved"] is UNKNOWN


def test_requires_replace_on_a_top_level_attribute() -> None:
    prior = state()
    config = config_from_state(prior, name="two")
    planned, replace = plan_change(SCHEMA, prior, proposed_update(prior, config), config)
    assert replace == [("name",)]
    assert planned["name"] == "two"
    assert planned["id"] is UNKNOWN  # UseStateForUnknown does not apply when replacing
    assert planned["version"] is UNKNOWN


def test_requires_replace_inside_a_nested_block() -> None:
    prior = state()
    config = config_from_state(prior)
    config["opts"]["zone"] = "z2"
    planned, replace = plan_change(SCHEMA, prior, proposed_update(prior, config), config)
    assert replace == [("opts", "zone")]
    assert planned["id"] is UNKNOWN


def test_unknown_value_of_a_requires_replace_attribute_forces_replacement() -> None:
    prior = state()
    config = config_from_state(prior, name=UNKNOWN)
    planned, replace = plan_change(SCHEMA, prior, proposed_update(prior, config), config)
    assert replace == [("name",)]
    assert planned["name"] is UNKNOWN


def test_default_restored_when_removed_from_config() -> None:
    prior = state(size=5)
    config = config_from_state(prior, size=None)
    proposed = proposed_update(prior, config)
    proposed["size"] = 5  # optional+computed: Terraform proposes the prior value
    planned, _ = plan_change(SCHEMA, prior, proposed, config)
    assert planned["size"] == 3


def test_destroy_plans_null() -> None:
    assert plan_change(SCHEMA, state(), None, None) == (None, [])


def test_write_only_attributes_are_planned_null() -> None:
    config = config_of(name="one", token="s3cr3t-token")
    planned, _ = plan_change(SCHEMA, None, proposed_create(config), config)
    assert planned["token"] is None
    prior = state()
    config = config_from_state(prior, token="s3cr3t-token")
    proposed = proposed_update(prior, config)
    planned, replace = plan_change(SCHEMA, prior, proposed, config)
    assert planned["token"] is None
    assert planned == prior  # a write-only value alone is no change
    assert replace == []


# ------------------------------------------------------------------ schema


def test_value_type_of_nested_blocks() -> None:
    ty = SCHEMA.value_type
    assert isinstance(ty.attributes["opts"], Object)
    assert ty.attributes["rules"] == List(RULES.value_type())
    assert ty.to_json()[1]["rules"] == ["list", ["object", {"port": "number", "proto": "string"}]]


def test_walk_goes_into_single_and_list_blocks() -> None:
    value = state(rules=[{"port": 1, "proto": "tcp"}, {"port": 2, "proto": "udp"}])
    seen = {path: v for path, _, v, _ in SCHEMA.block.walk(value)}
    assert seen[("name",)] == "one"
    assert seen[("opts", "zone")] == "z1"
    assert seen[("rules", 0, "port")] == 1
    assert seen[("rules", 1, "proto")] == "udp"
    assert len(seen) == 6 + 4 + 2 * 2


def test_walk_parent_is_the_containing_object() -> None:
    value = state()
    for path, attr, _, parent in SCHEMA.block.walk(value):
        if path == ("rules", 0, "proto"):
            assert attr is RULES.attributes["proto"]
            parent[path[-1]] = "sctp"
    assert value["rules"][0]["proto"] == "sctp"


def test_walk_skips_null_and_unknown_blocks() -> None:
    assert list(SCHEMA.block.walk(None)) == []
    assert list(SCHEMA.block.walk(UNKNOWN)) == []
    paths = [p for p, *_ in SCHEMA.block.walk(state(opts=None, rules=UNKNOWN))]
    assert paths == [("name",), ("size",), ("note",), ("token",), ("id",), ("version",)]


def test_validators_run_with_paths_and_skip_unknown() -> None:
    diags = Diagnostics()
    value = state(size=UNKNOWN, rules=[{"port": 1, "proto": "tcp"}, {"port": 11, "proto": None}])
    value["opts"]["mode"] = "c"
    validate_values(SCHEMA, value, diags)
    assert [d.path for d in diags] == [("opts", "mode"), ("rules", 1, "port")]
    assert '"c" is not allowed' in diags[0].detail
    assert "11 is out of range" in diags[1].detail


# ------------------------------------------------------------------ secrets


def test_redact_masks_registered_secrets() -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    assert secrets.redact(f"login with {secret} failed") == f"login with {secret} failed"
    secrets.register(secret)
    assert secrets.redact(f"login with {secret} failed, {secret}!") == (
        f"login with {secrets.MASK} failed, {secrets.MASK}!"
    )
    assert secret not in secrets.redact(f"x{secret}x")


def test_redact_masks_the_longest_secret_first() -> None:
    short = uuid.uuid4().hex[:8]
    long = short + "-and-more"
    secrets.register(short)
    secrets.register(long)
    assert secrets.redact(f"[{long}]") == f"[{secrets.MASK}]"


@pytest.mark.parametrize("value", [None, "", "abc"])
def test_tiny_or_empty_secrets_are_not_registered(value) -> None:
    secrets.register(value)
    assert secrets.redact("abc is a word") == "abc is a word"
