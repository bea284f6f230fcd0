"""The webhooks benchmark's baseline: a bare Flask endpoint, under the same gunicorn settings
as the donations service, that does what any Stripe webhook must and nothing else: the same
signature check (services.donations.payments.verify_signature, Stripe's HMAC-SHA256 scheme
through the stripe library) on the same body, then a 200. No database, no parsing, no
middleware. `gunicorn 'bench.bare_webhook_app:create_app()'`, with BENCH_WEBHOOK_SECRET."""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from werkzeug.wrappers import Response

from services.donations.payments import InvalidWebhook, verify_signature

TOLERANCE_SECONDS = 300


def create_app() -> Flask:
    """The bare endpoint, verifying with BENCH_WEBHOOK_SECRET."""
    secret = os.environ["BENCH_WEBHOOK_SECRET"]
    app = Flask("bare_webhook")

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> tuple[Response, int]:
        try:
            verify_signature(
                request.get_data(),
                request.headers.get("Stripe-Signature"),
                secret,
                TOLERANCE_SECONDS,
            )
        except InvalidWebhook as error:
            return jsonify({"message": str(error)}), 400
        return jsonify({"received": True}), 200

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify({"status": "ok"}), 200

    return app
