"""The write-only external ID, remembered only as a salted hash in private state.

Terraform never stores `external_id`. What the provider keeps, in the resource's private
state, is a salted PBKDF2 hash of it: enough to tell at plan time whether the configured
value changed (rotation) and at refresh whether the role's trust policy still holds it
(drift), without being able to recover it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable

PBKDF2_ITERATIONS = 100_000


def _digest(value: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", value.encode(), salt, iterations)


def seal_external_id(value: str) -> bytes:
    """Private state recording a salted hash of the external ID (never the value)."""
    salt = os.urandom(16)
    record = {
        "salt": salt.hex(),
        "pbkdf2_sha256": _digest(value, salt, PBKDF2_ITERATIONS).hex(),
        "iterations": PBKDF2_ITERATIONS,
    }
    return json.dumps({"version": 1, "external_id": record}, separators=(",", ":")).encode()


def external_id_checker(private: bytes) -> Callable[[str], bool] | None:
    """A test for "is this the recorded external ID?", or None when nothing is recorded."""
    try:
        record = json.loads(private.decode())["external_id"]
        salt = bytes.fromhex(record["salt"])
        digest = bytes.fromhex(record["pbkdf2_sha256"])
        iterations = int(record["iterations"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    cache: dict[str, bool] = {}

    def check(value: str) -> bool:
        if value not in cache:
            cache[value] = hmac.compare_digest(_digest(value, salt, iterations), digest)
        return cache[value]

    return check
