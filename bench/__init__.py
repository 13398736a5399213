"""Benchmarks (not tests): `python -m bench` from the repository root, after ./build.sh.

The test harness (tests/harness: PostgreSQL servers, the terraform runner) is put on the
import path here, before any benchmark module imports it.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
