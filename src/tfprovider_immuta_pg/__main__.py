"""Entry point Terraform starts: serve the Immuta provider over go-plugin."""

from __future__ import annotations


def main() -> None:
    from .protocol.plugin import check_cookie

    check_cookie()
    from .immuta.provider import ImmutaProvider
    from .protocol.plugin import serve

    serve(ImmutaProvider)


if __name__ == "__main__":
    main()
