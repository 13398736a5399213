"""The real terraform CLI with the provider from dist/: init, schema, validate, plan.

Nothing here connects to a database or applies anything.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from harness import Body, Terraform, block, resource
from harness.plugin import PROVIDER_EXE

pytestmark = pytest.mark.skipif(
    shutil.which("terraform") is None or not PROVIDER_EXE.is_file(),
    reason="needs the terraform CLI and ./build.sh",
)

ADDRESS = "registry.terraform.io/immuta-pg/immuta"
ROLE_ARN = "arn:aws:iam::111122223333:role/immuta-svc"

PASSWORD_PROVIDER = """
provider "immuta" {
  username = "immuta_admin"
  password = "not-used-by-validate-or-plan"
}
"""

GOOD_CONNECTION = """
resource "immuta_postgres_connection" "c" {
  display_name    = "Production"
  deployment_type = "self_managed"
  hostname        = "pg.example.invalid"
  database        = "immuta"
}
"""


def _connection(**overrides: object) -> str:
    attributes: dict[str, object] = {
        "display_name": "Production",
        "deployment_type": "self_managed",
        "hostname": "pg.example.invalid",
        "database": "immuta",
    }
    attributes.update(overrides)
    return resource("immuta_postgres_connection", "r", **attributes)


def _mapping(**blocks: Body) -> str:
    return resource(
        "immuta_user_mapping",
        "r",
        connection_id="h:5432/immuta/Production",
        immuta_user="alice",
        **blocks,
    )


def _errors(result: dict) -> list[dict]:
    return [d for d in result["diagnostics"] if d["severity"] == "error"]


def test_init_writes_a_lock_file_with_an_h1_hash(terraform: Terraform) -> None:
    terraform.write(PASSWORD_PROVIDER)
    result = terraform.init()
    assert "Terraform has been successfully initialized" in result.stdout
    lock = (terraform.workdir / ".terraform.lock.hcl").read_text()
    assert f'provider "{ADDRESS}"' in lock
    assert 'version = "0.1.0"' in lock
    assert re.search(r'"h1:[A-Za-z0-9+/]{43}="', lock), lock
    installed = terraform.workdir / ".terraform/providers" / ADDRESS / "0.1.0/linux_amd64"
    assert (installed / PROVIDER_EXE.name).exists()


def test_providers_schema_json(terraform: Terraform) -> None:
    terraform.write(PASSWORD_PROVIDER)
    terraform.init()
    schemas = json.loads(terraform.run("providers", "schema", "-json").stdout)
    schema = schemas["provider_schemas"][ADDRESS]
    provider = schema["provider"]["block"]
    assert {
        "auth_method",
        "username",
        "password",
        "sslmode",
        "sslrootcert",
        "connect_timeout",
    } <= set(provider["attributes"])
    assert provider["attributes"]["password"].get("sensitive") is True
    aws = provider["block_types"]["aws"]
    assert aws["nesting_mode"] == "single"
    assert aws["block"]["attributes"]["secret_access_key"].get("sensitive") is True
    assert aws["block"]["attributes"]["external_id"].get("sensitive") is True

    resources = schema["resource_schemas"]
    connection = resources["immuta_postgres_connection"]["block"]["attributes"]
    for name in ("display_name", "deployment_type", "hostname", "database"):
        assert connection[name].get("required") is True, name
    for name in ("port", "on_missing_privileges"):
        assert connection[name].get("optional") is True, name
        assert "required" not in connection[name], name
    for name in (
        "id",
        "server_version",
        "auth_method",
        "username",
        "databases",
        "data_object_count",
        "skipped_object_count",
        "registered_at",
    ):
        assert connection[name].get("computed") is True, name
        assert "optional" not in connection[name] and "required" not in connection[name], name
    assert connection["databases"]["type"] == ["list", "string"]
    assert connection["port"]["type"] == "number"

    mapping = resources["immuta_user_mapping"]["block"]
    assert mapping["attributes"]["connection_id"].get("required") is True
    assert mapping["attributes"]["immuta_user"].get("required") is True
    for name in ("id", "postgres_user_found", "effective_postgres_username", "aws_principal_arn"):
        assert mapping["attributes"][name].get("computed") is True, name
    assert mapping["attributes"]["postgres_user_found"]["type"] == "bool"
    assert mapping["block_types"]["postgres"]["nesting_mode"] == "single"
    assert set(mapping["block_types"]["postgres"]["block"]["attributes"]) == {"mode", "username"}
    assert mapping["block_types"]["aws"]["nesting_mode"] == "single"
    assert set(mapping["block_types"]["aws"]["block"]["attributes"]) == {"user_type", "principal"}


# (HCL, attribute expected in the highlighted code, text expected in summary + detail)
BAD_PROVIDERS = {
    "auth_method": (
        'provider "immuta" {\n  auth_method = "kerberos"\n}\n',
        "auth_method",
        '"kerberos" is not allowed',
    ),
    "sslmode": (
        'provider "immuta" {\n  sslmode = "sometimes"\n}\n',
        "sslmode",
        '"sometimes" is not allowed',
    ),
    "connect_timeout": (
        'provider "immuta" {\n  connect_timeout = 301\n}\n',
        "connect_timeout",
        "301 is out of range",
    ),
    "role_arn_missing": (
        'provider "immuta" {\n  auth_method = "aws_assumed_role"\n'
        '  aws {\n    region      = "us-east-1"\n    external_id = "ext-1"\n  }\n}\n',
        "aws",
        "needs aws.role_arn",
    ),
    "role_username": (
        block(
            "provider",
            "immuta",
            auth_method="aws_assumed_role",
            username="other_user",
            aws=Body(region="us-east-1", role_arn=ROLE_ARN, external_id="ext-1"),
        ),
        "username",
        "Username does not match the assumed role",
    ),
}

BAD_RESOURCES = {
    "restricted_display_name": (
        _connection(display_name="SeTtInGs"),
        "display_name",
        "is a restricted word",
    ),
    "period_display_name": (
        _connection(display_name="prod.main"),
        "display_name",
        "contains a period",
    ),
    "port_zero": (_connection(port=0), "port", "0 is out of range"),
    "deployment_type": (
        _connection(deployment_type="azure"),
        "deployment_type",
        '"azure" is not allowed',
    ),
    "mode_username_without_username": (
        _mapping(postgres=Body(mode="username")),
        "postgres",
        "Missing PostgreSQL username",
    ),
    "identity_center_email": (
        _mapping(aws=Body(user_type="identity_center_user", principal="alice@example.com")),
        "principal",
        "User ID",
    ),
}


@pytest.mark.parametrize(
    ("hcl", "attribute", "fragment"),
    [pytest.param(*case, id=f"provider-{name}") for name, case in BAD_PROVIDERS.items()]
    + [
        pytest.param(PASSWORD_PROVIDER + case[0], *case[1:], id=f"resource-{name}")
        for name, case in BAD_RESOURCES.items()
    ],
)
def test_validate_rejects(terraform: Terraform, hcl: str, attribute: str, fragment: str) -> None:
    # A resource makes Terraform validate the provider block too.
    terraform.write(hcl if "resource" in hcl else hcl + GOOD_CONNECTION)
    result = terraform.validate()
    assert result["valid"] is False
    found = [d for d in _errors(result) if fragment in d["summary"] + "\n" + d["detail"]]
    assert found, json.dumps(result["diagnostics"], indent=1)
    assert attribute in found[0]["snippet"]["code"], found[0]["snippet"]
    assert "Unexpected provider error" not in json.dumps(result)


def test_validate_accepts_a_good_configuration(terraform: Terraform) -> None:
    terraform.write(
        PASSWORD_PROVIDER
        + GOOD_CONNECTION
        + """
resource "immuta_user_mapping" "alice" {
  connection_id = immuta_postgres_connection.c.id
  immuta_user   = "alice@example.com"
  postgres {
    mode     = "username"
    username = "Alice"
  }
  aws {
    user_type = "iam_role"
    principal = "arn:aws:iam::111122223333:role/analyst"
  }
}
"""
    )
    result = terraform.validate()
    assert result["valid"] is True, result
    assert result["error_count"] == 0 and result["warning_count"] == 0


def test_validate_accepts_provider_arguments_from_variables(terraform: Terraform) -> None:
    # During validate, variables are unknown: the provider must accept unknown values.
    terraform.write(
        """
variable "auth_method" {
  type    = string
  default = "password"
}
variable "sslmode" {
  type    = string
  default = "require"
}
variable "timeout" {
  type    = number
  default = 10
}
provider "immuta" {
  auth_method     = var.auth_method
  sslmode         = var.sslmode
  connect_timeout = var.timeout
  username        = "immuta_admin"
}
"""
        + GOOD_CONNECTION
    )
    result = terraform.validate()
    assert result["valid"] is True, json.dumps(result["diagnostics"], indent=1)


def test_plan_shows_defaults_and_unknowns_without_connecting(terraform: Terraform) -> None:
    terraform.write(PASSWORD_PROVIDER + GOOD_CONNECTION)
    result = terraform.plan()
    assert result.returncode == 2, result.output  # changes present; no database was needed
    out = result.stdout
    assert re.search(r"\+ port\s+= 5432\n", out), out
    assert re.search(r'\+ on_missing_privileges\s+= "error"\n', out), out
    assert re.search(r"\+ server_version\s+= \(known after apply\)", out), out
    assert re.search(r"\+ registered_at\s+= \(known after apply\)", out), out
    # The id is known after apply, or already exactly hostname:port/database/display_name.
    assert re.search(
        r'\+ id\s+= (\(known after apply\)|"pg\.example\.invalid:5432/immuta/Production")\n', out
    ), out
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in out
    assert not (terraform.workdir / "terraform.tfstate").exists()


def test_plan_refuses_neon_with_aws_authentication(terraform: Terraform) -> None:
    terraform.write(
        """
provider "immuta" {
  auth_method = "aws_access_key"
  aws {
    region            = "us-east-1"
    access_key_id     = "AKIAIOSFODNN7EXAMPLE"
    secret_access_key = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
  }
}
"""
        + _connection(deployment_type="neon")
    )
    result = terraform.plan_fails()
    err = result.stderr
    assert "Authentication method not available for this deployment type" in err
    assert re.search(r'\d+:\s+deployment_type = "neon"', err), err
    assert 'allows only auth_method = "password"' in err.replace("\n", " ")
    assert "wJalrXUtnFEMI" not in result.output
