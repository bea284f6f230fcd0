"""The notifications service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.config import DEFAULT_KAFKA, KAFKA_BOOTSTRAP_SERVERS, env, env_int, sqlite_url

# Not a secret: the development default that make run, the README and tests use.
DEVELOPMENT_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the notifications service can be told from outside."""

    database_url: str
    kafka_bootstrap_servers: str
    consumer_group: str
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password: str
    smtp_starttls: bool
    smtp_timeout: int
    smtp_max_attempts: int
    mail_from: str
    mail_timezone: str
    donations_public_url: str
    admin_token: str

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run` (the SMTP sink
        on 127.0.0.1:2525, a SQLite file under var/)."""
        return cls(
            database_url=env("NOTIFICATIONS_DATABASE_URL", sqlite_url("notifications")),
            kafka_bootstrap_servers=env(KAFKA_BOOTSTRAP_SERVERS, DEFAULT_KAFKA),
            consumer_group=env("NOTIFICATIONS_CONSUMER_GROUP", "notifications"),
            smtp_host=env("SMTP_HOST", "127.0.0.1"),
            smtp_port=env_int("SMTP_PORT", 2525),
            smtp_username=env("SMTP_USERNAME", ""),
            smtp_password=env("SMTP_PASSWORD", ""),
            smtp_starttls=env("SMTP_STARTTLS", "off").strip().lower() in _TRUE,
            smtp_timeout=env_int("SMTP_TIMEOUT", 20),
            smtp_max_attempts=env_int("SMTP_MAX_ATTEMPTS", 8),
            mail_from=env("MAIL_FROM", "difts <thanks@difts.localhost>"),
            # Receipts are dated in the cause's time zone, not the server's.
            mail_timezone=env("MAIL_TIMEZONE", "Europe/Paris"),
            donations_public_url=env("DONATIONS_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/"),
            admin_token=env("NOTIFICATIONS_ADMIN_TOKEN", DEVELOPMENT_ADMIN_TOKEN),
        )
