"""The notifications service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.auth import parse_tokens
from services.shared.config import (
    DEFAULT_API_TOKENS,
    env,
    env_bool,
    env_float,
    env_int,
    service_basics,
)

# Not a secret: the development default that make run, the README and tests use.
DEVELOPMENT_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105
# Not a secret either: signs unsubscribe links in make run; production sets its own.
DEVELOPMENT_SIGNING_SECRET = "difts-notifications-development-only"  # noqa: S105


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
    api_tokens: str = DEFAULT_API_TOKENS
    public_url: str = "http://127.0.0.1:8003"
    signing_secret: str = DEVELOPMENT_SIGNING_SECRET
    send_rate: float = 20.0
    send_batch: int = 20
    send_lease: int = 120
    send_poll: float = 1.0
    retry_first_delay: float = 30.0
    impact_period: int = 7 * 24 * 3600
    reminder_days: float = 3.0

    # Prefixes every topic name (KAFKA_TOPIC_PREFIX), to share a Kafka cluster.
    topic_prefix: str = ""

    def tokens(self) -> dict[str, frozenset[str]]:
        """The bearer tokens of the admin API: DIFTS_API_TOKENS, plus the older
        NOTIFICATIONS_ADMIN_TOKEN (admin role) when it is set."""
        tokens = parse_tokens(self.api_tokens)
        if self.admin_token:
            tokens[self.admin_token] = tokens.get(self.admin_token, frozenset()) | {"admin"}
        return tokens

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run` (the SMTP sink
        on 127.0.0.1:2525, a SQLite file under var/)."""
        return cls(
            **service_basics("notifications"),
            smtp_host=env("SMTP_HOST", "127.0.0.1"),
            smtp_port=env_int("SMTP_PORT", 2525),
            smtp_username=env("SMTP_USERNAME", ""),
            smtp_password=env("SMTP_PASSWORD", ""),
            smtp_starttls=env_bool("SMTP_STARTTLS", False),
            smtp_timeout=env_int("SMTP_TIMEOUT", 20),
            smtp_max_attempts=env_int("SMTP_MAX_ATTEMPTS", 8),
            mail_from=env("MAIL_FROM", "difts <thanks@difts.localhost>"),
            # Receipts are dated in the cause's time zone, not the server's.
            mail_timezone=env("MAIL_TIMEZONE", "Europe/Paris"),
            donations_public_url=env("DONATIONS_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/"),
            # Kept for existing deployments; DIFTS_API_TOKENS is the way to give tokens now.
            admin_token=env("NOTIFICATIONS_ADMIN_TOKEN", ""),
            public_url=env("NOTIFICATIONS_PUBLIC_URL", "http://127.0.0.1:8003").rstrip("/"),
            signing_secret=env("NOTIFICATIONS_SIGNING_SECRET", DEVELOPMENT_SIGNING_SECRET),
            # Bulk mail (news, impact) per second per worker; 0: no limit. Receipts and refund
            # confirmations are never throttled, nor queued behind bulk mail.
            send_rate=env_float("NOTIFICATIONS_SEND_RATE", 20.0),
            send_batch=env_int("NOTIFICATIONS_SEND_BATCH", 20),
            # How long a claimed batch is hidden from other senders: after a crash, what was
            # claimed and not sent goes out again once this has passed.
            send_lease=env_int("NOTIFICATIONS_SEND_LEASE", 120),
            # The senders are woken by committed deliveries; besides, they look this often
            # (retries that fall due, a resend from another process on SQLite).
            send_poll=env_float("NOTIFICATIONS_SEND_POLL", 1.0),
            retry_first_delay=env_float("SMTP_RETRY_FIRST_DELAY", 30.0),
            # At most one impact email per donor and campaign in this many seconds (a week);
            # milestones reached meanwhile make one email when it is over. 0: one per moment.
            impact_period=env_int("NOTIFICATIONS_IMPACT_PERIOD", 7 * 24 * 3600),
            # A company dift's one reminder goes this many days before it expires, to a
            # recipient who has not directed it (never after expiry; fractions allowed).
            reminder_days=env_float("REMINDER_DAYS", 3.0),
        )
