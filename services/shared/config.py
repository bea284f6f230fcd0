"""Reading configuration from the environment, with defaults that serve `make run`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_N = TypeVar("_N", int, float)

REPO_ROOT = Path(__file__).resolve().parents[2]


def var_dir() -> Path:
    """The local state directory (DIFTS_VAR, default var/): databases, broker, mail, logs."""
    return Path(os.environ.get("DIFTS_VAR") or REPO_ROOT / "var")


def env(name: str, default: str) -> str:
    """The variable's value, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    """An integer variable; a malformed value stops start-up with a message naming it."""
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    """A number variable; a malformed value stops start-up with a message naming it."""
    return _env_number(name, default, float, "a number")


def _env_number(name: str, default: _N, parse: Callable[[str], _N], what: str) -> _N:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise SystemExit(f"{name} must be {what}, got {raw!r}") from error


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


DEFAULT_API_TOKENS = "dev-admin-token:admin,dev-finance-token:finance"  # noqa: S105
KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
DEFAULT_KAFKA = "127.0.0.1:9092"
# Prefixes every topic name, so several installations (or test runs) share one cluster.
KAFKA_TOPIC_PREFIX = "KAFKA_TOPIC_PREFIX"


def env_topic_prefix() -> str:
    """The installation's topic prefix (empty by default)."""
    return os.environ.get(KAFKA_TOPIC_PREFIX, "")


def service_basics(service: str) -> dict[str, Any]:
    """The settings every service reads the same way: its database (<SERVICE>_DATABASE_URL,
    default a SQLite file under var/), the broker, the topic prefix, its consumer group
    (<SERVICE>_CONSUMER_GROUP, default the service's name) and the bearer tokens."""
    upper = service.upper()
    return {
        "database_url": env(f"{upper}_DATABASE_URL", sqlite_url(service)),
        "kafka_bootstrap_servers": env(KAFKA_BOOTSTRAP_SERVERS, DEFAULT_KAFKA),
        "topic_prefix": env_topic_prefix(),
        "consumer_group": env(f"{upper}_CONSUMER_GROUP", service),
        "api_tokens": env("DIFTS_API_TOKENS", DEFAULT_API_TOKENS),
    }


def stripe_basics() -> dict[str, str]:
    """Where the stripe library talks to (stripe-mock by default) and with which key."""
    return {
        # stripe-mock accepts any key of this shape; production sets a real one.
        "stripe_api_key": env("STRIPE_API_KEY", "sk_test_123"),
        "stripe_api_base": env("STRIPE_API_BASE", "http://127.0.0.1:12111"),
    }
