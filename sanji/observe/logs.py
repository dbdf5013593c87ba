"""Structured logs: one JSON object per line, naming the node and, where known, the errand and exchange.

The errand and exchange come from context variables set where the work starts (a desk action in
``sanji.service``, a sync session in ``sanji.sync.driver``), so every line logged while doing that
work carries them without each call site passing them along; ``extra={"errand": ...}`` also works.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

ERRAND: ContextVar[str] = ContextVar("sanji_errand", default="")
EXCHANGE: ContextVar[str] = ContextVar("sanji_exchange", default="")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": self.node,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        errand = getattr(record, "errand", "") or ERRAND.get()
        exchange = getattr(record, "exchange", "") or EXCHANGE.get()
        if errand:
            event["errand"] = errand
        if exchange:
            event["exchange"] = exchange
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in event and key not in ("errand", "exchange"):
                event[key] = value if isinstance(value, str | int | float | bool) or value is None else repr(value)
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def use_json_logs(node: str) -> None:
    """Every handler on the root logger (and uvicorn's) writes JSON lines from now on."""
    formatter = JsonFormatter(node)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
