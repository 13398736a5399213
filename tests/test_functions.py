"""provider::immuta::rds_db_user_arn through the real terraform CLI, and its rules directly."""

from __future__ import annotations

import re
import subprocess

import pytest
from harness import Raw, Terraform, expression, output

from tfprovider_immuta_pg.framework.provider import FunctionError
from tfprovider_immuta_pg.immuta.functions import RdsDbUserArn

GOOD = ("us-east-1", "123456789012", "db-ABCDEFGHIJKLMNOPQRSTUVWXY1", "immuta_svc")
PARAMETERS = ("region", "account_id", "db_resource_id", "db_username")


def call(*args: object) -> Raw:
    """The function call as an HCL expression; strings are quoted, Raw and numbers are not."""
    return Raw("provider::immuta::rds_db_user_arn(" + ", ".join(map(expression, args)) + ")")


def test_outputs_the_arn(terraform: Terraform) -> None:
    terraform.write(
        output("arn", call(*GOOD))
        + output("cluster_in_china", call("cn-north-1", 123456789012, "cluster-ABC123", "*"))
        + output("gov", call("us-gov-west-1", "000011112222", "db-X1", "App User@corp"))
    )
    terraform.apply()
    outputs = terraform.outputs()
    assert outputs["arn"] == (
        "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXY1/immuta_svc"
    )
    # A number argument converts to a string; "*" is IAM's wildcard for every user.
    assert outputs["cluster_in_china"] == (
        "arn:aws-cn:rds-db:cn-north-1:123456789012:dbuser:cluster-ABC123/*"
    )
    assert outputs["gov"] == (
        "arn:aws-us-gov:rds-db:us-gov-west-1:000011112222:dbuser:db-X1/App User@corp"
    )


BAD = {
    "region": ("US-East-1", "is not an AWS region code"),
    "account_id": ("12345678901", "expected exactly 12 digits"),
    "db_resource_id": ("my-database", "is not an RDS resource ID"),
    "db_username": ("app/user", "contains '/'"),
}


def test_each_bad_argument_names_its_parameter(terraform: Terraform) -> None:
    outputs = []
    for index, name in enumerate(PARAMETERS):
        args = list(GOOD)
        args[index] = BAD[name][0]
        outputs.append(output(f"bad_{name}", call(*args)))
    outputs.append(output("null_region", call(None, *GOOD[1:])))
    terraform.write("".join(outputs))
    result = terraform.plan_fails()
    blocks = {}
    for block in result.output.split("Error: ")[1:]:
        found = re.search(r'in output "(\w+)"', block)
        assert found, block
        blocks[found.group(1)] = " ".join(block.split())
    assert set(blocks) == {f"bad_{n}" for n in PARAMETERS} | {"null_region"}
    for name in PARAMETERS:
        text = blocks[f"bad_{name}"]
        assert text.startswith("Invalid function argument"), text
        assert f'Invalid value for "{name}" parameter:' in text, text
        assert BAD[name][1] in text, text
        assert not text.endswith("..")
    assert 'Invalid value for "region" parameter' in blocks["null_region"]
    assert "Traceback" not in result.output


def test_console(terraform: Terraform) -> None:
    terraform.write("")
    terraform.init()
    typed = call("eu-central-1", "111122223333", "cluster-ZZZ9", "reader") + "\n"
    completed = subprocess.run(
        ["terraform", "console", "-no-color"],
        cwd=terraform.workdir,
        env=terraform.env,
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (
        '"arn:aws:rds-db:eu-central-1:111122223333:dbuser:cluster-ZZZ9/reader"'
    )


# ---------------------------------------------------------------------- rules, directly


@pytest.mark.parametrize(
    "region",
    [
        "us-east-1",
        "eu-central-2",
        "ap-southeast-4",
        "us-gov-west-1",
        "us-isob-east-1",
        "cn-north-1",
    ],
)
def test_regions_accepted(region: str) -> None:
    assert RdsDbUserArn().call(region, *GOOD[1:]).split(":")[3] == region


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, "us-east-1a"),
        (0, "useast1"),
        (0, ""),
        (0, "us-east-10"),
        (1, "1234567890123"),
        (1, "12345678901a"),
        (1, " 123456789012"),
        (2, "db-abc"),
        (2, "cluster-"),
        (2, "mydb"),
        (2, "db-ABC/x"),
        (3, ""),
        (3, "a" * 64),
        (3, "bad\nname"),
        (3, " padded"),
        (3, "x/y"),
    ],
)
def test_bad_arguments_raise_for_their_index(index: int, value: str) -> None:
    args = list(GOOD)
    args[index] = value
    with pytest.raises(FunctionError) as caught:
        RdsDbUserArn().call(*args)
    assert caught.value.argument == index
    assert not caught.value.text.endswith("."), "Terraform adds the final period"


def test_usernames_postgres_allows() -> None:
    for user in ("Mixed Case", "é_utilisateur", "a" * 63, "*", "app_?", "user@example.com"):
        assert RdsDbUserArn().call(*GOOD[:3], user).endswith("/" + user)


def test_declared_signature() -> None:
    function = RdsDbUserArn()
    assert [p.name for p in function.parameters] == list(PARAMETERS)
    assert all(p.description and not p.allow_null for p in function.parameters)
    assert function.summary and function.description and function.returns.name == "string"
