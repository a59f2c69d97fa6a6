"""One log record, one line: values quoted from producers cannot forge a line of their own.

Event ids, subjects and paths reach log messages through `%s` in many places (delivery, consumers); a
`ce-id` of `x%0A2026-12-01 ERROR ...` is a newline once percent-decoded. The formatter every service's
handler uses (core/runtime.py) escapes control characters, line and paragraph separators and lone
surrogates in the message. A traceback, when there is one, is the only multi-line part of a record.
"""

from __future__ import annotations

import logging
import re
from typing import Final

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


def configure(level: int = logging.INFO) -> None:
    """What `logging.basicConfig` does for a service, with the one-line formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
