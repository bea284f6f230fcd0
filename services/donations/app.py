"""The donations service's Flask app: `gunicorn 'services.donations.app:create_app()'`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from services.shared.auth import parse_tokens
from services.shared.web import ServiceContext, service_app

from .api import api, webhooks
from .backoffice import register_backoffice
from .company_pages import register_company_pages
from .config import Settings
from .domain.giving import GiftLimits, ProcessingFee
from .handlers.giving import GivingRules
from .i18n import install_babel
from .pages import pages, security_headers
from .payments import StripePayments
from .programmes_api import programmes_api
from .unit_of_work import StripeEventRecorder

# Bodies above this are refused with 413 before any parsing (a gift is well under 4 KiB).
MAX_BODY_BYTES = 64 * 1024


class PagesSessions(SecureCookieSessionInterface):
    """The donor pages' signed-cookie sessions (their CSRF tokens); Stripe's webhook sends no
    cookie and keeps none, so it gets no session: unsigning one costs it more than its work."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/webhooks/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


@dataclass
class DonationsService(ServiceContext):
    """What the request handlers need: settings, the database, Stripe, the giving rules."""

    payments: StripePayments
    rules: GivingRules
    # The webhook's recorder: concurrent webhooks of this process share a commit.
    recorder: StripeEventRecorder


def giving_rules(settings: Settings) -> GivingRules:
    """The gift limits, the fee a donor may cover and where Stripe sends donors back."""
    return GivingRules(
        GiftLimits(settings.min_amount, settings.max_amount),
        ProcessingFee(settings.fee_percent_bp, settings.fee_fixed),
        settings.public_url,
    )


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from `settings` (default: the environment)."""
    settings = settings or Settings.from_env()
    app, context = service_app(
        "donations",
        settings,
        parse_tokens(settings.api_tokens),
        (api, webhooks, programmes_api),
        config={
            "SECRET_KEY": settings.secret_key,
            "MAX_CONTENT_LENGTH": MAX_BODY_BYTES,
            "WTF_CSRF_TIME_LIMIT": 3600,
        },
    )
    app.extensions["donations"] = DonationsService(
        settings=settings,
        engine=context.engine,
        payments=StripePayments(settings.stripe_api_key, settings.stripe_api_base or None),
        rules=giving_rules(settings),
        recorder=StripeEventRecorder(context.engine),
    )
    app.session_interface = PagesSessions()
    install_babel(app)
    csrf = CSRFProtect(app)
    # The JSON API (bearer tokens, no cookies) and Stripe's signed webhook are not forms.
    csrf.exempt(api)
    csrf.exempt(webhooks)
    csrf.exempt(programmes_api)
    app.register_blueprint(pages)
    register_company_pages(app)
    register_backoffice(app)
    if settings.test_checkout:
        from .dev_checkout import dev_checkout

        app.register_blueprint(dev_checkout)
    app.after_request(security_headers)
    return app
