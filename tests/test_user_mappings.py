"""immuta_user_mappings end to end: real terraform, PostgreSQL 16/17 and moto.

One resource holds a map of mappings keyed by Immuta user. These tests drive it through
plans and applies and read the state store directly: which rows exist, who manages them
(`managed_by`), and which rows an apply rewrote (their `xmin`, the transaction that last
wrote them).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Body,
    Database,
    MotoServer,
    PostgresServer,
    Raw,
    Result,
    Terraform,
    block,
    connection_block,
    resource,
    step,
)
from harness.store_dump import store_dump
from psycopg import sql
from test_user_mapping import (
    aws_provider,
    connection_hcl,
    make_role,
    mapping_block,
    provider_block,
    unique,
)

ADDRESS = "immuta_user_mappings.all"
CONNECTION_ID = Raw("immuta_postgres_connection.main.id")


def mappings_block(
    mappings: dict[str, Any],
    exclusive: bool | None = None,
    name: str = "all",
    connection_id: str | Raw = CONNECTION_ID,
) -> str:
    values: dict[str, Any] = {"connection_id": connection_id}
    if exclusive is not None:
        values["exclusive"] = exclusive
    values["mappings"] = mappings
    return resource("immuta_user_mappings", name, **values)


def state_of(tf: Terraform, address: str = ADDRESS) -> dict[str, Any]:
    return tf.resources()[address]


def rows(db: Database) -> dict[str, dict[str, Any]]:
    """The store's mappings by Immuta user (empty without a store)."""
    with db.connect() as conn:
        if not conn.execute("SELECT to_regnamespace('immuta') IS NOT NULL").fetchone()[0]:
            return {}
        cur = conn.execute(
            "SELECT immuta_user, postgres_mode, postgres_username, postgres_role, "
            "aws_user_type, aws_principal, aws_principal_arn, managed_by, xmin::text AS xmin "
            "FROM immuta.user_mappings"
        )
        names = [c.name for c in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def insert_outside_terraform(db: Database, user: str, connection: str = "Warehouse") -> None:
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO immuta.user_mappings (connection_key, immuta_user, postgres_mode) "
            "VALUES (%s, %s, 'none')",
            (connection, user),
        )


def planned(tf: Terraform, address: str = ADDRESS) -> dict[str, Any]:
    (change,) = [c for c in tf.plan_json()["resource_changes"] if c["address"] == address]
    return change["change"]


def unknown_entries(change: dict[str, Any]) -> dict[str, set[str]]:
    """Per entry, the attributes a plan leaves unknown (entries with none left out)."""
    found = {
        user: {name for name, flag in flags.items() if flag is True}
        for user, flags in (change["after_unknown"].get("mappings") or {}).items()
    }
    return {user: names for user, names in found.items() if names}


# ------------------------------------------------------------------ the map, planned and applied


def test_entries_plan_apply_and_one_key_changes(terraform: Terraform, immuta_db: Database) -> None:
    server = immuta_db.server
    alice, bob = unique("alice_"), unique("Bob_")
    server.create_role(alice)
    server.create_role(bob)
    entries: dict[str, Any] = {
        "alice@example.com": {"postgres": {"mode": "username", "username": alice.upper()}},
        bob.lower(): {},
        "service-account": {"postgres": {"mode": "none"}},
        "nobody-here": {},
        "nobody-either": {"postgres": {"mode": "unset"}},
    }

    def write(mappings: dict[str, Any], exclusive: bool | None = None) -> None:
        terraform.write(
            provider_block(server) + connection_hcl(immuta_db) + mappings_block(mappings, exclusive)
        )

    try:
        with step("create: every mode; the missing roles in one warning"):
            write(entries)
            change = planned(terraform)
            assert unknown_entries(change) == {
                "alice@example.com": {
                    "postgres_user_found",
                    "effective_postgres_username",
                },
                bob.lower(): {"postgres_user_found", "effective_postgres_username"},
                "nobody-here": {"postgres_user_found", "effective_postgres_username"},
                "nobody-either": {"postgres_user_found", "effective_postgres_username"},
            }, "mode none and no aws block are known before apply"
            applied = terraform.apply()
            assert applied.text.count("Warning:") == 1
            assert "2 PostgreSQL roles not found" in applied.text
            assert "'nobody-here' ('nobody-here'), 'nobody-either' ('nobody-either')" in (
                applied.text
            ) or "'nobody-either' ('nobody-either'), 'nobody-here' ('nobody-here')" in (
                applied.text
            )
            state = state_of(terraform)
            assert state["id"] == state["connection_id"]
            assert state["id"].endswith(f"/{immuta_db.name}/Warehouse")
            assert state["exclusive"] is False
            m = state["mappings"]
            assert m["alice@example.com"]["effective_postgres_username"] == alice
            assert m["alice@example.com"]["postgres"] == {
                "mode": "username",
                "username": alice.upper(),
            }
            assert m[bob.lower()]["effective_postgres_username"] == bob
            assert m[bob.lower()]["postgres"] is None
            assert m["service-account"]["postgres_user_found"] is False
            assert m["nobody-here"]["postgres_user_found"] is False
            assert m["nobody-either"]["postgres"] == {"mode": "unset", "username": None}
            stored = rows(immuta_db)
            assert set(stored) == set(entries)
            owner = f"immuta_user_mappings/{state['owner_id']}"
            assert {r["managed_by"] for r in stored.values()} == {owner}
            assert stored["alice@example.com"]["postgres_role"] == alice
            terraform.plan_is_empty("a missing role is no perpetual diff")

        with step("a change of case alone is no change"):
            write(
                {
                    **entries,
                    "alice@example.com": {"postgres": {"mode": "username", "username": alice}},
                }
            )
            terraform.plan_is_empty()
            write(entries)

        with step("one key changes: the plan shows it alone, the apply writes it alone"):
            before = rows(immuta_db)
            changed = {**entries, "nobody-here": {"postgres": {"mode": "none"}}}
            write(changed)
            change = planned(terraform)
            assert unknown_entries(change) == {}, "mode none: nothing is left to learn"
            plan = terraform.plan_changes(
                "1 to change", '"nobody-here" = {', "(4 unchanged elements hidden)"
            )
            assert "alice@example.com" not in plan.text and "service-account" not in plan.text
            terraform.apply()
            after = rows(immuta_db)
            rewritten = {u for u in after if after[u]["xmin"] != before[u]["xmin"]}
            assert rewritten == {"nobody-here"}
            assert after["nobody-here"]["postgres_mode"] == "none"
            terraform.plan_is_empty()

        with step("a key added and a key removed"):
            grown = {**changed, "dave@example.com": {"postgres": {"mode": "none"}}}
            del grown["nobody-either"]
            write(grown)
            terraform.plan_changes("1 to change", "dave@example.com", "nobody-either")
            terraform.apply()
            assert set(rows(immuta_db)) == set(grown)
            terraform.plan_is_empty()

        with step("drift: a role dropped shows that key alone; apply converges"):
            server.drop_role(alice)
            change = planned(terraform)
            assert unknown_entries(change) == {
                "alice@example.com": {"postgres_user_found", "effective_postgres_username"}
            }
            terraform.apply()
            found = state_of(terraform)["mappings"]["alice@example.com"]
            assert found["postgres_user_found"] is False
            assert rows(immuta_db)["alice@example.com"]["postgres_role"] is None
            terraform.plan_is_empty()

        with step("drift: a row deleted outside Terraform is planned back"):
            with immuta_db.connect() as conn:
                conn.execute(
                    "DELETE FROM immuta.user_mappings WHERE immuta_user = 'dave@example.com'"
                )
            terraform.plan_changes("dave@example.com")
            terraform.apply()
            assert "dave@example.com" in rows(immuta_db)

        with step("a mapping made outside Terraform: not ours unless exclusive"):
            insert_outside_terraform(immuta_db, "eve@example.com")
            terraform.plan_is_empty("exclusive = false touches only its own keys")
            write(grown, exclusive=True)
            terraform.plan_changes(
                "exclusive = true deletes 1 mappings made outside Terraform",
                "that this resource does not list: 'eve@example.com'",
            )
            terraform.apply()
            assert "eve@example.com" not in rows(immuta_db)
            terraform.plan_is_empty()
            insert_outside_terraform(immuta_db, "frank@example.com")
            terraform.plan_changes('- "frank@example.com" = {')  # a nightly drift run exits 2
            terraform.apply()
            assert set(rows(immuta_db)) == set(grown)

        with step("destroy removes every mapping"):
            terraform.destroyed()
            assert rows(immuta_db) == {}
    finally:
        for role in (alice, bob):
            server.drop_role(role)


@pytest.mark.pg17_only
def test_import_by_connection_id(tmp_path, immuta_db: Database, pg_server: PostgresServer) -> None:
    entries = {
        "alice@example.com": {"postgres": {"mode": "username", "username": "alice_imported"}},
        "bob": {},
        "carol": {"postgres": {"mode": "none"}},
    }
    source = Terraform(tmp_path / "source")
    config = provider_block(immuta_db.server) + connection_hcl(immuta_db)
    source.write(config + mappings_block(entries, exclusive=True))
    source.apply()
    expected = state_of(source)
    connection_id = expected["connection_id"]

    target = Terraform(tmp_path / "target")
    target.write(
        provider_block(immuta_db.server)
        + mappings_block(entries, exclusive=True, connection_id=connection_id)
        + block("import", to=Raw(ADDRESS), id=connection_id)
    )
    # The change: owner_id, as the apply records the import as the manager of the mappings.
    target.plan_changes("1 to import, 0 to add, 1 to change, 0 to destroy", "owner_id")
    target.apply()
    imported = state_of(target)
    assert imported["owner_id"] != expected["owner_id"], "an import is a resource of its own"
    owner = f"immuta_user_mappings/{imported['owner_id']}"
    assert {r["managed_by"] for r in rows(immuta_db).values()} == {owner}
    with immuta_db.connect() as conn:
        assert conn.execute("SELECT mappings_owner FROM immuta.connections").fetchone()[0] == owner
    assert {k: v for k, v in imported.items() if k != "owner_id"} == {
        k: v for k, v in expected.items() if k != "owner_id"
    }
    target.plan_is_empty("exclusive comes back as applied")


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "moving-to-user-mappings.md"


def guide_blocks() -> list[str]:
    """The guide's Terraform snippets, in order: before, after."""
    return re.findall(r"^```terraform\n(.*?)^```$", GUIDE.read_text(), re.M | re.S)


@pytest.mark.pg17_only
def test_the_moving_guide_moves_every_mapping_and_deletes_none(
    terraform: Terraform, immuta_db: Database
) -> None:
    """docs/guides/moving-to-user-mappings.md, as written, with the Terraform of the suite:
    no mapping is deleted or rewritten by hand, the set manages them after, the plan is empty."""
    server = immuta_db.server
    roles = [unique("guide_"), unique("Guide_")]
    for role in roles:
        server.create_role(role)
    users = {"alice@example.com": roles[0], "bob": roles[1], "carol": "missing_role"}
    before, after = guide_blocks()
    config = provider_block(server) + connection_block(
        immuta_db.host, immuta_db.port, immuta_db.name, label="warehouse"
    )
    terraform.write(
        json.dumps({"users": users}), "terraform.tfvars.json", with_required_providers=False
    )
    try:
        with step("before: one immuta_user_mapping per user"):
            terraform.write(config + before)
            terraform.apply()
            written = rows(immuta_db)
            assert set(written) == set(users)
            assert {r["managed_by"] for r in written.values()} == {"immuta_user_mapping"}

        with step("after: removed + import + the set, in one apply"):
            variable = before[: before.index('resource "immuta_user_mapping"')]
            terraform.write(config + variable + after)
            terraform.plan_changes(
                "1 to import, 0 to add, 1 to change, 0 to destroy",
                "will no longer be managed by Terraform",
                "owner_id",
            )
            terraform.apply()
            moved = rows(immuta_db)
            assert set(moved) == set(users), "a mapping was deleted"
            keep = ("postgres_mode", "postgres_username", "postgres_role")
            assert {u: [r[k] for k in keep] for u, r in moved.items()} == {
                u: [r[k] for k in keep] for u, r in written.items()
            }
            owner = state_of(terraform, "immuta_user_mappings.users")["owner_id"]
            assert {r["managed_by"] for r in moved.values()} == {f"immuta_user_mappings/{owner}"}
            assert not [a for a in terraform.resources() if a.startswith("immuta_user_mapping.")]
            terraform.plan_is_empty("the move leaves nothing to do")

        with step("the set manages them now: a one-entry change applies"):
            changed = {**users, "carol": roles[0]}
            terraform.write(
                json.dumps({"users": changed}),
                "terraform.tfvars.json",
                with_required_providers=False,
            )
            terraform.apply()
            assert rows(immuta_db)["carol"]["postgres_role"] == roles[0]
            terraform.destroyed()
            assert rows(immuta_db) == {}
    finally:
        for role in roles:
            server.drop_role(role)


# ------------------------------------------------------------------ plan-time rules


@pytest.mark.pg17_only
def test_errors_name_the_entry_and_nothing_is_written(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer, pg_server: PostgresServer
) -> None:
    provider = aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db)
    terraform.write(provider)
    terraform.apply()
    registered = store_dump(immuta_db)

    with step("validation: each error names its entry"):
        terraform.write(
            provider
            + mappings_block(
                {
                    "ok": {},
                    "eve": {"postgres": {"mode": "bogus"}},
                    "frank": {"postgres": {"mode": "username"}},
                    "gina": {"aws": {"user_type": "identity_center_user", "principal": "g@x.io"}},
                    "hank": {"aws": {"user_type": "iam_role", "principal": "shared"}},
                    "ivan": {"aws": {"user_type": "iam_role", "principal": "shared"}},
                    " ": {},
                }
            )
        )
        blank, eve, frank, gina, ivan = sorted(
            d["detail"] for d in terraform.validate()["diagnostics"]
        )
        assert blank.startswith('mappings[" "]: ')
        assert eve == (
            'mappings["eve"].postgres.mode: "bogus" is not allowed here; expected one of '
            '"username", "unset", "none".'
        )
        assert frank == (
            'mappings["frank"].postgres.username: postgres.mode = "username" needs '
            "postgres.username: the PostgreSQL role to map to."
        )
        assert gina.startswith('mappings["gina"].aws.principal: ') and "email address" in gina
        assert ivan == (
            "mappings[\"ivan\"].aws.principal: Immuta users 'hank' and 'ivan' both name IAM "
            "role 'shared'; an IAM role maps to at most one Immuta user per connection. Create "
            "a dedicated Immuta user that represents the role, and map only that one."
        )
        terraform.apply_fails('mappings["eve"].postgres.mode')
        assert store_dump(immuta_db) == registered

    with step("aws on a self_managed connection: refused at plan, per entry"):
        terraform.write(
            provider + mappings_block({"ok": {}, "jill": {"aws": {"user_type": "unset"}}})
        )
        terraform.plan_fails(
            "AWS mapping not available for this connection",
            "mappings[\"jill\"].aws: Connection 'Warehouse' is a self_managed deployment",
        )
        assert store_dump(immuta_db) == registered

    with step("roles that differ only by case need the exact name, per entry"):
        base = unique("dana_")
        immuta_db.server.create_role(base)
        immuta_db.server.create_role(base.upper())
        try:
            terraform.write(
                provider
                + mappings_block(
                    {"ok": {}, "dana": {"postgres": {"mode": "username", "username": base.title()}}}
                )
            )
            terraform.apply_fails(
                f"PostgreSQL username '{base.title()}' is ambiguous",
                'mappings["dana"].postgres.username',
            )
            assert store_dump(immuta_db) == registered
        finally:
            immuta_db.server.drop_role(base)
            immuta_db.server.drop_role(base.upper())


# ------------------------------------------------------------------ who manages a mapping


@pytest.mark.pg17_only
def test_two_resources_never_manage_one_mapping(
    tmp_path, immuta_db: Database, pg_server: PostgresServer
) -> None:
    """Each write that would take a mapping from another resource is refused, naming the
    user, the other resource and the fix, and writes nothing."""
    server = immuta_db.server
    owner_tf = Terraform(tmp_path / "connection")
    owner_tf.write(provider_block(server) + connection_hcl(immuta_db))
    owner_tf.apply()
    connection_id = state_of(owner_tf, "immuta_postgres_connection.main")["id"]

    def workspace(name: str, body: str) -> Terraform:
        tf = Terraform(tmp_path / name)
        tf.write(provider_block(server) + body)
        return tf

    singles = workspace("singles", mapping_block("alice", "alice", connection_id))
    singles.apply()
    sets = workspace("sets", mappings_block({"alice": {}, "bob": {}}, connection_id=connection_id))

    with step("a set may not take a user an immuta_user_mapping manages"):
        before = store_dump(immuta_db)
        sets.apply_fails(
            "Immuta user 'alice' is managed by another resource",
            "mappings[\"alice\"]: On connection 'Warehouse' the mapping of 'alice' is managed "
            "by an immuta_user_mapping resource",
            "removed",
            "destroy = false",
        )
        assert store_dump(immuta_db) == before

    with step("nor the other way round"):
        sets.write(
            provider_block(server) + mappings_block({"bob": {}}, connection_id=connection_id)
        )
        sets.apply()
        owner_id = state_of(sets)["owner_id"]
        singles.write(
            provider_block(server)
            + mapping_block("alice", "alice", connection_id)
            + mapping_block("bob", "bob", connection_id)
        )
        before = store_dump(immuta_db)
        singles.apply_fails(
            "Immuta user 'bob' is managed by another resource",
            f"an immuta_user_mappings resource (owner_id {owner_id})",
        )
        assert store_dump(immuta_db) == before

    with step("nor two sets"):
        other = workspace(
            "other", mappings_block({"bob": {}, "carol": {}}, connection_id=connection_id)
        )
        other.plan_fails(  # known at plan already: the key is new to this resource
            "Immuta user 'bob' is managed by another resource", f"(owner_id {owner_id})"
        )
        assert store_dump(immuta_db) == before

    with step("an exclusive set conflicts with every other manager on the connection"):
        exclusive = workspace(
            "exclusive",
            mappings_block({"carol": {}}, exclusive=True, connection_id=connection_id),
        )
        result = exclusive.plan_fails(
            "Immuta user 'alice' is managed by another resource",
            "Immuta user 'bob' is managed by another resource",
        )
        assert "this exclusive immuta_user_mappings does not write it" in result.text
        assert store_dump(immuta_db) == before

    with step("once it owns the connection, nothing else writes there"):
        singles.write(provider_block(server))
        singles.apply()  # the single mapping of alice is destroyed
        sets.write(provider_block(server))
        sets.apply()  # so is the set holding bob
        exclusive.apply()
        exclusive_id = state_of(exclusive)["owner_id"]
        with immuta_db.connect() as conn:
            recorded = conn.execute("SELECT mappings_owner FROM immuta.connections").fetchone()[0]
        assert recorded == f"immuta_user_mappings/{exclusive_id}"
        singles.write(provider_block(server) + mapping_block("dave", "dave", connection_id))
        singles.apply_fails(
            "Connection 'Warehouse' has an exclusive owner",
            f"an exclusive immuta_user_mappings resource (owner_id {exclusive_id})",
        )
        assert "dave" not in rows(immuta_db)

    with step("destroying the exclusive set releases the connection"):
        exclusive.destroyed()
        singles.apply()
        assert rows(immuta_db)["dave"]["managed_by"] == "immuta_user_mapping"
        singles.destroyed()


# ------------------------------------------------------------------ one transaction


@pytest.mark.pg17_only
@pytest.mark.parametrize("failure", ["trigger raises", "backend terminated"])
def test_an_apply_is_one_transaction(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer, failure: str
) -> None:
    """A failure in the middle of a large apply (a row the store refuses, or the server
    ending the session) leaves the store and Terraform's state as they were."""
    first = {f"user{n:04}@example.com": {"postgres": {"mode": "none"}} for n in range(500)}
    config = provider_block(immuta_db.server) + connection_hcl(immuta_db)
    terraform.write(config + mappings_block(first))
    terraform.apply()
    state_before = terraform.state_file_text()
    store_before = store_dump(immuta_db)

    # 2,000 changes: 250 entries changed, 250 removed, 1,500 added; the one that fails is
    # written after most of the others.
    second = {u: {} for u in list(first)[:250]}
    second.update({f"new{n:04}@example.com": {} for n in range(1500)})
    body = (
        "RAISE EXCEPTION 'refused by a test trigger: %', NEW.immuta_user"
        if failure == "trigger raises"
        else "PERFORM pg_terminate_backend(pg_backend_pid())"
    )
    with immuta_db.connect() as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION public.refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.immuta_user = 'new1400@example.com' THEN {} ; END IF; "
                "RETURN NEW; END $$"
            ).format(sql.SQL(body))
        )
        conn.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON immuta.user_mappings "
            "FOR EACH ROW EXECUTE FUNCTION public.refuse_one()"
        )
    terraform.write(config + mappings_block(second))
    if failure == "trigger raises":
        terraform.apply_fails("refused by a test trigger: new1400@example.com")
    else:
        terraform.apply_fails("ended the connection", "terminating connection")
    assert store_dump(immuta_db) == store_before
    assert terraform.state_file_text() == state_before

    with immuta_db.connect() as conn:
        conn.execute("DROP TRIGGER refuse_one ON immuta.user_mappings")
    terraform.apply()
    assert set(rows(immuta_db)) == set(second)
    terraform.plan_is_empty()


# ------------------------------------------------------------------ AWS principals


@pytest.mark.pg17_only
def test_aws_principals_in_bulk(
    terraform: Terraform,
    immuta_db: Database,
    moto_server: MotoServer,
    pg_server: PostgresServer,
) -> None:
    iam = moto_server.client("iam")
    prefix = unique("team")
    # More IAM roles than AwsClient resolves one by one: they come from the listing pages.
    roles = {f"{prefix}-{n}": make_role(iam, f"{prefix}-{n}") for n in range(60)}
    etl = unique("etl-")
    etl_arn = iam.create_user(UserName=etl)["User"]["Arn"]
    entries: dict[str, Any] = {
        f"role{n}": {"aws": {"user_type": "iam_role", "principal": name}}
        for n, name in enumerate(roles)
    }
    entries["etl"] = {"aws": {"user_type": "iam_user", "principal": etl_arn}}
    entries["plain"] = {"aws": {"user_type": "unset"}}
    provider = aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db, "rds")

    with step("create: every principal resolved"):
        terraform.write(provider + mappings_block(entries))
        terraform.apply()
        found = state_of(terraform)["mappings"]
        assert {u: found[u]["aws_principal_arn"] for u in found if u.startswith("role")} == {
            f"role{n}": arn for n, arn in enumerate(roles.values())
        }
        assert found["etl"]["aws_principal_arn"] == etl_arn
        assert found["plain"]["aws_principal_arn"] is None
        terraform.plan_is_empty()

    with step("a name and the ARN of one role, in two entries: refused, naming both"):
        first_arn = roles[f"{prefix}-0"]
        terraform.write(
            provider
            + mappings_block(
                {**entries, "again": {"aws": {"user_type": "iam_role", "principal": first_arn}}}
            )
        )
        terraform.apply_fails(
            f"IAM role '{first_arn}' is mapped twice",
            "Immuta users 'role0' and 'again' both map to IAM role",
            'mappings["again"].aws.principal',
        )

    with step("a role another resource holds"):
        terraform.write(
            provider
            + mappings_block(entries)
            + mapping_block(
                "holder",
                "holder",
                Raw("immuta_postgres_connection.main.id"),
                aws=Body(user_type="iam_role", principal=f"{prefix}-new"),
            )
        )
        make_role(iam, f"{prefix}-new")
        terraform.apply()
        terraform.write(
            provider
            + mappings_block(
                {
                    **entries,
                    "taker": {"aws": {"user_type": "iam_role", "principal": f"{prefix}-new"}},
                }
            )
            + mapping_block(
                "holder",
                "holder",
                Raw("immuta_postgres_connection.main.id"),
                aws=Body(user_type="iam_role", principal=f"{prefix}-new"),
            )
        )
        terraform.apply_fails(
            f"IAM role '{prefix}-new' is already mapped to 'holder'",
            'mappings["taker"].aws.principal',
        )
        terraform.write(provider + mappings_block(entries))
        terraform.apply()

    with step("a role deleted in IAM: the next plan shows that entry alone"):
        iam.delete_role(RoleName=f"{prefix}-7")
        change = planned(terraform)
        assert unknown_entries(change) == {
            "role7": {"aws_principal_arn", "postgres_user_found", "effective_postgres_username"}
        }
        terraform.apply_fails(f"IAM role '{prefix}-7' does not exist", 'mappings["role7"]')


# ------------------------------------------------------------------ the store's version


@pytest.mark.pg17_only
def test_an_exclusive_apply_gives_a_role_from_an_outside_mapping_to_its_new_user(
    terraform: Terraform, immuta_db: Database, moto_server: MotoServer
) -> None:
    """One Immuta user per IAM role: an exclusive apply that deletes a mapping made outside
    Terraform and gives its role to a listed user does both in its one transaction, also
    when no refresh told it of that mapping (-refresh=false)."""
    role = unique("analysts-")
    arn = make_role(moto_server.client("iam"), role)
    provider = aws_provider(immuta_db, moto_server) + connection_hcl(immuta_db, "rds")
    terraform.write(provider + mappings_block({"alice": {}}, exclusive=True))
    terraform.apply()
    with immuta_db.connect() as conn:
        conn.execute(
            "INSERT INTO immuta.user_mappings (connection_key, immuta_user, postgres_mode, "
            "aws_user_type, aws_principal, aws_principal_arn) "
            "VALUES ('Warehouse', 'outsider', 'unset', 'iam_role', %s, %s)",
            (role, arn),
        )
    terraform.write(
        provider
        + mappings_block(
            {"alice": {}, "carol": {"aws": {"user_type": "iam_role", "principal": role}}},
            exclusive=True,
        )
    )
    terraform.apply("-refresh=false")
    stored = rows(immuta_db)
    assert sorted(stored) == ["alice", "carol"]
    assert stored["carol"]["aws_principal_arn"] == arn
    assert state_of(terraform)["mappings"]["carol"]["aws_principal_arn"] == arn
    terraform.plan_is_empty()
    terraform.destroyed()


def test_a_mapping_whose_manager_was_cleared_outside_terraform_stays_in_the_set(
    terraform: Terraform, immuta_db: Database
) -> None:
    """A null managed_by is a mapping nobody manages, not one of immuta_user_mapping's: the
    set keeps the entry (no warning, no planned create) and its next write claims it back."""
    provider = provider_block(immuta_db.server) + connection_hcl(immuta_db)
    terraform.write(provider + mappings_block({"alice": {}, "bob": {}}))
    terraform.apply()
    with immuta_db.connect() as conn:
        conn.execute("UPDATE immuta.user_mappings SET managed_by = NULL WHERE immuta_user = 'bob'")
    result = terraform.plan_is_empty("an unmanaged row of a listed user reads as the set's")
    assert "managed by" not in result.text
    terraform.write(provider + mappings_block({"alice": {}, "bob": {"postgres": {"mode": "none"}}}))
    terraform.apply()
    assert rows(immuta_db)["bob"]["managed_by"] == rows(immuta_db)["alice"]["managed_by"]
    terraform.destroyed()


def test_store_upgrades_from_the_previous_version(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer
) -> None:
    """A store written by the provider version before: its mappings were all written by
    immuta_user_mapping, and become that resource's."""
    from tfprovider_immuta_pg.immuta import store

    previous = store.LATEST_VERSION - 1
    config = provider_block(immuta_db.server) + connection_hcl(immuta_db)
    terraform.write(config)
    terraform.apply()
    with immuta_db.connect() as conn:
        conn.execute("DROP SCHEMA immuta CASCADE")
        with conn.transaction():
            store.migrate(conn, previous)
        connection = json.loads(json.dumps(state_of(terraform, "immuta_postgres_connection.main")))
        conn.execute(
            "INSERT INTO immuta.connections (connection_key, hostname, port, database_name, "
            "deployment_type, auth_method, username, server_version, superuser, "
            "on_missing_privileges, databases) VALUES ('Warehouse', %s, %s, %s, 'self_managed', "
            "'password', 'u', '17.0', true, 'error', '{}')",
            (connection["hostname"], connection["port"], immuta_db.name),
        )
        conn.execute(
            "INSERT INTO immuta.user_mappings (connection_key, immuta_user, postgres_mode) "
            "VALUES ('Warehouse', 'legacy', 'none')"
        )
        assert store.schema_version(conn) == previous
    terraform.write(config + mappings_block({"legacy": {}, "fresh": {}}))
    terraform.apply_fails(
        "Immuta user 'legacy' is managed by another resource", "an immuta_user_mapping resource"
    )
    with immuta_db.connect() as conn:
        assert store.schema_version(conn) == store.LATEST_VERSION
        versions = conn.execute("SELECT version FROM immuta.schema_version ORDER BY 1").fetchall()
    assert [v[0] for v in versions] == list(range(1, store.LATEST_VERSION + 1))
    assert rows(immuta_db)["legacy"]["managed_by"] == "immuta_user_mapping"
    assert "fresh" not in rows(immuta_db), "the refused apply wrote nothing"


# ------------------------------------------------------------------ Terraform 1.0


TERRAFORM_1_0 = Path(__file__).resolve().parents[1] / ".cache" / "terraform-1.0.3" / "terraform"


@pytest.mark.pg17_only
def test_terraform_before_1_0_9_is_refused_before_it_crashes(
    terraform: Terraform, immuta_db: Database, pg_server: PostgresServer
) -> None:
    """Terraform 1.0.0 to 1.0.8 panic on a map of nested objects; the provider refuses the
    resource first, at plan, refresh and import, naming both versions."""
    if not TERRAFORM_1_0.exists():
        pytest.skip(f"{TERRAFORM_1_0} is installed by tools/install-test-servers.sh")
    refusal = "immuta_user_mappings needs Terraform 1.0.9 or later (this is 1.0.3)"

    def old(*args: str) -> Result:
        command = [str(TERRAFORM_1_0), *args, "-no-color"]
        done = subprocess.run(
            command, cwd=terraform.workdir, env=terraform.env, capture_output=True, text=True
        )
        return Result(command, done.returncode, done.stdout, done.stderr)

    # Entries that differ in whether `postgres` is set: 1.0.3 panics on those as well.
    config = (
        provider_block(immuta_db.server)
        + connection_hcl(immuta_db)
        + mappings_block({"a": {"postgres": {"mode": "none"}}, "b": {}})
    )
    terraform.write(config)
    assert old("init").returncode == 0
    for command in (("plan",), ("apply", "-auto-approve")):
        result = old(*command)
        assert result.returncode == 1 and refusal in result.text, result.output
        assert "panic" not in result.output
    assert rows(immuta_db) == {}

    with step("a state written by a newer Terraform: refresh and import are refused too"):
        terraform.apply()
        state = terraform.state_file_text()
        stored = store_dump(immuta_db)
        result = old("plan")
        assert result.returncode == 1 and refusal in result.text, result.output
        assert "panic" not in result.output
        connection_id = state_of(terraform)["connection_id"]
        terraform.run("state", "rm", ADDRESS)
        result = old("import", ADDRESS, connection_id)
        assert result.returncode == 1 and refusal in result.text, result.output
        assert ADDRESS not in terraform.resources()
        assert store_dump(immuta_db) == stored
        assert state  # the apply above wrote it; 1.0.3 changed nothing in the store
