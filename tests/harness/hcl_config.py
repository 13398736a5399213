"""Build a Terraform configuration of many blocks and map diagnostics back to them.

Each block is rendered on its own lines; `Config.locate(diagnostic)` finds the block (its
address) and the attribute a diagnostic's range points at, so one `terraform validate -json`
or `plan -json` can check hundreds of cases at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .hcl import expression

PROVIDER_ADDRESS = 'provider["registry.terraform.io/immuta-pg/immuta"]'


@dataclass
class Located:
    address: str  # "immuta_postgres_connection.c_1", "data.T.N", provider address, "local.f_1"
    attribute: str | None  # dotted path of the attribute on that line, if any


@dataclass
class Config:
    """Blocks of HCL; remembers which line holds which block and attribute."""

    lines: list[str] = field(default_factory=list)
    _where: dict[int, Located] = field(default_factory=dict)  # 1-based line -> location

    def raw(self, text: str, address: str | None = None) -> None:
        for line in text.rstrip("\n").split("\n"):
            self.lines.append(line)
            if address:
                self._where[len(self.lines)] = Located(address, None)

    def block(self, header: str, address: str, attributes: dict[str, Any]) -> None:
        """`attributes`: dotted paths ("aws.role_arn") to values; one level of nesting."""
        self._line(header + " {", address, None)
        nested: dict[str, dict[str, Any]] = {}
        for path, value in attributes.items():
            if "." in path:
                outer, inner = path.split(".", 1)
                nested.setdefault(outer, {})[inner] = value
            else:
                self._line(f"  {path} = {expression(value)}", address, path)
        for outer, inner_values in nested.items():
            self._line(f"  {outer} {{", address, outer)
            for name, value in inner_values.items():
                self._line(f"    {name} = {expression(value)}", address, f"{outer}.{name}")
            self._line("  }", address, outer)
        self._line("}", address, None)
        self.lines.append("")

    def local(self, name: str, value: str) -> None:
        self.raw("locals {")
        self._line(f"  {name} = {value}", f"local.{name}", None)
        self.raw("}\n")

    def _line(self, text: str, address: str, attribute: str | None) -> None:
        self.lines.append(text)
        self._where[len(self.lines)] = Located(address, attribute)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def locate(self, diagnostic: dict[str, Any]) -> Located | None:
        start = (diagnostic.get("range") or {}).get("start") or {}
        return self._where.get(start.get("line", -1))
