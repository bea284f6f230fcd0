"""The Flask pieces every service shares: JSON errors, correlation ids, /healthz and /readyz,
and the OpenAPI document's common parts (the bearer scheme, schema keywords marshmallow cannot
say)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apispec import BasePlugin
from flask import Flask, Response, g, jsonify, request
from flask_smorest import Api, Blueprint
from marshmallow import Schema
from sqlalchemy import Engine
from werkzeug.exceptions import HTTPException, NotFound

from .auth import BEARER_AUTH, BEARER_SCHEME
from .db import make_engine, ping
from .kafka import broker_reachable
from .logs import correlation_id
from .metrics import HTTP_REQUESTS, exposition

log = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
_SAFE_CORRELATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

ReadinessCheck = Callable[[], None]


class SchemaKeywords(BasePlugin):
    """Adds a marshmallow schema's `openapi_keywords` (a class attribute) to its OpenAPI
    component: the rules a `validates_schema` enforces and field validators cannot say, such
    as "an amount or a number of meals" as `oneOf`."""

    def schema_helper(self, name: str, definition: dict[str, Any], **kwargs: Any) -> dict | None:
        """The extra JSON Schema keywords of the schema being registered, if it has any."""
        schema = kwargs.get("schema")
        if isinstance(schema, str) or schema is None:
            return None
        cls = schema if isinstance(schema, type) else type(schema)
        if not issubclass(cls, Schema):
            return None
        return dict(getattr(cls, "openapi_keywords", {}))


def create_service_app(
    name: str, title: str, checks: dict[str, ReadinessCheck], config: dict[str, Any] | None = None
) -> tuple[Flask, Api]:
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
    api = Api(app, spec_kwargs={"extra_plugins": [SchemaKeywords()]})
    # Every service has bearer-protected operations; each says so with auth.protected.
    api.spec.components.security_scheme(BEARER_AUTH, BEARER_SCHEME)

    @app.before_request
    def _correlate() -> None:
        g.started = time.perf_counter()
        given = request.headers.get(CORRELATION_HEADER, "")
        g.correlation_id = given if _SAFE_CORRELATION.match(given) else str(uuid.uuid4())
        g.correlation_token = correlation_id.set(g.correlation_id)

    @app.before_request
    def _no_nul_in_path() -> None:
        # No resource is named with a NUL, and PostgreSQL cannot even compare text holding one.
        if "\x00" in request.path:
            raise NotFound("no resource has a NUL character in its name")

    @app.after_request
    def _tag_response(response: Response) -> Response:
        response.headers[CORRELATION_HEADER] = g.get("correlation_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        started = g.get("started")
        if started is not None and request.path != "/metrics":
            # The route's pattern, not the path: one series per endpoint, not per donation.
            route = request.url_rule.rule if request.url_rule is not None else "(no route)"
            HTTP_REQUESTS.labels(name, route, request.method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        token = g.pop("correlation_token", None)
        if token is not None:
            correlation_id.reset(token)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        body: dict[str, Any] = {
            "code": error.code,
            "status": error.name,
            "message": error.description,
        }
        extra = getattr(error, "data", None)
        if isinstance(extra, dict):
            # webargs puts field errors under "messages"; flask-smorest's abort under "errors".
            if "messages" in extra:
                body["errors"] = extra["messages"]
                names = _field_names(extra["messages"])
                body["message"] = (
                    "some fields are invalid: " + ", ".join(sorted(names))
                    if names
                    else "the request body is not valid JSON"
                )
            for key in ("errors", "message"):
                if key in extra:
                    body[key] = extra[key]
        elif error.code == 400 and request.is_json and not _parses_as_json(request.get_data()):
            body["message"] = "the request body is not valid JSON"
            body["errors"] = {"json": {"_body": ["not valid JSON"]}}
        response = jsonify(body)
        response.status_code = error.code or 500
        # Keep what the error says about itself (WWW-Authenticate, Allow, Retry-After).
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        if isinstance(extra, dict) and isinstance(extra.get("headers"), dict):
            response.headers.update(extra["headers"])  # abort(..., headers={...})
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify(
            {
                "code": 500,
                "status": "Internal Server Error",
                "message": "Something went wrong on our side; it has been logged.",
            }
        ), 500

    @app.get("/metrics")
    def metrics() -> Response:
        """The service's metrics, in Prometheus's text format (every process's, under
        gunicorn)."""
        body, content_type = exposition()
        return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)

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


@dataclass
class ServiceContext:
    """What a service's request handlers reach through `current_app.extensions[name]`: its
    settings and its database."""

    settings: Any
    engine: Engine


def service_app(
    name: str,
    settings: Any,
    tokens: dict[str, frozenset[str]],
    blueprints: Sequence[Blueprint],
    config: dict[str, Any] | None = None,
) -> tuple[Flask, ServiceContext]:
    """A service's app: its engine (settings.database_url), readiness on its database and the
    broker (settings.kafka_bootstrap_servers), its bearer tokens, its API blueprints in the
    OpenAPI document, and its context under app.extensions[name]."""
    engine = make_engine(settings.database_url)
    app, rest = create_service_app(
        name,
        f"difts {name}",
        checks=dependency_checks(engine, settings.kafka_bootstrap_servers),
        config={"API_TOKENS": tokens, **(config or {})},
    )
    for blueprint in blueprints:
        rest.register_blueprint(blueprint)
    context = ServiceContext(settings, engine)
    app.extensions[name] = context
    return app, context


def dependency_checks(engine: Engine, bootstrap_servers: str) -> dict[str, ReadinessCheck]:
    """The readiness checks of a service: its database answers and the broker is reachable."""

    def broker() -> None:
        if not broker_reachable(bootstrap_servers):
            raise ConnectionError("Kafka unreachable")

    return {"database": lambda: ping(engine), "broker": broker}


def _field_names(messages: Any) -> list[str]:
    """Dotted names of the fields in a nested webargs error dict (location keys dropped)."""
    names: list[str] = []
    for _location, fields in (messages or {}).items():
        if isinstance(fields, dict):
            names.extend(_flatten(fields, ""))
    return names


def _flatten(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict):
        out: list[str] = []
        for key, inner in value.items():
            out.extend(_flatten(inner, f"{prefix}{key}."))
        return out
    return [prefix.rstrip(".")]


def _parses_as_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def current_correlation_id() -> str | None:
    """The correlation id of the request being served, if any."""
    return correlation_id.get()
