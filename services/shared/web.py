"""The Flask pieces every service shares: JSON errors, correlation ids, /healthz and /readyz."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from .logs import correlation_id

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
_SAFE_CORRELATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

ReadinessCheck = Callable[[], None]


def create_service_app(name: str, title: str, checks: dict[str, ReadinessCheck],
                       config: dict[str, Any] | None = None) -> tuple[Flask, Api]:
    """A Flask app with an OpenAPI document, JSON errors, correlation ids and health checks."""
    app = Flask(name)
    app.config.update(
        API_TITLE=title,
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH=None,
        MAX_CONTENT_LENGTH=64 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})
    api = Api(app)

    @app.before_request
    def _correlate() -> None:
        given = request.headers.get(CORRELATION_HEADER, "")
        g.correlation_id = given if _SAFE_CORRELATION.match(given) else str(uuid.uuid4())
        g.correlation_token = correlation_id.set(g.correlation_id)

    @app.after_request
    def _tag_response(response: Response) -> Response:
        response.headers[CORRELATION_HEADER] = g.get("correlation_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        token = g.pop("correlation_token", None)
        if token is not None:
            correlation_id.reset(token)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        body: dict[str, Any] = {
            "code": error.code,
            "status": error.name,
            "message": error.description,
        }
        extra = getattr(error, "data", None)
        if isinstance(extra, dict):
            for key in ("errors", "message"):
                if key in extra:
                    body[key] = extra[key]
        return jsonify(body), error.code or 500

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify({"code": 500, "status": "Internal Server Error",
                        "message": "Something went wrong on our side; it has been logged."}), 500

    @app.get("/healthz")
    def healthz() -> Response:
        """The process is alive."""
        return jsonify({"status": "ok", "service": name})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        """The process can serve: every dependency answers."""
        results: dict[str, str] = {}
        for check_name, check in checks.items():
            try:
                check()
                results[check_name] = "ok"
            except Exception as error:  # noqa: BLE001 - report, do not crash the probe
                results[check_name] = f"unavailable: {type(error).__name__}"
        ready = all(value == "ok" for value in results.values())
        return jsonify({"status": "ready" if ready else "not ready", "checks": results}), (
            200 if ready else 503
        )

    return app, api


def current_correlation_id() -> str | None:
    """The correlation id of the request being served, if any."""
    return correlation_id.get()


def error(status: int, message: str, field: str | None = None) -> None:
    """Abort with a JSON error; `field` names the input at fault."""
    from flask_smorest import abort

    if field:
        abort(status, message=message, errors={"json": {field: [message]}})
    abort(status, message=message)
