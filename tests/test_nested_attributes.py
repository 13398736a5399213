"""Nested attributes with real Terraform, through a test-only provider (harness.nested_provider).

Its `nestedtest_directory` holds a MAP of member objects (optional SINGLE `postgres` and
`aws` objects, a default inside `postgres`, computed values per member, one of them kept by
UseStateForUnknown), a LIST and a SET of objects, and a SINGLE object with an object default.
It keeps its members in a JSON file, and writes only the members whose configuration changed,
counting each member's writes in `revision`: a member written when it should not have been
shows up there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import Raw, Terraform, block, resource
from harness.nested_provider import REQUIRED_PROVIDERS, TYPE, install

ADDRESS = f"{TYPE}.d"


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    return install(tmp_path / "provider")


def workdir(tmp_path: Path, cli_config: Path, name: str) -> Terraform:
    return Terraform(tmp_path / name, env={"TF_CLI_CONFIG_FILE": str(cli_config)})


def configure(
    tf: Terraform,
    store: Path,
    members: dict[str, dict[str, Any]],
    extra: dict[str, Any] | None = None,
    after: str = "",
) -> None:
    """`members`: key -> that member's object; `extra`: more arguments of the resource;
    `after`: blocks after it."""
    tf.write(
        REQUIRED_PROVIDERS
        + resource(TYPE, "d", store=str(store), members=members, **(extra or {}))
        + after,
        with_required_providers=False,
    )


CAROL_AWS = {"user_type": "iam_role", "principal": "x"}
MEMBERS: dict[str, dict[str, Any]] = {
    "alice@example.com": {"postgres": {"mode": "username", "username": "Alice"}},
    "bob@example.com": {},
    "carol@example.com": {"postgres": {}, "aws": CAROL_AWS},
}
LISTS = {
    "ports": [{"number": 5432}, {"number": 53, "protocol": "udp"}],
    "tags": [{"name": "team", "value": "data"}, {"name": "env"}],
}


def planned_change(tf: Terraform) -> dict[str, Any]:
    (change,) = [c for c in tf.plan_json()["resource_changes"] if c["address"] == ADDRESS]
    return change["change"]


def unknown_members(change: dict[str, Any]) -> dict[str, set[str]]:
    """Per member, the attributes the plan leaves unknown (members with none left out)."""
    found = {
        key: {name for name, flag in flags.items() if flag is True}
        for key, flags in change["after_unknown"]["members"].items()
    }
    return {key: names for key, names in found.items() if names}


def members_in_state(tf: Terraform) -> dict[str, Any]:
    return tf.resources()[ADDRESS]["members"]


def stored_writes(store: Path) -> int:
    return json.loads(store.read_text())["writes"]


def test_map_of_objects_plan_apply_and_one_key_changes(tmp_path: Path, cli_config: Path) -> None:
    tf, store = workdir(tmp_path, cli_config, "tf"), tmp_path / "store.json"
    configure(tf, store, MEMBERS, LISTS)

    # Create: defaults inside elements, computed values unknown per element.
    change = planned_change(tf)
    after, unknown = change["after"], change["after_unknown"]
    assert after["members"]["carol@example.com"]["postgres"] == {"mode": "unset", "username": None}
    assert after["members"]["bob@example.com"]["postgres"] is None
    assert after["ports"][0] == {"number": 5432, "protocol": "tcp"}
    assert after["policy"] == {"days": 30, "action": None}  # the object default
    assert unknown_members(change) == dict.fromkeys(
        MEMBERS, {"created", "effective_username", "revision"}
    )
    assert unknown["ports"] == [{"label": True}, {"label": True}]

    tf.apply()
    members = members_in_state(tf)
    assert {k: (m["effective_username"], m["revision"]) for k, m in members.items()} == {
        "alice@example.com": ("Alice", 1),
        "bob@example.com": ("bob", 1),
        "carol@example.com": ("carol", 1),
    }
    assert stored_writes(store) == 3
    assert tf.plan().returncode == 0, "a plan right after apply must be empty"

    # A change of case alone in a case-insensitive value is no change.
    configure(
        tf,
        store,
        {**MEMBERS, "alice@example.com": {"postgres": {"mode": "username", "username": "ALICE"}}},
        LISTS,
    )
    assert tf.plan().returncode == 0

    # One key changes: only its computed values are unknown, only it is shown.
    changed = {
        **MEMBERS,
        "carol@example.com": {"postgres": {"mode": "none"}, "aws": CAROL_AWS},
    }
    configure(tf, store, changed, LISTS)
    change = planned_change(tf)
    assert change["actions"] == ["update"]
    assert unknown_members(change) == {"carol@example.com": {"effective_username", "revision"}}
    assert change["after"]["members"]["carol@example.com"]["created"] == "write-3"
    plan = tf.plan()
    assert plan.returncode == 2
    assert plan.text.count("(known after apply)") == 2
    assert "# (2 unchanged elements hidden)" in plan.text
    assert "alice@example.com" not in plan.text and "bob@example.com" not in plan.text

    tf.apply()
    members = members_in_state(tf)
    assert [members[k]["revision"] for k in MEMBERS] == [1, 1, 2]
    assert members["carol@example.com"]["effective_username"] is None
    assert members["carol@example.com"]["created"] == "write-3"
    assert stored_writes(store) == 4  # carol alone was written
    assert tf.plan().returncode == 0

    # A new key: unknown values for it alone; a removed key: no unknown values at all.
    grown = {**changed, "dave@example.com": {"postgres": {"mode": "none"}}}
    del grown["bob@example.com"]
    configure(tf, store, grown, LISTS)
    change = planned_change(tf)
    assert unknown_members(change) == {
        "dave@example.com": {"created", "effective_username", "revision"}
    }
    assert "bob@example.com" not in change["after"]["members"]
    tf.apply()
    assert set(members_in_state(tf)) == {
        "alice@example.com",
        "carol@example.com",
        "dave@example.com",
    }
    assert tf.plan().returncode == 0

    # Drift: a member removed outside Terraform is planned back, and only it.
    stored = json.loads(store.read_text())
    del stored["members"]["dave@example.com"]
    store.write_text(json.dumps(stored))
    plan = tf.plan()
    assert plan.returncode == 2 and "dave@example.com" in plan.text
    assert "carol@example.com" not in plan.text
    tf.apply()
    assert tf.plan().returncode == 0

    tf.destroy()
    assert not store.exists()


def test_validation_errors_name_the_map_key_and_nothing_is_written(
    tmp_path: Path, cli_config: Path
) -> None:
    tf, store = workdir(tmp_path, cli_config, "tf"), tmp_path / "store.json"
    configure(
        tf,
        store,
        {
            "alice@example.com": {"postgres": {"mode": "username", "username": "alice"}},
            "eve@example.com": {"postgres": {"mode": "bogus"}},
            "frank@example.com": {"postgres": {"mode": "username"}},
        },
        {"ports": [{"number": 70000}]},
    )
    result = tf.validate()
    assert result["valid"] is False
    details = sorted(d["detail"] for d in result["diagnostics"])
    assert details == [
        'members["eve@example.com"].postgres.mode: "bogus" is not allowed here; expected one '
        'of "username", "unset", "none".',
        'members["frank@example.com"].postgres.username: mode "username" needs a username.',
        "ports[0].number: 70000 is out of range: expected a whole number from 1 to 65535.",
    ]
    applied = tf.apply(check=False)
    assert applied.returncode == 1
    assert 'members["eve@example.com"].postgres.mode' in applied.text
    assert not store.exists()
    assert tf.resources() == {}


def test_import_brings_in_the_whole_map(tmp_path: Path, cli_config: Path) -> None:
    source, store = workdir(tmp_path, cli_config, "source"), tmp_path / "store.json"
    configure(source, store, MEMBERS, LISTS)
    source.apply()
    expected = source.resources()[ADDRESS]

    target = workdir(tmp_path, cli_config, "target")
    configure(
        target,
        store,
        MEMBERS,
        LISTS,
        block("import", to=Raw(ADDRESS), id=str(store)),
    )
    plan = target.plan()
    assert "1 to import, 0 to add, 0 to change, 0 to destroy" in plan.text
    target.apply()
    imported = target.resources()[ADDRESS]
    assert imported["members"] == expected["members"]
    assert set(imported["members"]) == set(MEMBERS)
    assert imported == expected
    assert target.plan().returncode == 0
