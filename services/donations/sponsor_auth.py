"""The sponsor role: a company's contact reads and acts on its own programmes with the access
token it was given when its sponsor was registered (only the token's digest is stored), and an
admin token may do the same for any sponsor. The OpenAPI document says it as for every other
role (bearerAuth, x-required-role "sponsor"); services/shared/auth.py stays generic, the lookup
of a sponsor's token lives here."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema

from services.shared.auth import BEARER_AUTH, WWW_AUTHENTICATE, roles_of
from services.shared.db import reading

from . import programme_views
from .handlers.programmes import token_digest

SPONSOR = "sponsor"
F = TypeVar("F", bound=Callable[..., Any])


def _engine() -> Any:
    return current_app.extensions["donations"].engine


def _check(programme_id: str | None) -> None:
    """401 without a token this service knows; 403 for a token that is neither an admin's
    nor the programme's sponsor's (a sponsor's token for another sponsor's programme)."""
    header = request.headers.get("Authorization")
    roles = roles_of(header, current_app.config.get("API_TOKENS", {}))
    if roles is not None and "admin" in roles:
        g.sponsor_id = None
        return
    if roles is not None:
        abort(403, message=f"this token does not have the {SPONSOR} role")
    given = (header or "").removeprefix("Bearer ").strip() if header else ""
    sponsor_id = None
    if header and header.startswith("Bearer ") and 0 < len(given) <= 200:
        with reading(_engine()) as conn:
            sponsor_id = programme_views.sponsor_of_token(conn, token_digest(given))
    if sponsor_id is None:
        abort(
            401,
            message="a bearer token is needed (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": WWW_AUTHENTICATE},
        )
    if programme_id is not None:
        with reading(_engine()) as conn:
            found = programme_views.programme(conn, programme_id)
        if found is not None and found.sponsor_id != sponsor_id:
            abort(403, message=f"this token does not have the {SPONSOR} role for this programme")
    g.sponsor_id = sponsor_id


def sponsor_protected(blueprint: Blueprint) -> Callable[[F], F]:
    """Guard a flask-smorest view of a sponsor's programme (`programme_id` in its path) with
    an admin token or that sponsor's own token, and document it as services.shared.auth's
    `protected` documents a role: bearerAuth, x-required-role "sponsor", 401 and 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _check(kwargs.get("programme_id"))
            return view(*args, **kwargs)

        note = (
            "Needs `Authorization: Bearer <token>`: the sponsor's own access token "
            "(x-required-role sponsor) or an admin token; 401 without a token this service "
            "knows, 403 with another role's or another sponsor's."
        )
        guarded.__doc__ = f"{inspect.cleandoc(view.__doc__ or '')}\n\n{note}"
        wrapped: Any = blueprint.alt_response(
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
        )(guarded)
        wrapped = blueprint.alt_response(
            403,
            schema=ErrorSchema,
            description="The token is neither an admin's nor this programme's sponsor's",
        )(wrapped)
        wrapped = blueprint.doc(security=[{BEARER_AUTH: []}], **{"x-required-role": SPONSOR})(
            wrapped
        )
        return cast(F, wrapped)

    return decorate


__all__ = ["SPONSOR", "sponsor_protected"]
