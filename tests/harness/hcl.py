"""Terraform configuration built from Python values: every string is quoted, nothing spliced.

    block("resource", "immuta_user_mapping", "m",
          connection_id=Raw("immuta_postgres_connection.main.id"),
          immuta_user="alice",
          postgres=Body(mode="username", username="Alice"))

renders the resource with its nested `postgres { ... }` block. Strings become HCL literals
(escapes, `${` and `%{` included); `Raw` marks what is an expression (references, function
calls); `Body` marks a nested block; None is null; lists and dicts are tuples and objects.
"""

from __future__ import annotations

from typing import Any


class Raw(str):
    """An HCL expression written as is (references, function calls, variables)."""


class Body(dict[str, Any]):
    """The attributes of a nested block, under the name it is given in its parent."""

    def __init__(self, **attributes: Any) -> None:
        super().__init__(attributes)


def literal(value: str) -> str:
    """A quoted HCL string holding exactly `value`; anything not printable (control and
    format characters, zero-width and bidi marks, NUL) is written as a \\u escape so the
    file itself stays plain text."""
    out = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif not char.isprintable():
            code = ord(char)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return '"' + "".join(out).replace("${", "$${").replace("%{", "%%{") + '"'


def expression(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, str):
        return literal(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(expression(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{literal(k)} = {expression(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no HCL form for {value!r}")


def body_lines(attributes: dict[str, Any], indent: str = "  ") -> list[str]:
    """Attribute lines, then nested blocks (a `Body`, or a list of them for repeated blocks)."""
    lines, nested = [], []
    for name, value in attributes.items():
        if isinstance(value, Body) or (
            isinstance(value, list) and value and all(isinstance(v, Body) for v in value)
        ):
            nested += [(name, v) for v in (value if isinstance(value, list) else [value])]
        else:
            lines.append(f"{indent}{name} = {expression(value)}")
    for name, inner in nested:
        lines += [f"{indent}{name} {{", *body_lines(inner, indent + "  "), f"{indent}}}"]
    return lines


def labelled(kind: str, *labels: str) -> str:
    """The name of a nested block with labels, as a key of its parent's attributes:
    `{labelled("provisioner", "local-exec"): Body(command=...)}`."""
    return " ".join([kind, *(literal(label) for label in labels)])


def block(kind: str, *labels: str, **attributes: Any) -> str:
    """One top-level block (`resource`, `data`, `provider`, `output`, ...) as text."""
    return "\n".join([labelled(kind, *labels) + " {", *body_lines(attributes), "}"]) + "\n"


def resource(type_name: str, name: str, **attributes: Any) -> str:
    return block("resource", type_name, name, **attributes)


def data(type_name: str, name: str, **attributes: Any) -> str:
    return block("data", type_name, name, **attributes)


def output(name: str, value: Any) -> str:
    return block("output", name, value=value)


def provider_block(server: Any, alias: str | None = None, **attributes: Any) -> str:
    """A provider "immuta" block with `server`'s superuser password credentials."""
    settings: dict[str, Any] = {} if alias is None else {"alias": alias}
    settings.update(username=server.user, password=server.password)
    settings.update(attributes)
    return block("provider", "immuta", **settings)


def connection_block(
    host: str,
    port: int,
    database: str,
    display_name: str = "Warehouse",
    *,
    label: str = "main",
    **attributes: Any,
) -> str:
    """A `resource "immuta_postgres_connection" "<label>"` block, self_managed by default;
    `attributes` override the defaults or add to them (nested blocks as `Body`)."""
    values: dict[str, Any] = {
        "display_name": display_name,
        "deployment_type": "self_managed",
        "hostname": host,
        "port": port,
        "database": database,
    }
    values.update(attributes)
    return resource("immuta_postgres_connection", label, **values)
