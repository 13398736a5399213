"""The framework's operations (plan, apply, read, import) on plain Python values, no protobuf."""

from __future__ import annotations

from typing import Any

import pytest

from tfprovider_immuta_pg.framework import lifecycle
from tfprovider_immuta_pg.framework.capabilities import UNDECLARED, ClientCapabilities
from tfprovider_immuta_pg.framework.diagnostics import (
    ERROR,
    WARNING,
    Diagnostic,
    Diagnostics,
    ProviderError,
)
from tfprovider_immuta_pg.framework.provider import Context, Resource
from tfprovider_immuta_pg.framework.schema import (
    LIST,
    Attribute,
    Block,
    NestedBlock,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from tfprovider_immuta_pg.framework.types import STRING
from tfprovider_immuta_pg.framework.values import UNKNOWN

SCHEMA = Schema(
    Block(
        attributes={
            "name": Attribute(STRING, required=True, plan_modifiers=[RequiresReplace()]),
            "note": Attribute(STRING, optional=True),
            "secret": Attribute(STRING, optional=True, write_only=True),
            "id": Attribute(STRING, computed=True, plan_modifiers=[UseStateForUnknown()]),
            "found": Attribute(STRING, computed=True),
        }
    ),
    version=1,
)


class Recorder(Resource[dict[str, Any]]):
    """A resource whose answers the test chooses; it records what it was asked."""

    type_name = "test_thing"
    schema = SCHEMA

    def __init__(self, answer: Any = None, fail: BaseException | None = None) -> None:
        self.answer = answer
        self.fail = fail
        self.calls: list[str] = []

    def _respond(self, call: str, ctx: Context) -> Any:
        self.calls.append(call)
        ctx.private = b"new-private"
        if self.fail is not None:
            raise self.fail
        return self.answer

    def modify_plan(self, prior, planned, config, ctx) -> None:
        planned["found"] = "planned by the resource"
        ctx.private = b"plan-private"

    def create(self, planned, ctx):
        return self._respond("create", ctx)

    def update(self, prior, planned, ctx):
        return self._respond("update", ctx)

    def read(self, state, ctx):
        return self._respond("read", ctx)

    def delete(self, state, ctx) -> None:
        self._respond("delete", ctx)

    def import_state(self, import_id, ctx):
        return self._respond(f"import {import_id}", ctx)


PRIOR = {"name": "a", "note": "old", "secret": None, "id": "id-1", "found": "f-1"}


class Log(list):
    """A log function that keeps its lines: (level, message, fields)."""

    def __call__(self, level: str, message: str, **fields: Any) -> None:
        self.append((level, message, fields))


# Terraform 1.11 and later: write-only attributes supported.
WRITE_ONLY_CLIENT = ClientCapabilities(write_only_attributes_allowed=True)


def context(
    private: bytes = b"old-private", config: Any = None, client: ClientCapabilities = UNDECLARED
) -> Context:
    return Context(private=private, config=config, log=Log(), client=client)


def errors(ctx: Context) -> list[tuple[str, str]]:
    return [(d.summary, d.detail) for d in ctx.diags if d.severity == ERROR]


# ------------------------------------------------------------------ plan


def test_plan_runs_the_framework_rules_then_modify_plan() -> None:
    config = {"name": "b", "note": "old", "secret": "s3cret", "id": None, "found": None}
    ctx = context(config=config, client=WRITE_ONLY_CLIENT)
    planned = lifecycle.plan(Recorder(), PRIOR, dict(config, id="id-1"), config, ctx)
    assert planned.state == {
        "name": "b",
        "note": "old",
        "secret": None,  # write-only: never in a plan
        "id": UNKNOWN,  # replaced, so not kept from state
        "found": "planned by the resource",
    }
    assert planned.requires_replace == [("name",)]
    assert planned.private == b"plan-private"


def test_a_destroy_plan_is_null_and_skips_modify_plan() -> None:
    ctx = context()
    planned = lifecycle.plan(Recorder(), PRIOR, None, None, ctx)
    assert (planned.state, planned.requires_replace, planned.private) == (None, [], b"old-private")


# ------------------------------------------------------------------ clients without write-only


SECRET = "s3cret-value-7f1e"
CREATE_CONFIG = {"name": "b", "note": None, "secret": SECRET, "id": None, "found": None}


def refusal(path: tuple, required: bool = False, name: str = "secret") -> Diagnostic:
    what_to_do = (
        f"{name} is required, so test_thing cannot be used before Terraform 1.11: "
        "upgrade Terraform."
        if required
        else f"Upgrade Terraform, or remove {name} from the configuration."
    )
    return Diagnostic(
        ERROR,
        f"{name} needs Terraform 1.11 or later",
        f"{name} of test_thing is a write-only argument: Terraform keeps its value out of the "
        "plan and the state only from version 1.11 on. This Terraform does not support "
        "write-only arguments and would keep the value in the plan and the state, so the "
        f"provider refuses it before anything is planned or created. {what_to_do}",
        path,
    )


class Validating(Recorder):
    def validate(self, config, diags) -> None:
        self.calls.append("validate")


@pytest.mark.parametrize(
    "client",
    [UNDECLARED, ClientCapabilities(deferral_allowed=True)],
    ids=["before 1.9 (none sent)", "1.9 and 1.10 (no write-only)"],
)
@pytest.mark.parametrize("value", [SECRET, UNKNOWN], ids=["known", "unknown"])
def test_a_write_only_value_is_refused_when_the_client_cannot_keep_it_out(
    client: ClientCapabilities, value: Any
) -> None:
    config = dict(CREATE_CONFIG, secret=value)
    resource = Validating()
    diags = Diagnostics()
    lifecycle.validate_resource(resource, config, client, diags)
    assert diags == [refusal(("secret",))]
    assert resource.calls == [], "nothing else is validated"

    ctx = context(config=config, client=client)
    planned = lifecycle.plan(resource, None, dict(config), config, ctx)
    assert planned.state is None, "no planned state travels back"
    assert (planned.requires_replace, planned.private) == ([], b"old-private")
    assert ctx.diags == [refusal(("secret",))]
    assert SECRET not in repr(list(diags) + list(ctx.diags))


def test_a_client_with_write_only_support_or_no_value_set_is_not_refused() -> None:
    resource = Validating()
    diags = Diagnostics()
    lifecycle.validate_resource(resource, CREATE_CONFIG, WRITE_ONLY_CLIENT, diags)
    lifecycle.validate_resource(resource, dict(CREATE_CONFIG, secret=None), UNDECLARED, diags)
    assert diags == [] and resource.calls == ["validate", "validate"]
    unset = dict(CREATE_CONFIG, secret=None)
    ctx = context(client=UNDECLARED)
    planned = lifecycle.plan(resource, None, dict(unset), unset, ctx)
    assert ctx.diags == [] and planned.state["found"] == "planned by the resource"
    # A destroy has no configuration to refuse.
    assert lifecycle.plan(resource, PRIOR, None, None, context()).state is None


class Nested(Recorder):
    """A required write-only attribute, and an optional one inside a list block."""

    schema = Schema(
        Block(
            attributes={
                "password": Attribute(STRING, required=True, write_only=True),
                "id": Attribute(STRING, computed=True),
            },
            blocks={
                "rules": NestedBlock(
                    Block(attributes={"token": Attribute(STRING, optional=True, write_only=True)}),
                    LIST,
                )
            },
        )
    )


def test_refusals_name_each_attribute_path_and_what_to_do() -> None:
    config = {"password": SECRET, "id": None, "rules": [{"token": None}, {"token": SECRET}]}
    diags = Diagnostics()
    lifecycle.validate_resource(Nested(), config, UNDECLARED, diags)
    assert diags == [
        refusal(("password",), required=True, name="password"),
        refusal(("rules", 1, "token"), name="rules[1].token"),
    ]


def test_an_import_this_client_could_never_plan_warns() -> None:
    ctx = context()
    outcome = lifecycle.import_state(Nested(answer={"id": "x"}), "x", ctx)
    assert outcome.state == {"password": None, "id": "x", "rules": None}
    assert ctx.diags == [
        Diagnostic(
            WARNING,
            "test_thing imported, but this Terraform cannot plan it",
            "password of test_thing is a required write-only argument, which needs Terraform "
            "1.11 or later. The import itself is complete and nothing was changed; every plan "
            "of this resource with this Terraform refuses password. Plan and apply it with "
            "Terraform 1.11 or later.",
        )
    ]
    quiet = context(client=WRITE_ONLY_CLIENT)
    lifecycle.import_state(Nested(answer={"id": "x"}), "x", quiet)
    lifecycle.import_state(Recorder(answer={"id": "x"}), "x", context())  # optional: plannable
    assert quiet.diags == []


# ------------------------------------------------------------------ apply


def test_apply_keeps_what_the_plan_knew_and_fills_only_the_unknowns() -> None:
    planned = {"name": "a", "note": "new", "secret": None, "id": "id-1", "found": UNKNOWN}
    result = {"name": "A", "note": "other", "secret": "leak", "id": "id-2", "found": "f-2"}
    ctx = context()
    resource = Recorder(answer=result)
    outcome = lifecycle.apply(resource, PRIOR, planned, ctx)
    assert resource.calls == ["update"]
    assert outcome.state == {
        "name": "a",
        "note": "new",
        "secret": None,
        "id": "id-1",
        "found": "f-2",
    }
    assert outcome.private == b"new-private"
    assert errors(ctx) == []
    assert [m for _, m, _ in ctx.log] == ["apply of test_thing done"]


def test_apply_without_prior_creates() -> None:
    planned = {"name": "a", "note": None, "secret": None, "id": UNKNOWN, "found": UNKNOWN}
    resource = Recorder(answer={"id": "id-9", "found": "f"})
    outcome = lifecycle.apply(resource, None, planned, context())
    assert resource.calls == ["create"]
    assert outcome.state["id"] == "id-9" and outcome.state["found"] == "f"


def test_a_null_plan_deletes() -> None:
    resource = Recorder()
    outcome = lifecycle.apply(resource, PRIOR, None, context())
    assert resource.calls == ["delete"]
    assert outcome.state is None


def test_values_left_unknown_are_an_error_and_sent_as_null() -> None:
    planned = {"name": "a", "note": None, "secret": None, "id": UNKNOWN, "found": UNKNOWN}
    ctx = context()
    outcome = lifecycle.apply(Recorder(answer={"id": "id-9"}), None, planned, ctx)
    assert outcome.state["found"] is None and outcome.state["id"] == "id-9"
    assert errors(ctx) == [
        (
            "Provider left values unknown after apply",
            "This is a bug in the provider: some computed attributes were not filled in.",
        )
    ]


def test_a_refused_apply_keeps_the_prior_state_and_private_data() -> None:
    ctx = context()
    refusal = ProviderError("Refused", "nothing was written", ("note",))
    outcome = lifecycle.apply(Recorder(fail=refusal), PRIOR, dict(PRIOR, note="new"), ctx)
    assert (outcome.state, outcome.private) == (PRIOR, b"old-private")
    assert [(d.summary, d.detail, d.path) for d in ctx.diags] == [
        ("Refused", "nothing was written", ("note",))
    ]


def test_a_bug_is_a_diagnostic_and_its_traceback_only_a_debug_line() -> None:
    ctx = context()
    outcome = lifecycle.apply(Recorder(fail=KeyError("boom")), None, dict(PRIOR), ctx)
    assert (outcome.state, outcome.private) == (None, b"old-private")
    assert errors(ctx) == [
        (
            "Unexpected provider error during apply of test_thing",
            "KeyError: 'boom'\n\nThis is a bug in the provider; the debug log "
            "(TF_LOG_PROVIDER=DEBUG) has the details.",
        )
    ]
    [(level, message, fields)] = ctx.log
    assert (level, message) == ("debug", "apply of test_thing failed")
    assert "KeyError: 'boom'" in fields["traceback"]


# ------------------------------------------------------------------ read, import, upgrade


def test_read_returns_the_new_state_and_private_data() -> None:
    fresh = dict(PRIOR, note="changed outside")
    outcome = lifecycle.read(Recorder(answer=fresh), PRIOR, context())
    assert (outcome.state, outcome.private) == (fresh, b"new-private")


def test_read_of_a_gone_object_is_null() -> None:
    assert lifecycle.read(Recorder(answer=None), PRIOR, context()).state is None


def test_a_failed_read_keeps_the_state_as_it_was() -> None:
    ctx = context()
    outcome = lifecycle.read(Recorder(fail=ProviderError("Unreachable")), PRIOR, ctx)
    assert (outcome.state, outcome.private) == (PRIOR, b"old-private")
    assert errors(ctx) == [("Unreachable", "")]


def test_import_fills_every_attribute_the_import_left_out() -> None:
    outcome = lifecycle.import_state(Recorder(answer={"name": "a", "id": "x"}), "x", context())
    assert outcome.state == {"name": "a", "note": None, "secret": None, "id": "x", "found": None}


def test_a_state_from_a_newer_schema_is_refused() -> None:
    with pytest.raises(ProviderError, match="state was written by a newer provider"):
        lifecycle.upgrade_state(Recorder(), 2, {}, context())
    assert lifecycle.upgrade_state(Recorder(), 1, {"name": "a"}, context()) == {"name": "a"}


def test_guarded_turns_failures_into_diagnostics() -> None:
    diags = Diagnostics()
    assert lifecycle.guarded("op", diags, lambda: 7) == 7
    assert lifecycle.guarded("op", diags, lambda: 1 / 0) is None
    assert [d.summary for d in diags] == ["Unexpected provider error during op"]
