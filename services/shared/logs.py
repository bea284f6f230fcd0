"""JSON logs with the correlation id and the event id of whatever is being handled."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
event_id: ContextVar[str | None] = ContextVar("event_id", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.correlation_id = correlation_id.get()
        record.event_id = event_id.get()
        return True


def configure_logging(service: str) -> None:
    """Send JSON lines to stderr for one service; LOG_LEVEL sets the level (default INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{correlation_id}{event_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
    # kafka-python is chatty at INFO about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)


@contextlib.contextmanager
def event_context(event: str | None, correlation: str | None) -> Iterator[None]:
    """Tag every log line inside the block with the event id and correlation id."""
    event_token = event_id.set(event)
    correlation_token = correlation_id.set(correlation)
    try:
        yield
    finally:
        event_id.reset(event_token)
        correlation_id.reset(correlation_token)
