"""Running a service's background loops (outbox relay, consumer, senders) in one process."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]


def run_loops(loops: dict[str, Loop]) -> None:
    """Run each loop in its own thread until SIGTERM or SIGINT, then stop them all."""
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("stopping on signal %s", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threads = [
        threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        for name, loop in loops.items()
    ]
    for thread in threads:
        thread.start()
    log.info("worker running: %s", ", ".join(loops))
    while not stop.is_set() and all(thread.is_alive() for thread in threads):
        stop.wait(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
