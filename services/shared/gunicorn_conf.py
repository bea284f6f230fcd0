"""gunicorn's settings module for the services (`gunicorn -c python:services.shared.gunicorn_conf`):
only the metrics' bookkeeping lives here; every other setting comes from the command line."""

from __future__ import annotations

from typing import Any

from services.shared.metrics import process_exited


def child_exit(_server: Any, worker: Any) -> None:
    """A worker process is gone: its live gauges leave the service's metrics."""
    process_exited(worker.pid)
