"""JSON logging: one object per line on stderr, with structured extra fields and secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[REDACTED]"
# A key naming any of these is treated as secret wherever it appears (extra fields, nested mappings).
_SECRET_KEY = re.compile(
    r"token|secret|password|passwd|authorization|private_key|privatekey|api_key|credential", re.I
)
# Defence in depth for free text: a bearer credential (long enough to be one, so prose such as
# "missing bearer token" survives) or anything shaped like a JWT is masked.
_SECRET_TEXT = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}|eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact(value: Any, key: str | None = None) -> Any:
    """A JSON-friendly copy of `value` with secret-looking keys and bearer tokens masked."""
    if key is not None and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _SECRET_TEXT.sub(REDACTED, value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    # str() of pydantic SecretStr is already masked; other objects are logged by their text.
    return _SECRET_TEXT.sub(REDACTED, str(value))


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object: time, level, logger, message, service, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "service": self.service,
        }
        for key, value in record.__dict__.items():
            if key in _RESERVED or key.startswith("_") or key in entry:
                continue
            entry[key] = redact(value, key)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class _VigilHandler(logging.StreamHandler):
    """Marker type so configure_logging can replace its own handler when called again."""


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route all logging to JSON lines on stderr (or `stream`) at `level`; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _VigilHandler):
            root.removeHandler(handler)
    handler = _VigilHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiokafka's INFO chatter (joins, rebalances, reconnects) drowns a service's own lines.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
