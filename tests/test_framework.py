"""The framework's planning rules, schema walking and secret redaction."""

from __future__ import annotations

import copy
import uuid

import pytest

from tfprovider_immuta_pg.framework import secrets
from tfprovider_immuta_pg.framework.diagnostics import Diagnostics, Key, located, path_text
from tfprovider_immuta_pg.framework.plan import plan_change, validate_values
from tfprovider_immuta_pg.framework.schema import (
    LIST,
    MAP,
    SET,
    SINGLE,
    Attribute,
    Block,
    IntBetween,
    NestedAttribute,
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


# ------------------------------------------------------------------ nested attributes
#
# A schema shaped like a resource holding many user mappings: a MAP nested attribute whose
# elements hold optional SINGLE nested objects with defaults and computed values.


def _same_in_any_case(a, b) -> bool:
    return a.casefold() == b.casefold()


class _UsernameNeeded:
    description = "a username when mode is username"

    def __call__(self, value, path, diags) -> None:
        if value.get("mode") == "username" and value.get("username") is None:
            diags.error("Missing username", 'mode "username" needs a username.', path)


ENTRY = {
    "postgres": NestedAttribute(
        "PostgreSQL side.",
        optional=True,
        attributes={
            "mode": Attribute(STRING, default="unset", validators=[OneOf(("username", "unset"))]),
            "username": Attribute(STRING, optional=True, semantically_equal=_same_in_any_case),
        },
    ),
    "role": Attribute(STRING, optional=True, plan_modifiers=[RequiresReplace()]),
    "found": Attribute(BOOL, computed=True),
    "effective": Attribute(STRING, computed=True),
    "created": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
}
MAPPINGS = Schema(
    Block(
        attributes={
            "connection": Attribute(STRING, required=True),
            "id": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
            "updated": Attribute(STRING, computed=True),
            "mappings": NestedAttribute(
                "Entries by user.",
                optional=True,
                nesting=MAP,
                attributes=ENTRY,
                element_validators=[
                    lambda value, path, diags: _UsernameNeeded()(
                        value["postgres"] or {}, path, diags
                    )
                ],
            ),
        }
    )
)


def entry_config(postgres=None, role=None):
    return {"postgres": postgres, "role": role, "found": None, "effective": None, "created": None}


def entry_state(user: str, postgres=None, role=None, created="c1"):
    mode = (postgres or {}).get("mode", "unset")
    effective = (postgres or {}).get("username") if mode == "username" else user
    return {
        "postgres": postgres,
        "role": role,
        "found": True,
        "effective": effective,
        "created": created,
    }


def mappings_config(entries: dict) -> dict:
    return {"connection": "c", "id": None, "updated": None, "mappings": entries}


def mappings_state(n: int) -> dict:
    entries = {
        f"user{i}@example.com": entry_state(
            f"user{i}@example.com", {"mode": "username", "username": f"User{i}"}, created=f"c{i}"
        )
        for i in range(n)
    }
    return {"connection": "c", "id": "c", "updated": "u1", "mappings": entries}


def config_for(prior: dict) -> dict:
    """The configuration that produced `prior` (computed values unset)."""
    return mappings_config(
        {
            k: entry_config(copy.deepcopy(v["postgres"]), v["role"])
            for k, v in prior["mappings"].items()
        }
    )


def test_create_of_a_map_applies_defaults_per_element_and_leaves_computed_unknown() -> None:
    config = mappings_config(
        {
            "alice": entry_config({"mode": "username", "username": "Alice"}),
            "bob": entry_config(),  # no postgres object: stays null
            "carol": entry_config({"mode": None, "username": None}),  # mode from its default
        }
    )
    planned, replace = plan_change(MAPPINGS, None, copy.deepcopy(config), config)
    assert replace == []
    assert planned["id"] is UNKNOWN
    alice, bob, carol = (planned["mappings"][k] for k in ("alice", "bob", "carol"))
    assert alice["postgres"] == {"mode": "username", "username": "Alice"}
    assert bob["postgres"] is None
    assert carol["postgres"] == {"mode": "unset", "username": None}
    for entry in (alice, bob, carol):
        assert entry["found"] is UNKNOWN and entry["effective"] is UNKNOWN
        assert entry["created"] is UNKNOWN  # a new element has no prior value to keep
        assert entry["role"] is None


def test_unchanged_map_plans_exactly_the_prior_state() -> None:
    prior = mappings_state(50)
    config = config_for(prior)
    planned, replace = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert planned == prior and replace == []
    assert is_wholly_known(planned)


def test_one_changed_entry_of_10000_is_the_only_one_with_unknown_values() -> None:
    prior = mappings_state(10_000)
    config = config_for(prior)
    config["mappings"]["user7@example.com"]["postgres"]["username"] = "someone_else"
    planned, replace = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert replace == []
    changed = planned["mappings"]["user7@example.com"]
    assert changed["postgres"]["username"] == "someone_else"
    assert changed["found"] is UNKNOWN and changed["effective"] is UNKNOWN
    assert changed["created"] == "c7"  # UseStateForUnknown keeps it within the element
    others = {k: v for k, v in planned["mappings"].items() if k != "user7@example.com"}
    assert others == {k: v for k, v in prior["mappings"].items() if k != "user7@example.com"}
    assert is_wholly_known(others)
    # The resource changed: its own computed values are unknown, but for its id.
    assert planned["updated"] is UNKNOWN and planned["id"] == "c"


def test_new_key_gets_unknown_values_and_the_others_keep_theirs() -> None:
    prior = mappings_state(3)
    config = config_for(prior)
    config["mappings"]["dave@example.com"] = entry_config()
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    dave = planned["mappings"]["dave@example.com"]
    assert dave["created"] is UNKNOWN and dave["effective"] is UNKNOWN
    for key, entry in prior["mappings"].items():
        assert planned["mappings"][key] == entry


def test_removed_key_leaves_the_others_as_they_were() -> None:
    prior = mappings_state(3)
    config = config_for(prior)
    del config["mappings"]["user1@example.com"]
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert set(planned["mappings"]) == {"user0@example.com", "user2@example.com"}
    assert is_wholly_known(planned["mappings"])
    assert planned["updated"] is UNKNOWN  # the removal itself is the change


def test_case_only_change_inside_an_element_is_no_change() -> None:
    prior = mappings_state(3)
    config = config_for(prior)
    config["mappings"]["user1@example.com"]["postgres"]["username"] = "USER1"
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert planned == prior  # the prior spelling is kept, nothing is unknown
    assert planned["mappings"]["user1@example.com"]["postgres"]["username"] == "User1"


def test_unknown_values_inside_an_element() -> None:
    prior = mappings_state(2)
    config = config_for(prior)
    config["mappings"]["user0@example.com"]["postgres"]["username"] = UNKNOWN
    config["mappings"]["late@example.com"] = UNKNOWN  # a whole element from an unknown value
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    user0 = planned["mappings"]["user0@example.com"]
    assert user0["postgres"] == {"mode": "username", "username": UNKNOWN}
    assert user0["effective"] is UNKNOWN and user0["created"] == "c0"
    # Terraform refuses an unknown element of a nested attribute: the object is known,
    # its attributes are not.
    assert planned["mappings"]["late@example.com"] == dict.fromkeys(ENTRY, UNKNOWN)
    assert planned["mappings"]["user1@example.com"] == prior["mappings"]["user1@example.com"]


def test_unknown_map_plans_unknown() -> None:
    prior = mappings_state(2)
    config = mappings_config(UNKNOWN)
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert planned["mappings"] is UNKNOWN


def test_requires_replace_inside_a_map_element_names_the_key() -> None:
    prior = mappings_state(2)
    config = config_for(prior)
    config["mappings"]["user1@example.com"]["role"] = "admin"
    planned, replace = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    assert replace == [("mappings", Key("user1@example.com"), "role")]
    assert planned["id"] is UNKNOWN  # replacing: UseStateForUnknown keeps nothing
    assert planned["mappings"]["user1@example.com"]["created"] is UNKNOWN


def test_planned_value_shares_no_containers_with_its_inputs() -> None:
    prior = mappings_state(2)
    config = config_for(prior)
    before = (copy.deepcopy(prior), copy.deepcopy(config))
    planned, _ = plan_change(MAPPINGS, prior, copy.deepcopy(prior), config)
    planned["mappings"]["user0@example.com"]["postgres"]["username"] = "changed"
    planned["mappings"]["user1@example.com"]["found"] = False
    assert (prior, config) == before


def test_validators_run_per_element_with_the_key_in_the_path() -> None:
    config = mappings_config(
        {
            "alice@example.com": entry_config({"mode": "bogus", "username": None}),
            "bob@example.com": entry_config({"mode": "username", "username": None}),
            "carol@example.com": entry_config({"mode": UNKNOWN, "username": None}),
            "dave@example.com": UNKNOWN,
        }
    )
    diags = Diagnostics()
    validate_values(MAPPINGS, config, diags)
    assert [(d.summary, d.path) for d in diags] == [
        ("Invalid value", ("mappings", Key("alice@example.com"), "postgres", "mode")),
        ("Missing username", ("mappings", Key("bob@example.com"))),
    ]
    # Terraform can only point at the resource for a value inside a nested attribute, so
    # the detail leads with the element's path.
    assert diags[0].detail == (
        'mappings["alice@example.com"].postgres.mode: "bogus" is not allowed here; expected '
        'one of "username", "unset".'
    )
    assert diags[1].detail.startswith('mappings["bob@example.com"]: mode "username"')


def test_path_text_spells_paths_as_terraform_expressions() -> None:
    assert path_text(("mappings", Key('a"b@x'), "postgres", "mode")) == (
        'mappings["a\\"b@x"].postgres.mode'
    )
    assert path_text(("rules", 2, "port")) == "rules[2].port"
    assert located("text", ("name",)) == "text"  # Terraform shows a plain attribute's line
    assert located("rules[2].port is wrong", ("rules", 2, "port")) == "rules[2].port is wrong"


LISTS = Schema(
    Block(
        attributes={
            "ports": NestedAttribute(
                "Ports.",
                optional=True,
                nesting=LIST,
                attributes={
                    "number": Attribute(NUMBER, required=True),
                    "protocol": Attribute(STRING, default="tcp"),
                    "label": Attribute(STRING, computed=True),
                },
            ),
            "tags": NestedAttribute(
                "Tags.",
                optional=True,
                nesting=SET,
                attributes={
                    "name": Attribute(STRING, required=True),
                    "value": Attribute(STRING, optional=True),
                    "uid": Attribute(STRING, computed=True),
                },
            ),
            "policy": NestedAttribute(
                "Retention.",
                default={"days": 30, "action": None},
                attributes={
                    "days": Attribute(NUMBER, default=30),
                    "action": Attribute(STRING, optional=True),
                    "since": Attribute(STRING, computed=True),
                },
            ),
            "summary": NestedAttribute(
                "Computed by the resource.",
                computed=True,
                attributes={"count": Attribute(NUMBER, computed=True)},
            ),
        }
    )
)


def lists_state() -> dict:
    return {
        "ports": [
            {"number": 80, "protocol": "tcp", "label": "80/tcp"},
            {"number": 53, "protocol": "udp", "label": "53/udp"},
        ],
        "tags": [
            {"name": "team", "value": "data", "uid": "t1"},
            {"name": "env", "value": None, "uid": "t2"},
        ],
        "policy": {"days": 30, "action": None, "since": "s1"},
        "summary": {"count": 2},
    }


def lists_config(prior: dict) -> dict:
    return {
        "ports": [
            {"number": p["number"], "protocol": p["protocol"], "label": None}
            for p in prior["ports"]
        ],
        "tags": [{"name": t["name"], "value": t["value"], "uid": None} for t in prior["tags"]],
        "policy": None,
        "summary": None,
    }


def test_list_elements_are_matched_by_index() -> None:
    prior = lists_state()
    config = lists_config(prior)
    config["ports"][1]["protocol"] = None  # back to the default: "tcp"
    config["ports"].append({"number": 443, "protocol": None, "label": None})
    planned, _ = plan_change(LISTS, prior, copy.deepcopy(prior), config)
    assert planned["ports"] == [
        {"number": 80, "protocol": "tcp", "label": "80/tcp"},
        {"number": 53, "protocol": "tcp", "label": UNKNOWN},
        {"number": 443, "protocol": "tcp", "label": UNKNOWN},
    ]
    assert planned["tags"] == prior["tags"]


def test_set_elements_are_matched_by_their_configured_values() -> None:
    prior = lists_state()
    config = lists_config(prior)
    config["tags"] = [
        {"name": "owner", "value": "me", "uid": None},
        {"name": "env", "value": None, "uid": None},  # unchanged, now first
    ]
    planned, _ = plan_change(LISTS, prior, copy.deepcopy(prior), config)
    assert planned["tags"] == [
        {"name": "owner", "value": "me", "uid": UNKNOWN},
        {"name": "env", "value": None, "uid": "t2"},
    ]


def test_object_default_and_defaults_inside_it() -> None:
    config = lists_config(lists_state())
    planned, _ = plan_change(LISTS, None, copy.deepcopy(config), config)
    assert planned["policy"] == {"days": 30, "action": None, "since": UNKNOWN}
    config["policy"] = {"days": None, "action": "delete", "since": None}
    planned, _ = plan_change(LISTS, None, copy.deepcopy(config), config)
    assert planned["policy"] == {"days": 30, "action": "delete", "since": UNKNOWN}


def test_computed_nested_attribute_keeps_its_value_until_the_resource_changes() -> None:
    prior = lists_state()
    config = lists_config(prior)
    planned, _ = plan_change(LISTS, prior, copy.deepcopy(prior), config)
    assert planned == prior
    config["ports"].pop()
    planned, _ = plan_change(LISTS, prior, copy.deepcopy(prior), config)
    assert planned["summary"] is UNKNOWN
    assert planned["policy"]["since"] is UNKNOWN  # a SINGLE object belongs to its holder


def test_write_only_inside_an_element_is_planned_null() -> None:
    schema = Schema(
        Block(
            attributes={
                "items": NestedAttribute(
                    "Items.",
                    optional=True,
                    nesting=MAP,
                    attributes={"secret": Attribute(STRING, optional=True, write_only=True)},
                )
            }
        )
    )
    config = {"items": {"a": {"secret": "s3cr3t"}}}
    planned, _ = plan_change(schema, None, copy.deepcopy(config), config)
    assert planned == {"items": {"a": {"secret": None}}}


def test_nested_attribute_types_and_walk() -> None:
    ty = MAPPINGS.value_type.attributes["mappings"]
    assert ty.to_json() == [
        "map",
        [
            "object",
            {
                "postgres": ["object", {"mode": "string", "username": "string"}],
                "role": "string",
                "found": "bool",
                "effective": "string",
                "created": "string",
            },
        ],
    ]
    assert LISTS.value_type.attributes["tags"].to_json()[0] == "set"
    assert LISTS.value_type.attributes["ports"].to_json()[0] == "list"
    value = mappings_state(1)
    seen = {path: v for path, _, v, _ in MAPPINGS.block.walk(value)}
    key = Key("user0@example.com")
    assert seen[("mappings", key, "postgres", "username")] == "User0"
    assert seen[("mappings", key, "created")] == "c0"
    assert ("mappings",) in seen  # the nested attribute itself comes first


def test_nested_attribute_declaration_rules() -> None:
    with pytest.raises(ValueError, match="computed-only attributes; name can be set"):
        NestedAttribute("x", computed=True, attributes={"name": Attribute(STRING, optional=True)})
    with pytest.raises(ValueError, match="unknown nesting"):
        NestedAttribute("x", optional=True, nesting="group", attributes={})
    with pytest.raises(ValueError, match="required, optional or computed"):
        NestedAttribute("x", attributes={})
