"""A test-only provider, `test/nestedtest`, served by the project's plugin machinery.

Its one resource, `nestedtest_directory`, exercises nested attributes with real Terraform:
a MAP of member objects holding SINGLE nested objects with defaults, validators and
case-insensitive values, computed values per member (one kept by UseStateForUnknown), a
LIST of objects with a default and a computed value, and a SET of objects. It keeps what it
manages in a JSON file (`store`), so refresh, drift and import work as for a real resource.
The production provider is not involved: `install` writes a filesystem mirror holding this
provider and a CLI configuration that installs it from there.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tfprovider_immuta_pg.framework.diagnostics import Diagnostics, ProviderError
from tfprovider_immuta_pg.framework.diagnostics import Path as AttrPath
from tfprovider_immuta_pg.framework.provider import Context, Provider, Resource
from tfprovider_immuta_pg.framework.schema import (
    LIST,
    MAP,
    SET,
    Attribute,
    Block,
    IntBetween,
    NestedAttribute,
    OneOf,
    RequiresReplace,
    Schema,
    UseStateForUnknown,
)
from tfprovider_immuta_pg.framework.types import NUMBER, STRING
from tfprovider_immuta_pg.framework.values import UNKNOWN

SOURCE = "test/nestedtest"
VERSION = "0.1.0"
TYPE = "nestedtest_directory"
REQUIRED_PROVIDERS = f"""terraform {{
  required_providers {{
    nestedtest = {{ source = "{SOURCE}" }}
  }}
}}
"""


def _same_in_any_case(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.casefold() == b.casefold()


class UsernameRule:
    """`mode = "username"` needs a username; other modes take none (reported on username)."""

    description = "a username exactly when mode is username"

    def __call__(self, value: Any, path: AttrPath, diags: Diagnostics) -> None:
        mode, username = value.get("mode") or "unset", value.get("username")
        if mode is UNKNOWN or username is UNKNOWN:
            return
        if mode == "username" and username is None:
            diags.error(
                "Missing username", 'mode "username" needs a username.', path + ("username",)
            )
        elif mode != "username" and username is not None:
            diags.error(
                "Unexpected username",
                f'username is only used with mode "username"; mode is "{mode}".',
                path + ("username",),
            )


MEMBER = {
    "postgres": NestedAttribute(
        "How the member is known to PostgreSQL.",
        optional=True,
        attributes={
            "mode": Attribute(
                STRING,
                "username, unset or none.",
                default="unset",
                validators=[OneOf(("username", "unset", "none"))],
            ),
            "username": Attribute(
                STRING,
                "Case-insensitive.",
                optional=True,
                semantically_equal=_same_in_any_case,
            ),
        },
        validators=[UsernameRule()],
    ),
    "aws": NestedAttribute(
        "How the member is known to AWS.",
        optional=True,
        attributes={
            "user_type": Attribute(
                STRING,
                "iam_role or iam_user.",
                required=True,
                validators=[OneOf(("iam_role", "iam_user"))],
            ),
            "principal": Attribute(STRING, "Name.", optional=True),
        },
    ),
    "effective_username": Attribute(STRING, "The username in effect.", computed=True),
    "revision": Attribute(NUMBER, "Writes of this member.", computed=True),
    "created": Attribute(
        STRING,
        "The write that created the member.",
        computed=True,
        plan_modifiers=[UseStateForUnknown()],
    ),
}

SCHEMA = Schema(
    Block(
        description="A directory of members kept in a JSON file.",
        attributes={
            "store": Attribute(
                STRING, "The JSON file.", required=True, plan_modifiers=[RequiresReplace()]
            ),
            "id": Attribute(
                STRING, "The store path.", computed=True, plan_modifiers=[UseStateForUnknown()]
            ),
            "members": NestedAttribute(
                "Members by name.", optional=True, nesting=MAP, attributes=MEMBER
            ),
            "ports": NestedAttribute(
                "Ports.",
                optional=True,
                nesting=LIST,
                attributes={
                    "number": Attribute(
                        NUMBER, "Port.", required=True, validators=[IntBetween(1, 65535)]
                    ),
                    "protocol": Attribute(STRING, "Protocol.", default="tcp"),
                    "label": Attribute(STRING, "number/protocol.", computed=True),
                },
            ),
            "policy": NestedAttribute(
                "Retention; the default object when not set.",
                default={"days": 30, "action": None},
                attributes={
                    "days": Attribute(NUMBER, "Days.", default=30, validators=[IntBetween(1, 90)]),
                    "action": Attribute(
                        STRING,
                        "archive or delete.",
                        optional=True,
                        validators=[OneOf(("archive", "delete"))],
                    ),
                },
            ),
            "tags": NestedAttribute(
                "Tags.",
                optional=True,
                nesting=SET,
                attributes={
                    "name": Attribute(STRING, "Name.", required=True),
                    "value": Attribute(STRING, "Value.", optional=True),
                },
            ),
        },
    )
)


def effective_username(name: str, member: dict[str, Any]) -> str | None:
    postgres = member.get("postgres") or {"mode": "unset"}
    if postgres["mode"] == "username":
        return str(postgres["username"])
    return name.split("@")[0] if postgres["mode"] == "unset" else None


class Directory(Resource):
    type_name = TYPE
    schema = SCHEMA

    def create(self, planned: dict, ctx: Context) -> dict:
        return self._write(planned, {"writes": 0, "members": None})

    def update(self, prior: dict, planned: dict, ctx: Context) -> dict:
        return self._write(planned, _load(planned["store"]) or {"writes": 0, "members": None})

    def read(self, state: dict, ctx: Context) -> dict | None:
        stored = _load(state["store"])
        return None if stored is None else _state(state["store"], stored)

    def delete(self, state: dict, ctx: Context) -> None:
        Path(state["store"]).unlink(missing_ok=True)

    def import_state(self, import_id: str, ctx: Context) -> dict:
        stored = _load(import_id)
        if stored is None:
            raise ProviderError(f"No directory at {import_id}", "Apply one there first.")
        return _state(import_id, stored)

    def _write(self, planned: dict, stored: dict) -> dict:
        """Write only the members whose configuration changed; keep the others as stored."""
        members: dict[str, Any] = {}
        for name, member in (planned["members"] or {}).items():
            record = (stored["members"] or {}).get(name) or {}
            wanted = {"postgres": member["postgres"], "aws": member["aws"]}
            if {k: record.get(k) for k in wanted} != wanted or not record:
                stored["writes"] += 1
                record = {
                    **wanted,
                    "revision": record.get("revision", 0) + 1,
                    "created": record.get("created") or f"write-{stored['writes']}",
                }
            members[name] = record
        ports = planned["ports"]
        if ports is not None:
            ports = [{"number": p["number"], "protocol": p["protocol"]} for p in ports]
        stored.update(
            members=None if planned["members"] is None else members,
            ports=ports,
            tags=planned["tags"],
            policy=planned["policy"],
        )
        Path(planned["store"]).write_text(json.dumps(stored))
        return _state(planned["store"], stored)


def _load(store: str) -> dict | None:
    try:
        stored: dict = json.loads(Path(store).read_text())
        return stored
    except FileNotFoundError:
        return None


def _state(store: str, stored: dict) -> dict:
    members, ports = stored["members"], stored["ports"]
    return {
        "store": store,
        "id": store,
        "members": None
        if members is None
        else {
            name: {
                "postgres": record["postgres"],
                "aws": record["aws"],
                "effective_username": effective_username(name, record),
                "revision": record["revision"],
                "created": record["created"],
            }
            for name, record in members.items()
        },
        "ports": None
        if ports is None
        else [{**p, "label": f"{p['number']}/{p['protocol']}"} for p in ports],
        "tags": stored["tags"],
        "policy": stored["policy"],
    }


class NestedTestProvider(Provider):
    schema = Schema(Block())

    def __init__(self) -> None:
        self.resources = {TYPE: Directory()}
        self.data_sources = {}
        self.functions = {}


def main() -> None:
    from tfprovider_immuta_pg.protocol.plugin import serve

    serve(NestedTestProvider)


def install(folder: Path) -> Path:
    """A filesystem mirror holding this provider, and a CLI configuration using it (returned)."""
    mirror = folder / "mirror"
    namespace, name = SOURCE.split("/")
    target = mirror / "registry.terraform.io" / namespace / name / VERSION / "linux_amd64"
    target.mkdir(parents=True, exist_ok=True)
    executable = target / f"terraform-provider-{name}_v{VERSION}"
    executable.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from nested_provider import main\n"
        "main()\n"
    )
    os.chmod(executable, 0o755)
    config = folder / "terraformrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{SOURCE}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{SOURCE}"]\n  }}\n'
        "}\n"
    )
    return config
