"""What the Terraform client can carry, and the refusal of what it cannot.

Terraform 1.9 and later tell the provider what they support (`ClientCapabilities`, in some
requests); older releases tell nothing. The one capability that decides anything here is
support for write-only attributes (Terraform 1.11 and later). A client without it treats a
write-only attribute as an ordinary one: it would keep the configured value in the plan and
the state, and it rejects a plan that leaves the value out ("Provider produced invalid
plan"). So a write-only attribute set in the configuration (an unknown value counts as set)
is refused when the client did not say it supports them, before anything is planned or
created; the value itself never appears in the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .diagnostics import Diagnostics, Path
from .schema import Attribute, Schema

WRITE_ONLY_RELEASE = "1.11"


@dataclass(frozen=True)
class ClientCapabilities:
    """What one request's client said it supports; a request without them says nothing."""

    deferral_allowed: bool = False
    write_only_attributes_allowed: bool = False


UNDECLARED = ClientCapabilities()


def write_only_set(schema: Schema, config: Any) -> list[tuple[Path, Attribute]]:
    """The write-only attributes the configuration sets (to a known or an unknown value)."""
    return [
        (path, attr)
        for path, attr, value, _ in schema.block.walk(config)
        if attr.write_only and value is not None
    ]


def refuse_write_only(
    type_name: str, schema: Schema, config: Any, client: ClientCapabilities, diags: Diagnostics
) -> bool:
    """An error on each write-only attribute `config` sets that `client` cannot carry.

    True when something was refused.
    """
    if client.write_only_attributes_allowed:
        return False
    refused = write_only_set(schema, config)
    for path, attr in refused:
        name = _dotted(path)
        what_to_do = (
            f"{name} is required, so {type_name} cannot be used before Terraform "
            f"{WRITE_ONLY_RELEASE}: upgrade Terraform."
            if attr.required
            else f"Upgrade Terraform, or remove {name} from the configuration."
        )
        diags.error(
            f"{name} needs Terraform {WRITE_ONLY_RELEASE} or later",
            f"{name} of {type_name} is a write-only argument: Terraform keeps its value out "
            f"of the plan and the state only from version {WRITE_ONLY_RELEASE} on. This "
            "Terraform does not support write-only arguments and would keep the value in the "
            "plan and the state, so the provider refuses it before anything is planned or "
            f"created. {what_to_do}",
            path,
        )
    return bool(refused)


def warn_unplannable_import(
    type_name: str, schema: Schema, client: ClientCapabilities, diags: Diagnostics
) -> None:
    """After an import: a warning when this client could not plan the resource at all."""
    if client.write_only_attributes_allowed:
        return
    required = [
        name for name, attr in schema.block.attributes.items() if attr.write_only and attr.required
    ]
    if not required:
        return
    names = ", ".join(required)
    diags.warning(
        f"{type_name} imported, but this Terraform cannot plan it",
        f"{names} of {type_name} is a required write-only argument, which needs Terraform "
        f"{WRITE_ONLY_RELEASE} or later. The import itself is complete and nothing was "
        f"changed; every plan of this resource with this Terraform refuses {names}. Plan "
        f"and apply it with Terraform {WRITE_ONLY_RELEASE} or later.",
    )


def _dotted(path: Path) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else ("." if text else "") + str(step)
    return text
