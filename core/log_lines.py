"""One log record, one line: values quoted from producers cannot forge a line of their own.

Event ids, subjects and paths reach log messages through `%s` in many places (delivery, consumers); a
`ce-id` of `x%0A2026-12-01 ERROR ...` is a newline once percent-decoded. The formatter every service's
handler uses (core/runtime.py) escapes control characters, line and paragraph separators and lone
surrogates in the message. A traceback, when there is one, is the only multi-line part of a record.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Final

from core import tracing

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` with every control character as its Python escape (`\\n`, `\\x1b`, `\\udc80`)."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


class OneLineFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """`--log-format json`: one JSON object per line, `time`, `level`, `logger`, `message` (and `exception`),
    with `trace_id` and `span_id` of the span the record was logged in (an ingress request, a delivery) when
    tracing is on. JSON escapes every control character, so a record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if tracing.ENABLED:
            ids = tracing.current_ids()
            if ids is not None:
                entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: a lone surrogate from a producer's header is escaped, never an encoding error.
        return json.dumps(entry, ensure_ascii=True)


def configure(level: int = logging.INFO, *, format: str = "text") -> None:
    """What `logging.basicConfig` does for a service, with the one-line (text) or JSON formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
