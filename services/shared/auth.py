"""Bearer tokens with roles for the admin and finance endpoints.

Tokens come from the environment as `DIFTS_API_TOKENS="token:role[+role],token:role"`; the
development default gives `dev-admin-token` the admin role and `dev-finance-token` the finance
role. Production sets its own, long and random.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request
from flask_smorest import abort

DEFAULT_API_TOKENS = "dev-admin-token:admin,dev-finance-token:finance"  # noqa: S105

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
                    headers={"WWW-Authenticate": 'Bearer realm="difts"'},
                )
            if role not in roles:  # type: ignore[operator]
                abort(403, message=f"this token does not have the {role} role")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
