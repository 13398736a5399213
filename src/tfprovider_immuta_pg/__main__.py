"""Entry point Terraform starts: serve the Immuta provider over go-plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .immuta.provider import ImmutaProvider


def _make_provider() -> ImmutaProvider:
    # Imported in the background, after the handshake line (see protocol.plugin).
    from .immuta.provider import ImmutaProvider

    return ImmutaProvider()


def main() -> None:
    from .protocol.plugin import serve

    serve(_make_provider)


if __name__ == "__main__":
    main()
