"""Bearer tokens with roles for the admin and finance endpoints.

Tokens come from the environment as `DIFTS_API_TOKENS="token:role[+role],token:role"`; the
development default gives `dev-admin-token` the admin role and `dev-finance-token` the finance
role. Production sets its own, long and random.
"""

from __future__ import annotations

import functools
import hmac
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, request
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema

# The name of the http bearer scheme in every service's OpenAPI document (see web.py).
BEARER_AUTH = "bearerAuth"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token of DIFTS_API_TOKENS; each operation names the role it needs in "
    "x-required-role (OpenAPI 3.0 cannot put roles in an http security requirement).",
}
# What a request without a token this service knows gets (require_role's abort).
WWW_AUTHENTICATE = 'Bearer realm="difts"'

F = TypeVar("F", bound=Callable[..., Any])


def parse_tokens(raw: str) -> dict[str, frozenset[str]]:
    """`token:role+role,token:role` -> {token: roles}; a malformed entry stops start-up."""
    tokens: dict[str, frozenset[str]] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        token, sep, roles = entry.rpartition(":")
        if not sep or not token or not roles:
            raise SystemExit("DIFTS_API_TOKENS entries look like token:role (roles joined by +)")
        tokens[token] = frozenset(role.strip() for role in roles.split("+") if role.strip())
    return tokens


def roles_of(header: str | None, tokens: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """The roles of the bearer token in an Authorization header; None if it is not ours."""
    if not header or not header.startswith("Bearer "):
        return None
    given = header.removeprefix("Bearer ").strip().encode()
    found: frozenset[str] | None = None
    for token, roles in tokens.items():
        # Compare with every token in constant time, so timing says nothing about which.
        if hmac.compare_digest(given, token.encode()):
            found = roles
    return found


def require_role(role: str) -> Callable[[F], F]:
    """Decorate a view so it answers 401 without a known bearer token and 403 without `role`.

    The app's config holds the tokens under API_TOKENS (see parse_tokens)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            tokens = current_app.config.get("API_TOKENS", {})
            roles = roles_of(request.headers.get("Authorization"), tokens)
            if roles is None:
                abort(
                    401,
                    message="a bearer token is needed (Authorization: Bearer <token>)",
                    headers={"WWW-Authenticate": WWW_AUTHENTICATE},
                )
            if role not in roles:  # type: ignore[operator]
                abort(403, message=f"this token does not have the {role} role")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def protected(blueprint: Blueprint, role: str) -> Callable[[F], F]:
    """Guard a flask-smorest view with require_role(role) and say so in the OpenAPI document:
    `security: [{bearerAuth: []}]`, `x-required-role: <role>`, a sentence in the description,
    and the 401 and 403 answers with the error body the services send ({code, status, message,
    errors?}). Put it under `@blueprint.route` and above `arguments`/`response`, so the token
    is checked before the body is read."""

    def decorate(view: F) -> F:
        guarded: Any = require_role(role)(view)
        guarded.__doc__ = _with_role_note(view.__doc__, role)
        guarded = blueprint.alt_response(
            401,
            schema=ErrorSchema,
            description="No bearer token, or one this service does not know",
            headers={
                "WWW-Authenticate": {
                    "description": "the scheme to authenticate with",
                    "required": True,
                    "schema": {"type": "string", "example": WWW_AUTHENTICATE},
                }
            },
            example={
                "code": 401,
                "status": "Unauthorized",
                "message": "a bearer token is needed (Authorization: Bearer <token>)",
            },
        )(guarded)
        guarded = blueprint.alt_response(
            403,
            schema=ErrorSchema,
            description=f"The token does not have the {role} role",
            example={
                "code": 403,
                "status": "Forbidden",
                "message": f"this token does not have the {role} role",
            },
        )(guarded)
        guarded = blueprint.doc(security=[{BEARER_AUTH: []}], **{"x-required-role": role})(guarded)
        return cast(F, guarded)

    return decorate


def _with_role_note(docstring: str | None, role: str) -> str:
    """The view's docstring (OpenAPI summary and description) plus the role it needs."""
    note = (
        f"Needs `Authorization: Bearer <token>` with the `{role}` role (x-required-role): "
        "401 without a token this service knows, 403 when the token lacks the role."
    )
    return f"{inspect.cleandoc(docstring or '')}\n\n{note}"
