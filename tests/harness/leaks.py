"""Scan Terraform artifacts for secrets: every text a run leaves behind, every way a secret
could be written into it (as is, JSON-escaped as Go escapes it, URL-encoded, base64)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote


def forms(secret: str) -> set[str]:
    """The ways `secret` could appear in a text."""
    escaped = json.dumps(secret)[1:-1]
    go_escaped = escaped.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return {
        secret,
        escaped,
        go_escaped,
        json.dumps(secret, ensure_ascii=True)[1:-1],
        quote(secret, safe=""),
        quote(secret, safe="-_.~"),
        base64.b64encode(secret.encode()).decode(),
    }


def decoded_private_state(state_text: str) -> str:
    """The `private` blobs of every resource instance in a state file, decoded."""
    if not state_text:
        return ""
    blobs = []
    for resource in json.loads(state_text).get("resources", []):
        for instance in resource.get("instances", []):
            private = instance.get("private")
            if private:
                blobs.append(base64.b64decode(private).decode(errors="replace"))
    return "\n".join(blobs)


def without_input_copies(plan_json: str) -> str:
    """A saved plan's JSON without Terraform's own copies of the user's input: the
    `configuration` (constant expressions, e.g. a literal in a provider block) and the
    input `variables` (a saved plan keeps non-ephemeral variables, sensitive or not)."""
    document = json.loads(plan_json)
    document.pop("configuration", None)
    document.pop("variables", None)
    return json.dumps(document)


@dataclass
class Leak:
    secret: str
    artifact: str
    form: str


@dataclass
class LeakScanner:
    """Collects artifacts (name -> text) and secrets (name -> value), then scans all pairs."""

    secrets: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)

    def secret(self, name: str, value: str | None) -> None:
        assert value and len(value) >= 8, f"{name}: use a long, distinctive secret"
        self.secrets[name] = value

    def add(self, name: str, text: str) -> None:
        base, n = name, 2
        while name in self.artifacts:
            name, n = f"{base} #{n}", n + 1
        self.artifacts[name] = text

    def add_file(self, name: str, path: Path) -> None:
        if path.exists():
            self.add(name, path.read_text(errors="replace"))

    def add_result(self, name: str, result: Any) -> None:
        self.add(f"{name} (stdout+stderr)", result.stdout + result.stderr)

    def scan(self) -> list[Leak]:
        found = []
        for secret_name, secret in self.secrets.items():
            variants = forms(secret)
            for artifact, text in self.artifacts.items():
                for variant in variants:
                    if variant in text:
                        found.append(Leak(secret_name, artifact, variant[:40]))
                        break
        return found

    @property
    def bytes_scanned(self) -> int:
        return sum(len(t.encode()) for t in self.artifacts.values())

    def summary(self) -> str:
        return (
            f"{len(self.artifacts)} artifacts, {self.bytes_scanned} bytes, "
            f"{len(self.secrets)} secrets, {len(self.artifacts) * len(self.secrets)} pairs"
        )
