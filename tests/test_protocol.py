"""The tfplugin6 Provider service over real gRPC, in process (pytest-grpc)."""

from __future__ import annotations

import json

import msgpack
import pytest
from harness import RESTRICTED_WORDS

from tfprovider_immuta_pg.framework.provider import StopSignal
from tfprovider_immuta_pg.framework.values import UNKNOWN
from tfprovider_immuta_pg.immuta.postgres_connection.schema import CONNECTION_SCHEMA
from tfprovider_immuta_pg.immuta.provider import PROVIDER_SCHEMA, ImmutaProvider
from tfprovider_immuta_pg.immuta.user_mapping.schema import USER_MAPPING_SCHEMA
from tfprovider_immuta_pg.protocol.codec import decode_msgpack, encode_msgpack
from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2 as pb
from tfprovider_immuta_pg.protocol.gen import tfplugin6_pb2_grpc as pb_grpc
from tfprovider_immuta_pg.protocol.service import ProviderService

CONN = "immuta_postgres_connection"
MAPPING = "immuta_user_mapping"
CONN_TYPE = CONNECTION_SCHEMA.value_type
MAPPING_TYPE = USER_MAPPING_SCHEMA.value_type
PROVIDER_TYPE = PROVIDER_SCHEMA.value_type

ROLE_ARN = "arn:aws:iam::111122223333:role/immuta-svc"
IDENTITY_CENTER_ID = "9067c1a2b3-1c2d3e4f-5a6b-7c8d-9e0f-123456789abc"


# ------------------------------------------------------------------ pytest-grpc wiring


@pytest.fixture(scope="module")
def grpc_add_to_server():
    return pb_grpc.add_ProviderServicer_to_server


@pytest.fixture(scope="module")
def grpc_servicer():
    return ProviderService(ImmutaProvider())


@pytest.fixture(scope="module")
def grpc_stub_cls():
    return pb_grpc.ProviderStub


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider reads PG*/AWS_*/IMMUTA_* fallbacks at validate time: start from none."""
    import os

    for name in list(os.environ):
        if name.startswith(("PG", "AWS_", "IMMUTA_")):
            monkeypatch.delenv(name)


# ------------------------------------------------------------------ helpers


def dv(value, ty) -> pb.DynamicValue:
    return pb.DynamicValue(msgpack=encode_msgpack(value, ty))


def path_of(diagnostic: pb.Diagnostic) -> tuple:
    steps = []
    for step in diagnostic.attribute.steps:
        steps.append(getattr(step, step.WhichOneof("selector")))
    return tuple(steps)


def errors(diagnostics) -> list[tuple[tuple, str, str]]:
    return [
        (path_of(d), d.summary, d.detail) for d in diagnostics if d.severity == pb.Diagnostic.ERROR
    ]


def conn_config(**values) -> dict:
    config = {
        "display_name": "Production",
        "deployment_type": "self_managed",
        "hostname": "db.example.com",
        "port": None,
        "database": "immuta",
        "on_missing_privileges": None,
    }
    config.update(values)
    return config


def conn_state(**values) -> dict:
    state = {
        "display_name": "Production",
        "deployment_type": "self_managed",
        "hostname": "db.example.com",
        "port": 5432,
        "database": "immuta",
        "on_missing_privileges": "error",
        "id": "db.example.com:5432/immuta/Production",
        "server_version": "17.2",
        "auth_method": "password",
        "username": "immuta_admin",
        "databases": ["sales", "hr"],
        "data_object_count": 12,
        "skipped_object_count": 0,
        "registered_at": "2026-01-02T03:04:05Z",
        "object_sync": "plan",
        "object_sync_status": "in sync",
        "include": None,
        "exclude": None,
    }
    state.update(values)
    return state


def config_of_state(state: dict) -> dict:
    """The configuration matching a state: computed-only attributes null."""
    attributes = CONNECTION_SCHEMA.block.attributes
    return {
        k: v if k not in attributes or attributes[k].required or k == "object_sync" else None
        for k, v in state.items()
    }


def mapping_config(postgres=None, aws=None, **values) -> dict:
    config = {"connection_id": "db.example.com:5432/immuta/Production", "immuta_user": "alice"}
    config.update(values, postgres=postgres, aws=aws)
    return config


def validate_resource(stub, type_name: str, config: dict, ty) -> list:
    request = pb.ValidateResourceConfig.Request(type_name=type_name, config=dv(config, ty))
    return list(stub.ValidateResourceConfig(request).diagnostics)


def validate_provider(stub, config: dict) -> list:
    full = dict.fromkeys(PROVIDER_TYPE.attributes)
    full.update(config)
    request = pb.ValidateProviderConfig.Request(config=dv(full, PROVIDER_TYPE))
    return list(stub.ValidateProviderConfig(request).diagnostics)


def aws(**values) -> dict:
    block = dict.fromkeys(PROVIDER_TYPE.attributes["aws"].attributes)
    block.update(values)
    return block


def plan(stub, prior, proposed, config, type_name=CONN, ty=CONN_TYPE):
    request = pb.PlanResourceChange.Request(
        type_name=type_name,
        prior_state=dv(prior, ty),
        proposed_new_state=dv(proposed, ty),
        config=dv(config, ty),
    )
    response = stub.PlanResourceChange(request)
    return response, decode_msgpack(response.planned_state.msgpack, ty)


# ------------------------------------------------------------------ metadata and schema


def test_get_metadata(grpc_stub) -> None:
    response = grpc_stub.GetMetadata(pb.GetMetadata.Request())
    assert {r.type_name for r in response.resources} >= {CONN, MAPPING}
    assert response.server_capabilities.plan_destroy is True
    assert response.server_capabilities.get_provider_schema_optional is True
    assert not errors(response.diagnostics)


CONNECTION_ATTRIBUTES = {
    "display_name": "required",
    "deployment_type": "required",
    "hostname": "required",
    "port": "optional",
    "database": "required",
    "on_missing_privileges": "optional",
    "id": "computed",
    "server_version": "computed",
    "auth_method": "computed",
    "username": "computed",
    "databases": "computed",
    "data_object_count": "computed",
    "skipped_object_count": "computed",
    "registered_at": "computed",
}
MAPPING_ATTRIBUTES = {
    "connection_id": "required",
    "immuta_user": "required",
    "id": "computed",
    "postgres_user_found": "computed",
    "effective_postgres_username": "computed",
    "aws_principal_arn": "computed",
}
# Optional additions to the connection beyond its required attributes (object sync, filters).
CONNECTION_EXTENSIONS = {"object_sync", "object_sync_status", "include", "exclude"}


def _attributes(block: pb.Schema.Block) -> dict[str, pb.Schema.Attribute]:
    return {a.name: a for a in block.attributes}


def _blocks(block: pb.Schema.Block) -> dict[str, pb.Schema.NestedBlock]:
    return {b.type_name: b for b in block.block_types}


def _assert_kinds(attributes: dict[str, pb.Schema.Attribute], expected: dict[str, str]) -> None:
    for name, kind in expected.items():
        attr = attributes[name]
        if kind == "required":
            assert attr.required and not attr.optional and not attr.computed, name
        elif kind == "optional":
            assert attr.optional and not attr.required, name
        else:
            assert attr.computed and not attr.optional and not attr.required, name


@pytest.fixture(scope="module")
def schema(grpc_stub) -> pb.GetProviderSchema.Response:
    return grpc_stub.GetProviderSchema(pb.GetProviderSchema.Request())


def test_connection_schema(schema) -> None:
    block = schema.resource_schemas[CONN].block
    attributes = _attributes(block)
    assert set(CONNECTION_ATTRIBUTES) <= set(attributes)
    extras = set(attributes) - set(CONNECTION_ATTRIBUTES)
    assert extras <= CONNECTION_EXTENSIONS
    assert not any(attributes[name].required for name in extras)
    _assert_kinds(attributes, CONNECTION_ATTRIBUTES)
    assert json.loads(attributes["databases"].type) == ["list", "string"]
    assert json.loads(attributes["port"].type) == "number"
    assert json.loads(attributes["display_name"].type) == "string"
    assert json.loads(attributes["data_object_count"].type) == "number"
    assert not any(a.sensitive for a in block.attributes)


def test_user_mapping_schema(schema) -> None:
    block = schema.resource_schemas[MAPPING].block
    attributes = _attributes(block)
    assert set(attributes) == set(MAPPING_ATTRIBUTES)
    _assert_kinds(attributes, MAPPING_ATTRIBUTES)
    assert json.loads(attributes["postgres_user_found"].type) == "bool"
    blocks = _blocks(block)
    assert set(blocks) == {"postgres", "aws"}
    for name, fields in (("postgres", {"mode", "username"}), ("aws", {"user_type", "principal"})):
        assert blocks[name].nesting == pb.Schema.NestedBlock.SINGLE
        assert set(_attributes(blocks[name].block)) == fields
    postgres = _attributes(blocks["postgres"].block)
    assert postgres["mode"].optional and not postgres["mode"].required
    assert postgres["username"].optional and not postgres["username"].required
    assert not _attributes(blocks["aws"].block)["principal"].required


def test_provider_schema(schema) -> None:
    block = schema.provider.block
    attributes = _attributes(block)
    expected = {"auth_method", "username", "password", "sslmode", "sslrootcert", "connect_timeout"}
    assert expected <= set(attributes)
    assert all(attributes[n].optional and not attributes[n].required for n in expected)
    assert attributes["password"].sensitive
    assert not attributes["username"].sensitive
    assert json.loads(attributes["connect_timeout"].type) == "number"
    aws_block = _blocks(block)["aws"]
    assert aws_block.nesting == pb.Schema.NestedBlock.SINGLE
    aws_attributes = _attributes(aws_block.block)
    assert {
        "region",
        "access_key_id",
        "secret_access_key",
        "role_arn",
        "external_id",
        "endpoint_url",
        "identity_store_id",
    } <= set(aws_attributes)
    assert aws_attributes["secret_access_key"].sensitive
    assert aws_attributes["external_id"].sensitive
    assert not aws_attributes["region"].sensitive
    assert not aws_attributes["role_arn"].sensitive
    assert schema.server_capabilities.plan_destroy


# ------------------------------------------------------------------ connection validation


@pytest.mark.parametrize("name", ["", "   "])
def test_blank_display_name(grpc_stub, name: str) -> None:
    found = errors(validate_resource(grpc_stub, CONN, conn_config(display_name=name), CONN_TYPE))
    assert len(found) == 1
    path, summary, detail = found[0]
    assert path == ("display_name",)
    assert summary == "Invalid display name"
    assert "must not be blank" in detail


def test_display_name_with_a_period(grpc_stub) -> None:
    config = conn_config(display_name="prod.main")
    found = errors(validate_resource(grpc_stub, CONN, config, CONN_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("display_name",), "Invalid display name")]
    assert "period" in found[0][2]


def _mixed_case(word: str) -> str:
    return "".join(c.upper() if i % 2 == 0 else c for i, c in enumerate(word))


@pytest.mark.parametrize("word", RESTRICTED_WORDS)
def test_restricted_display_names_in_any_case(grpc_stub, word: str) -> None:
    name = _mixed_case(word)
    assert name != word
    found = errors(validate_resource(grpc_stub, CONN, conn_config(display_name=name), CONN_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("display_name",), "Invalid display name")]
    assert "restricted word" in found[0][2]
    assert name in found[0][2]


def test_restricted_word_as_part_of_a_name_is_fine(grpc_stub) -> None:
    config = conn_config(display_name="data-warehouse")
    assert validate_resource(grpc_stub, CONN, config, CONN_TYPE) == []


def test_display_name_with_control_character(grpc_stub) -> None:
    config = conn_config(display_name="prod\x07")
    found = errors(validate_resource(grpc_stub, CONN, config, CONN_TYPE))
    assert [p for p, _, _ in found] == [("display_name",)]
    assert "U+0007" in found[0][2]


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_port_out_of_range(grpc_stub, port: int) -> None:
    found = errors(validate_resource(grpc_stub, CONN, conn_config(port=port), CONN_TYPE))
    assert [p for p, _, _ in found] == [("port",)]
    assert f"{port} is out of range" in found[0][2]
    assert "1 to 65535" in found[0][2]


def test_unknown_deployment_type(grpc_stub) -> None:
    config = conn_config(deployment_type="azure")
    found = errors(validate_resource(grpc_stub, CONN, config, CONN_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("deployment_type",), "Invalid value")]
    assert '"azure"' in found[0][2] and '"self_managed"' in found[0][2]


@pytest.mark.parametrize(
    "config",
    [
        conn_config(),
        conn_config(port=6543, on_missing_privileges="skip", deployment_type="rds"),
        conn_config(display_name="Prod Warehouse ✓ 2", deployment_type="aurora"),
        conn_config(deployment_type="neon", port=65535),
    ],
)
def test_valid_connection_configs(grpc_stub, config: dict) -> None:
    assert validate_resource(grpc_stub, CONN, config, CONN_TYPE) == []


def test_unknown_connection_values_are_not_errors(grpc_stub) -> None:
    config = dict.fromkeys(conn_config(), UNKNOWN)
    assert validate_resource(grpc_stub, CONN, config, CONN_TYPE) == []


# ------------------------------------------------------------------ user mapping validation


def test_mode_username_needs_username(grpc_stub) -> None:
    config = mapping_config(postgres={"mode": "username", "username": None})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [
        (("postgres", "username"), "Missing PostgreSQL username")
    ]


def test_username_without_mode_username(grpc_stub) -> None:
    config = mapping_config(postgres={"mode": "none", "username": "bob"})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [p for p, _, _ in found] == [("postgres", "username")]


@pytest.mark.parametrize(
    ("principal", "fragment"),
    [
        ("arn:aws:iam::1234:role/short-account", "not a valid IAM role ARN"),
        ("arn:aws:iam::111122223333:user/bob", "is an IAM user ARN"),
        ("arn:aws:iam::111122223333:role/", "not a valid IAM role ARN"),
        ("bob smith@example.com", "not a valid IAM role name"),
    ],
)
def test_iam_role_malformed(grpc_stub, principal: str, fragment: str) -> None:
    config = mapping_config(aws={"user_type": "iam_role", "principal": principal})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("aws", "principal"), "Invalid AWS principal")]
    assert fragment in found[0][2]


def test_identity_center_user_email(grpc_stub) -> None:
    config = mapping_config(aws={"user_type": "identity_center_user", "principal": "bob@corp.com"})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("aws", "principal"), "Invalid AWS principal")]
    assert "email" in found[0][2]
    assert "User ID" in found[0][2]


def test_unset_user_type_with_principal(grpc_stub) -> None:
    config = mapping_config(aws={"user_type": "unset", "principal": "some-role"})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("aws", "principal"), "Unexpected AWS principal")]


def test_iam_user_without_principal(grpc_stub) -> None:
    config = mapping_config(aws={"user_type": "iam_user", "principal": None})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("aws", "principal"), "Missing AWS principal")]


def test_bad_user_type(grpc_stub) -> None:
    config = mapping_config(aws={"user_type": "sso", "principal": "x"})
    found = errors(validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE))
    assert [(p, s) for p, s, _ in found] == [(("aws", "user_type"), "Invalid value")]


@pytest.mark.parametrize(
    "config",
    [
        mapping_config(),
        mapping_config(postgres={"mode": "username", "username": "Alice_PG"}),
        mapping_config(postgres={"mode": None, "username": None}),
        mapping_config(postgres={"mode": "none", "username": None}),
        mapping_config(aws={"user_type": "iam_role", "principal": ROLE_ARN}),
        mapping_config(aws={"user_type": "iam_role", "principal": "analyst-role"}),
        mapping_config(aws={"user_type": "iam_user", "principal": "bob.smith@corp"}),
        mapping_config(aws={"user_type": "identity_center_user", "principal": IDENTITY_CENTER_ID}),
        mapping_config(aws={"user_type": "unset", "principal": None}),
        mapping_config(immuta_user="Alice Smith / ops@corp.com ✓"),
    ],
)
def test_valid_user_mapping_configs(grpc_stub, config: dict) -> None:
    assert validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE) == []


@pytest.mark.parametrize(
    "config",
    [
        mapping_config(postgres=UNKNOWN, aws=UNKNOWN),
        mapping_config(connection_id=UNKNOWN, immuta_user=UNKNOWN),
        mapping_config(postgres={"mode": "username", "username": UNKNOWN}),
        mapping_config(postgres={"mode": UNKNOWN, "username": "bob"}),
        mapping_config(aws={"user_type": UNKNOWN, "principal": "bob@corp.com"}),
        mapping_config(aws={"user_type": "identity_center_user", "principal": UNKNOWN}),
    ],
    ids=["blocks", "top", "pg-username", "pg-mode", "aws-user-type", "aws-principal"],
)
def test_unknown_user_mapping_values_are_not_errors(grpc_stub, config: dict) -> None:
    assert validate_resource(grpc_stub, MAPPING, config, MAPPING_TYPE) == []


# ------------------------------------------------------------------ provider validation


def test_valid_provider_configs(grpc_stub) -> None:
    assert validate_provider(grpc_stub, {}) == []
    assert (
        validate_provider(grpc_stub, {"username": "u", "password": "p", "sslmode": "require"}) == []
    )
    assert (
        validate_provider(
            grpc_stub,
            {
                "auth_method": "aws_assumed_role",
                "aws": aws(region="us-east-1", role_arn=ROLE_ARN, external_id="ext-123"),
            },
        )
        == []
    )
    assert (
        validate_provider(
            grpc_stub,
            {
                "auth_method": "aws_access_key",
                "username": "immuta_admin",
                "aws": aws(region="eu-west-1", access_key_id="AKIA1", secret_access_key="abcd"),
            },
        )
        == []
    )


def test_bad_auth_method(grpc_stub) -> None:
    found = errors(validate_provider(grpc_stub, {"auth_method": "kerberos"}))
    assert [(p, s) for p, s, _ in found] == [(("auth_method",), "Invalid value")]
    assert '"kerberos"' in found[0][2] and '"aws_assumed_role"' in found[0][2]


def test_bad_sslmode(grpc_stub) -> None:
    found = errors(validate_provider(grpc_stub, {"sslmode": "sometimes"}))
    assert [(p, s) for p, s, _ in found] == [(("sslmode",), "Invalid value")]
    assert '"verify-full"' in found[0][2]


@pytest.mark.parametrize("timeout", [0, 301])
def test_connect_timeout_out_of_range(grpc_stub, timeout: int) -> None:
    found = errors(validate_provider(grpc_stub, {"connect_timeout": timeout}))
    assert [p for p, _, _ in found] == [("connect_timeout",)]
    assert "1 to 300" in found[0][2]


def test_assumed_role_needs_role_region_and_external_id(grpc_stub) -> None:
    found = errors(validate_provider(grpc_stub, {"auth_method": "aws_assumed_role"}))
    assert {p for p, _, _ in found} == {
        ("aws", "role_arn"),
        ("aws", "region"),
        ("aws", "external_id"),
    }
    by_path = {p: d for p, _, d in found}
    assert "IMMUTA_AWS_ROLE_ARN" in by_path[("aws", "role_arn")]
    assert all(s == "Missing required argument" for _, s, _ in found)


def test_access_key_needs_keys(grpc_stub) -> None:
    config = {"auth_method": "aws_access_key", "aws": aws(region="us-east-1")}
    found = errors(validate_provider(grpc_stub, config))
    assert {p for p, _, _ in found} == {("aws", "access_key_id"), ("aws", "secret_access_key")}


def test_access_key_env_fallbacks_count(grpc_stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    assert validate_provider(grpc_stub, {"auth_method": "aws_access_key"}) == []


def test_username_must_be_the_assumed_role_name(grpc_stub) -> None:
    config = {
        "auth_method": "aws_assumed_role",
        "username": "someone_else",
        "aws": aws(region="us-east-1", role_arn=ROLE_ARN, external_id="ext"),
    }
    found = errors(validate_provider(grpc_stub, config))
    assert [(p, s) for p, s, _ in found] == [
        (("username",), "Username does not match the assumed role")
    ]
    assert "'immuta-svc'" in found[0][2]
    config["username"] = "immuta-svc"
    assert validate_provider(grpc_stub, config) == []


def test_malformed_role_arn(grpc_stub) -> None:
    config = {"aws": aws(role_arn="arn:aws:iam::111122223333:user/bob")}
    found = errors(validate_provider(grpc_stub, config))
    assert [p for p, _, _ in found] == [("aws", "role_arn")]


def test_pgsslmode_env_fallback_is_validated(grpc_stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "bogus")
    found = errors(validate_provider(grpc_stub, {}))
    assert [p for p, _, _ in found] == [("sslmode",)]
    assert "PGSSLMODE" in found[0][2] and '"bogus"' in found[0][2]
    # A value in the provider block takes precedence over the environment.
    assert validate_provider(grpc_stub, {"sslmode": "disable"}) == []


def test_connect_timeout_env_fallback_is_validated(
    grpc_stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "0")
    assert [p for p, _, _ in errors(validate_provider(grpc_stub, {}))] == [("connect_timeout",)]
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "soon")
    found = errors(validate_provider(grpc_stub, {}))
    assert [p for p, _, _ in found] == [("connect_timeout",)]
    assert "PGCONNECT_TIMEOUT" in found[0][2]


@pytest.mark.parametrize(
    "config",
    [
        {"username": UNKNOWN, "password": UNKNOWN, "connect_timeout": UNKNOWN},
        {"auth_method": "aws_assumed_role", "aws": aws(region=UNKNOWN, role_arn=UNKNOWN,
                                                       external_id=UNKNOWN)},
        {"auth_method": UNKNOWN},
        {"sslmode": UNKNOWN, "auth_method": UNKNOWN, "aws": UNKNOWN},
    ],
    ids=["credentials", "aws-values", "auth-method", "aws-block"],
)  # fmt: skip
def test_unknown_provider_values_are_not_errors(grpc_stub, config: dict) -> None:
    assert validate_provider(grpc_stub, config) == []


# ------------------------------------------------------------------ plan


def test_plan_create(grpc_stub) -> None:
    config = conn_config()
    proposed = dict.fromkeys(CONN_TYPE.attributes)
    proposed.update(config)
    response, planned = plan(grpc_stub, None, proposed, config)
    assert not errors(response.diagnostics)
    assert planned["port"] == 5432
    assert planned["on_missing_privileges"] == "error"
    assert planned["display_name"] == "Production"
    for name in (
        "server_version",
        "auth_method",
        "username",
        "databases",
        "data_object_count",
        "skipped_object_count",
        "registered_at",
    ):
        assert planned[name] is UNKNOWN, name
    # The id is unknown, or already known exactly as the import ID spells it.
    assert planned["id"] is UNKNOWN or planned["id"] == "db.example.com:5432/immuta/Production"
    assert list(response.requires_replace) == []


def test_plan_without_changes_is_the_prior_state(grpc_stub) -> None:
    prior = conn_state()
    response, planned = plan(grpc_stub, prior, prior, config_of_state(prior))
    assert planned == prior
    assert list(response.requires_replace) == []


@pytest.mark.parametrize(
    ("attribute", "value"), [("display_name", "Staging"), ("database", "immuta2")]
)
def test_plan_replacement(grpc_stub, attribute: str, value: str) -> None:
    prior = conn_state()
    proposed = dict(prior, **{attribute: value})
    response, planned = plan(grpc_stub, prior, proposed, config_of_state(proposed))
    assert [path_of_steps(p) for p in response.requires_replace] == [(attribute,)]
    assert planned[attribute] == value
    assert planned["registered_at"] is UNKNOWN  # a new registration


def path_of_steps(path: pb.AttributePath) -> tuple:
    return tuple(getattr(s, s.WhichOneof("selector")) for s in path.steps)


def test_plan_hostname_change_is_in_place(grpc_stub) -> None:
    prior = conn_state()
    proposed = dict(prior, hostname="db2.example.com")
    response, planned = plan(grpc_stub, prior, proposed, config_of_state(proposed))
    assert not errors(response.diagnostics)
    assert list(response.requires_replace) == []
    assert planned["hostname"] == "db2.example.com"
    assert planned["display_name"] == "Production"
    # An in-place change of hostname plans the id as known after apply (the id holds it).
    assert planned["id"] is UNKNOWN or planned["id"] == "db2.example.com:5432/immuta/Production"
    assert planned["id"] != prior["id"]


def test_plan_destroy(grpc_stub) -> None:
    prior = conn_state()
    response, planned = plan(grpc_stub, prior, None, None)
    assert planned is None
    assert response.planned_state.msgpack == b"\xc0"
    assert not errors(response.diagnostics)


def test_plan_user_mapping_create_defaults(grpc_stub) -> None:
    config = mapping_config(postgres={"mode": None, "username": None})
    proposed = dict.fromkeys(MAPPING_TYPE.attributes)
    proposed.update(config)
    response, planned = plan(grpc_stub, None, proposed, config, MAPPING, MAPPING_TYPE)
    assert not errors(response.diagnostics)
    assert planned["postgres"]["mode"] == "unset"
    assert planned["postgres_user_found"] is UNKNOWN


# ------------------------------------------------------------------ apply, upgrade, import, move


def test_apply_create_without_configuration_fails_cleanly(grpc_stub, grpc_servicer) -> None:
    config = conn_config(hostname="127.0.0.1", port=1)
    planned = dict.fromkeys(CONN_TYPE.attributes, UNKNOWN)
    planned.update(config, on_missing_privileges="error", include=None, exclude=None)
    request = pb.ApplyResourceChange.Request(
        type_name=CONN,
        prior_state=dv(None, CONN_TYPE),
        planned_state=dv(planned, CONN_TYPE),
        config=dv(config, CONN_TYPE),
    )
    response = grpc_stub.ApplyResourceChange(request)
    found = errors(response.diagnostics)
    assert len(found) == 1
    assert decode_msgpack(response.new_state.msgpack, CONN_TYPE) is None  # nothing created
    assert "Traceback" not in found[0][2]
    assert found[0][1] == "Provider not configured"


def test_upgrade_resource_state_from_json(grpc_stub) -> None:
    state = conn_state()
    raw = dict(state, attribute_from_an_older_schema="ignored")
    request = pb.UpgradeResourceState.Request(
        type_name=CONN, version=0, raw_state=pb.RawState(json=json.dumps(raw).encode())
    )
    response = grpc_stub.UpgradeResourceState(request)
    assert not errors(response.diagnostics)
    assert decode_msgpack(response.upgraded_state.msgpack, CONN_TYPE) == state


def test_upgrade_from_a_newer_schema_version_is_refused(grpc_stub) -> None:
    request = pb.UpgradeResourceState.Request(
        type_name=CONN, version=99, raw_state=pb.RawState(json=json.dumps(conn_state()).encode())
    )
    found = errors(grpc_stub.UpgradeResourceState(request).diagnostics)
    assert len(found) == 1 and "newer provider" in found[0][1]


def test_import_user_mapping_with_garbage_id(grpc_stub) -> None:
    request = pb.ImportResourceState.Request(type_name=MAPPING, id="garbage")
    response = grpc_stub.ImportResourceState(request)
    assert len(errors(response.diagnostics)) == 1
    assert list(response.imported_resources) == []


def test_move_resource_state_is_refused(grpc_stub) -> None:
    request = pb.MoveResourceState.Request(
        source_provider_address="registry.terraform.io/hashicorp/null",
        source_type_name="null_resource",
        target_type_name=CONN,
        source_state=pb.RawState(json=b"{}"),
    )
    found = errors(grpc_stub.MoveResourceState(request).diagnostics)
    assert len(found) == 1
    assert "null_resource" in found[0][2]


def test_unknown_resource_type(grpc_stub) -> None:
    request = pb.ValidateResourceConfig.Request(
        type_name="immuta_bogus", config=dv(None, CONN_TYPE)
    )
    found = errors(grpc_stub.ValidateResourceConfig(request).diagnostics)
    assert [s for _, s, _ in found] == ["Unknown resource type 'immuta_bogus'"]


@pytest.mark.parametrize(
    ("method", "request_cls"),
    [
        ("ValidateEphemeralResourceConfig", pb.ValidateEphemeralResourceConfig.Request),
        ("OpenEphemeralResource", pb.OpenEphemeralResource.Request),
        ("RenewEphemeralResource", pb.RenewEphemeralResource.Request),
        ("CloseEphemeralResource", pb.CloseEphemeralResource.Request),
    ],
)
def test_ephemeral_calls_name_the_type(grpc_stub, method: str, request_cls) -> None:
    response = getattr(grpc_stub, method)(request_cls(type_name="immuta_token"))
    found = errors(response.diagnostics)
    assert len(found) == 1
    assert "immuta_token" in found[0][1]


def test_call_unknown_function(grpc_stub) -> None:
    response = grpc_stub.CallFunction(pb.CallFunction.Request(name="no_such_function"))
    assert "no_such_function" in response.error.text
    assert not response.HasField("result")


@pytest.mark.parametrize("payload", [b"\xc1", b"\x92\x01", msgpack.packb({"nope": 1})])
def test_malformed_config_is_a_diagnostic(grpc_stub, payload: bytes) -> None:
    request = pb.ValidateResourceConfig.Request(
        type_name=CONN, config=pb.DynamicValue(msgpack=payload)
    )
    found = errors(grpc_stub.ValidateResourceConfig(request).diagnostics)
    assert [s for _, s, _ in found] == ["Malformed value from Terraform"]
    request = pb.ValidateProviderConfig.Request(config=pb.DynamicValue(msgpack=payload))
    found = errors(grpc_stub.ValidateProviderConfig(request).diagnostics)
    assert [s for _, s, _ in found] == ["Malformed value from Terraform"]
    request = pb.PlanResourceChange.Request(
        type_name=CONN,
        prior_state=dv(None, CONN_TYPE),
        proposed_new_state=pb.DynamicValue(msgpack=payload),
        config=pb.DynamicValue(msgpack=payload),
    )
    found = errors(grpc_stub.PlanResourceChange(request).diagnostics)
    assert [s for _, s, _ in found] == ["Malformed value from Terraform"]


def test_stop_provider_sets_the_stop_signal(grpc_stub, grpc_servicer) -> None:
    assert not grpc_servicer.stop_signal.is_set()
    try:
        response = grpc_stub.StopProvider(pb.StopProvider.Request())
        assert response.Error == ""
        assert grpc_servicer.stop_signal.is_set()
    finally:
        grpc_servicer.stop_signal = StopSignal()  # the servicer is shared by this module


def test_diagnostics_never_carry_a_registered_secret() -> None:
    from tfprovider_immuta_pg.framework import secrets
    from tfprovider_immuta_pg.framework.diagnostics import Diagnostics
    from tfprovider_immuta_pg.protocol.convert import diagnostics_to_proto

    secret = "pw-7f3a9c1e-protocol-test"
    secrets.register(secret)
    diags = Diagnostics()
    diags.error(f"login {secret} refused", f"password {secret!r} was wrong", ("password",))
    (message,) = diagnostics_to_proto(diags)
    assert secret not in message.summary and secret not in message.detail
    assert "***" in message.summary and "***" in message.detail
    assert path_of(message) == ("password",)


# ------------------------------------------------------------------ client capabilities

PRINCIPAL = "immuta_aws_service_principal"
PRINCIPAL_TYPE = ImmutaProvider().resources[PRINCIPAL].schema.value_type
EXTERNAL_ID = "ExtId-protocol-4c9d2e"


def principal_config() -> dict:
    config = dict.fromkeys(PRINCIPAL_TYPE.attributes)
    config.update(
        role_name="immuta-svc",
        region="us-east-1",
        aws_account_id="111122223333",
        db_resource_id="db-ABCDEFGHIJKLMNOPQRSTUVWXY1",
        immuta_account_id="444455556666",
        external_id=EXTERNAL_ID,
        hostname="db.example.com",
    )
    return config


def capabilities(**flags: bool) -> dict:
    """The request field: none at all (Terraform before 1.9), or the flags given."""
    return {"client_capabilities": pb.ClientCapabilities(**flags)} if flags else {}


REFUSAL = (("external_id",), "external_id needs Terraform 1.11 or later")


@pytest.mark.parametrize(
    "flags", [{}, {"deferral_allowed": True}], ids=["before 1.9", "1.9 and 1.10"]
)
def test_write_only_values_are_refused_unless_the_client_supports_them(
    grpc_stub, flags: dict
) -> None:
    config = dv(principal_config(), PRINCIPAL_TYPE)
    validated = grpc_stub.ValidateResourceConfig(
        pb.ValidateResourceConfig.Request(
            type_name=PRINCIPAL, config=config, **capabilities(**flags)
        )
    )
    assert [(path, summary) for path, summary, _ in errors(validated.diagnostics)] == [REFUSAL]
    planned = grpc_stub.PlanResourceChange(
        pb.PlanResourceChange.Request(
            type_name=PRINCIPAL,
            prior_state=dv(None, PRINCIPAL_TYPE),
            proposed_new_state=config,
            config=config,
            **capabilities(**flags),
        )
    )
    assert [(path, summary) for path, summary, _ in errors(planned.diagnostics)] == [REFUSAL]
    assert decode_msgpack(planned.planned_state.msgpack, PRINCIPAL_TYPE) is None
    assert EXTERNAL_ID.encode() not in validated.SerializeToString() + planned.SerializeToString()


def test_a_client_with_write_only_support_validates_as_usual(grpc_stub) -> None:
    request = pb.ValidateResourceConfig.Request(
        type_name=PRINCIPAL,
        config=dv(principal_config(), PRINCIPAL_TYPE),
        **capabilities(write_only_attributes_allowed=True),
    )
    assert list(grpc_stub.ValidateResourceConfig(request).diagnostics) == []
