"""`python -m services.shared topics`: create the project's Kafka topics (idempotent)."""

from __future__ import annotations

import sys

from .config import DEFAULT_KAFKA, KAFKA_BOOTSTRAP_SERVERS, env, env_topic_prefix
from .kafka import ensure_topics


def main() -> None:
    """Create the event topics and dead-letter topics on the configured broker."""
    if sys.argv[1:] != ["topics"]:
        raise SystemExit("usage: python -m services.shared topics")
    bootstrap = env(KAFKA_BOOTSTRAP_SERVERS, DEFAULT_KAFKA)
    created = ensure_topics(bootstrap, prefix=env_topic_prefix())
    print(
        f"kafka topics ready on {bootstrap}"
        + (f" (created {', '.join(created)})" if created else "")
    )


if __name__ == "__main__":
    main()
