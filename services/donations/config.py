"""The donations service's configuration, read from the environment in this one place."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.config import (
    DEFAULT_API_TOKENS,
    env,
    env_bool,
    env_int,
    service_basics,
    stripe_basics,
)

# Not a secret: the development default that make run, the README and tests sign with.
DEVELOPMENT_WEBHOOK_SECRET = "whsec_difts_development_only"  # noqa: S105
# Not a secret either: signs the donor pages' CSRF tokens in development; production sets one.
DEVELOPMENT_SECRET_KEY = "difts-donations-development-only"  # noqa: S105
# The development tokens of services/shared/config.DEFAULT_API_TOKENS (finance, admin): what
# the back office shows the ledger and the notifications service with under make run.
DEVELOPMENT_LEDGER_TOKEN = "dev-finance-token"  # noqa: S105
DEVELOPMENT_NOTIFICATIONS_TOKEN = "dev-admin-token"  # noqa: S105


def _is_stripe_mock(api_base: str, api_key: str) -> bool:
    """True when the stripe library talks to a mock with a test key, never to real Stripe."""
    return bool(api_base) and "api.stripe.com" not in api_base and api_key.startswith("sk_test_")


def _preset_meals(raw: str) -> tuple[int, ...]:
    try:
        presets = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError as error:
        raise SystemExit(
            f"DONATION_PRESET_MEALS must be integers like 1,2,5,10: {raw!r}"
        ) from error
    if not presets or min(presets) < 1:
        raise SystemExit("DONATION_PRESET_MEALS needs at least one positive number of meals")
    return presets


# The mécénat receipts' issuing organisation: Settings field -> environment variable.
RECEIPT_VARIABLES = {
    "receipt_organisation_name": "RECEIPT_ORGANISATION_NAME",
    "receipt_organisation_address": "RECEIPT_ORGANISATION_ADDRESS",
    "receipt_organisation_object": "RECEIPT_ORGANISATION_OBJECT",
    "receipt_organisation_status": "RECEIPT_ORGANISATION_STATUS",
    "receipt_organisation_siren": "RECEIPT_ORGANISATION_SIREN",
    "receipt_signatory_name": "RECEIPT_SIGNATORY_NAME",
    "receipt_signatory_role": "RECEIPT_SIGNATORY_ROLE",
    "receipt_signature_place": "RECEIPT_SIGNATURE_PLACE",
}


def _receipt_organisation() -> dict[str, str]:
    """The issuing organisation's facts given in the environment (the defaults serve make
    run and name a demonstration organisation)."""
    return {
        name: env(variable, getattr(Settings, name)) for name, variable in RECEIPT_VARIABLES.items()
    }


@dataclass(frozen=True)
class Settings:
    """Everything the donations service can be told from outside."""

    database_url: str
    kafka_bootstrap_servers: str
    stripe_api_key: str
    stripe_api_base: str
    stripe_webhook_secret: str
    webhook_tolerance_seconds: int
    public_url: str
    min_amount: int
    max_amount: int
    # Estimated processing fee a donor may choose to cover: basis points plus a fixed part.
    fee_percent_bp: int = 150
    fee_fixed: int = 25
    preset_meals: tuple[int, ...] = (1, 2, 5, 10)
    message_max_length: int = 280
    # The development-only page that plays Stripe's hosted checkout; never with real Stripe.
    test_checkout: bool = False
    secret_key: str = DEVELOPMENT_SECRET_KEY
    api_tokens: str = DEFAULT_API_TOKENS
    consumer_group: str = "donations"

    # Prefixes every topic name (KAFKA_TOPIC_PREFIX), to share a Kafka cluster.
    topic_prefix: str = ""

    # Company difts: the worker's round (open, issue uploads, expire and close), its chunks,
    # the recipient file's limits and the printed-code rate limit.
    programmes_tick_seconds: float = 5.0
    upload_chunk: int = 500
    expiry_chunk: int = 500
    recipients_max_rows: int = 50_000
    recipients_max_bytes: int = 8 * 1024 * 1024
    wrong_codes_allowed: int = 10
    wrong_codes_window_seconds: int = 600
    # The organisation that issues the companies' mécénat receipts (CERFA 16216).
    receipt_organisation_name: str = "difts (organisation de démonstration)"
    receipt_organisation_address: str = "1 rue de la Démonstration, 69001 Lyon"
    receipt_organisation_object: str = (
        "Soutenir des associations d'intérêt général, dont Les Petites Cantines"
    )
    receipt_organisation_status: str = "Œuvre ou organisme d'intérêt général"
    receipt_organisation_siren: str = ""
    receipt_signatory_name: str = "Camille Démo"
    receipt_signatory_role: str = "Présidente"
    receipt_signature_place: str = "Lyon"
    # The back office's figures come from the other services' APIs (service_clients.py), with
    # a bearer token of the finance role (ledger) and of the admin role (notifications).
    ledger_url: str = "http://127.0.0.1:8002"
    ledger_token: str = DEVELOPMENT_LEDGER_TOKEN
    notifications_url: str = "http://127.0.0.1:8003"
    notifications_token: str = DEVELOPMENT_NOTIFICATIONS_TOKEN

    def __post_init__(self) -> None:
        if self.test_checkout and not _is_stripe_mock(self.stripe_api_base, self.stripe_api_key):
            raise SystemExit(
                "DONATIONS_TEST_CHECKOUT is for stripe-mock only: it cannot be on with real "
                "Stripe (a live key, or no STRIPE_API_BASE)"
            )

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, with defaults that serve `make run`."""
        stripe = stripe_basics()
        return cls(
            **service_basics("donations"),
            **stripe,
            stripe_webhook_secret=env("STRIPE_WEBHOOK_SECRET", DEVELOPMENT_WEBHOOK_SECRET),
            webhook_tolerance_seconds=env_int("STRIPE_WEBHOOK_TOLERANCE", 300),
            public_url=env("DONATIONS_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/"),
            min_amount=env_int("DONATION_MIN_AMOUNT", 100),
            max_amount=env_int("DONATION_MAX_AMOUNT", 1_000_000),
            fee_percent_bp=env_int("DONATION_FEE_PERCENT_BP", 150),
            fee_fixed=env_int("DONATION_FEE_FIXED", 25),
            preset_meals=_preset_meals(env("DONATION_PRESET_MEALS", "1,2,5,10")),
            message_max_length=env_int("DONATION_MESSAGE_MAX_LENGTH", 280),
            # On by default only when the stripe library points at stripe-mock (make run).
            test_checkout=env_bool(
                "DONATIONS_TEST_CHECKOUT",
                _is_stripe_mock(stripe["stripe_api_base"], stripe["stripe_api_key"]),
            ),
            secret_key=env("DONATIONS_SECRET_KEY", DEVELOPMENT_SECRET_KEY),
            programmes_tick_seconds=float(env("DIFTS_PROGRAMMES_TICK_SECONDS", "5")),
            upload_chunk=env_int("DIFTS_UPLOAD_CHUNK", 500),
            expiry_chunk=env_int("DIFTS_EXPIRY_CHUNK", 500),
            recipients_max_rows=env_int("DIFTS_RECIPIENTS_MAX_ROWS", 50_000),
            recipients_max_bytes=env_int("DIFTS_RECIPIENTS_MAX_BYTES", 8 * 1024 * 1024),
            wrong_codes_allowed=env_int("DIFTS_WRONG_CODES_ALLOWED", 10),
            wrong_codes_window_seconds=env_int("DIFTS_WRONG_CODES_WINDOW_SECONDS", 600),
            **_receipt_organisation(),
            ledger_url=env("DIFTS_LEDGER_URL", "http://127.0.0.1:8002").rstrip("/"),
            ledger_token=env("DIFTS_LEDGER_TOKEN", DEVELOPMENT_LEDGER_TOKEN),
            notifications_url=env("DIFTS_NOTIFICATIONS_URL", "http://127.0.0.1:8003").rstrip("/"),
            notifications_token=env("DIFTS_NOTIFICATIONS_TOKEN", DEVELOPMENT_NOTIFICATIONS_TOKEN),
        )
