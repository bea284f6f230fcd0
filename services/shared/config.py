"""Reading configuration from the environment, with defaults that serve `make run`."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """The local state directory (DIFTS_VAR, default var/): databases, broker, mail, logs."""
    return Path(os.environ.get("DIFTS_VAR") or REPO_ROOT / "var")


def env(name: str, default: str) -> str:
    """The variable's value, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    """An integer variable; a malformed value stops start-up with a message naming it."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from error


def env_float(name: str, default: float) -> float:
    """A number variable; a malformed value stops start-up with a message naming it."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from error


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_bool(name: str, default: bool) -> bool:
    """A yes/no variable (1/0, true/false, yes/no, on/off); anything else stops start-up."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise SystemExit(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def sqlite_url(name: str) -> str:
    """The embedded default database of one service: a SQLite file under var/."""
    return f"sqlite:///{var_dir() / (name + '.db')}"


KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_KAFKA = "127.0.0.1:9092"
# Prefixes every topic name, so several installations (or test runs) share one cluster.
KAFKA_TOPIC_PREFIX = "KAFKA_TOPIC_PREFIX"


def env_topic_prefix() -> str:
    """The installation's topic prefix (empty by default)."""
    return os.environ.get(KAFKA_TOPIC_PREFIX, "")
