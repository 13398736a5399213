"""Terraform releases a resource cannot work with, refused before they misbehave.

`ConfigureProvider` tells the provider which Terraform runs it (`terraform_version`); every
later request of that process comes from the same release. A resource whose schema an
older release mishandles (Terraform 1.0.0 to 1.0.8 crash on a map of nested objects)
declares `minimum_terraform`, and its plan, read, state upgrade and import are refused
with an error that names both releases: Terraform stops at an error diagnostic before it
looks at the values it would crash on.
"""

from __future__ import annotations

import re

from .diagnostics import Diagnostics

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def release(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a Terraform version ("1.0.3", "1.11.0-beta1"); None when
    unknown."""
    found = _RELEASE.match(version.strip())
    if found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def refuse_older(type_name: str, minimum: str | None, running: str, diags: Diagnostics) -> bool:
    """An error when `running` (the client's version, "" when it did not say) is older than
    `minimum`; True when refused."""
    if minimum is None:
        return False
    have, need = release(running), release(minimum)
    if have is None or need is None or have >= need:
        return False
    diags.error(
        f"{type_name} needs Terraform {minimum} or later (this is {running})",
        f"Terraform {running} cannot handle {type_name}: releases before {minimum} crash on a "
        "map of nested objects, which this resource holds. Nothing was planned, read or "
        f"changed. Run this configuration with Terraform {minimum} or later.",
    )
    return True
