"""`./build.sh bench`: every benchmark, with ratios against a baseline from the same run."""

from __future__ import annotations

import sys

from bench import handshake


def main(argv: list[str]) -> int:
    return handshake.main(argv) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
