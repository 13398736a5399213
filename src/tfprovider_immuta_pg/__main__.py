"""Entry point Terraform starts: serve the Immuta provider over go-plugin."""

from __future__ import annotations

import os
import sys
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


def launch(launcher_version: str) -> None:
    """Entry of the launcher `terraform-provider-immuta install` writes (see .install): serve,
    once sure this environment holds the version that launcher stands for."""
    from . import __version__

    if __version__ != launcher_version:
        refuse(
            f"terraform-provider-immuta {launcher_version}: the Python environment registered "
            f"for it ({sys.executable}) has version {__version__}; run: pip install "
            f"tfprovider-immuta-pg=={launcher_version} && terraform-provider-immuta install in "
            f"an environment of its own (or, to move to {__version__}: terraform-provider-immuta "
            "install, then terraform init -upgrade)"
        )
    if sys.argv[1:] == ["--version"]:
        print(f"terraform-provider-immuta {__version__} ({sys.executable})")
        return
    main()


def refuse(message: str) -> None:
    """Exit 1 with one line where it is read: Terraform shows a plugin's first stdout line, a
    person reads stderr."""
    from .protocol.plugin import MAGIC_COOKIE_KEY

    stream = sys.stdout if os.environ.get(MAGIC_COOKIE_KEY) else sys.stderr
    stream.write(message + "\n")
    sys.exit(1)


if __name__ == "__main__":
    main()
