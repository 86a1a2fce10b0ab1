"""How `kubedock server` logs: plain lines or one JSON object a line, and what verbosity shows."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the `extra` fields and the error."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items()
                     if key not in _STANDARD)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(verbosity: int, log_format: LogFormat) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbosity >= 3 else logging.INFO,
                        handlers=[handler], force=True)
    # One line per API request from verbosity 2 on.
    logging.getLogger("kubedock.access").setLevel(
        logging.INFO if verbosity >= 2 else logging.WARNING)
    # Every Kubernetes request is logged by httpx at INFO; that is only useful when debugging.
    logging.getLogger("httpx").setLevel(logging.INFO if verbosity >= 4 else logging.WARNING)
