"""Logs in the JSON line format Terraform reads from a plugin's stderr.

Level from TF_LOG_PROVIDER, else TF_LOG (Terraform's own variables); off by
default. Every line passes through secret redaction.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from ..framework.secrets import redact

LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}
_OFF = 99
_write_lock = threading.Lock()


def _threshold() -> int:
    setting = (os.environ.get("TF_LOG_PROVIDER") or os.environ.get("TF_LOG") or "").lower()
    if setting == "json":
        return LEVELS["trace"]
    return LEVELS.get(setting, _OFF)


_level = _threshold()


def enabled(level: str) -> bool:
    return LEVELS[level] >= _level


def log(level: str, message: str, **fields: Any) -> None:
    if not enabled(level):
        return
    entry = {
        "@level": level,
        "@message": message,
        "@module": "provider.immuta",
        "@timestamp": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    entry.update(fields)
    line = redact(json.dumps(entry, default=str, ensure_ascii=False))
    with _write_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
