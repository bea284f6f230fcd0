"""Signing in to the back office and the role every page needs.

A session is a random token in Flask's signed session cookie (HttpOnly, SameSite=Lax, Secure
unless the site is served from this machine over http), and the sha256 of the token in
backoffice_sessions: signing out deletes the row, so the cookie, even copied, signs nobody in
afterwards. Every form carries the CSRF token CSRFProtect checks (app.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_time
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from services.shared.db import reading

from .. import store
from ..domain.accounts import ADMIN, FINANCE, SPONSOR, Account
from ..handlers.accounts import SESSION_LIFETIME, SignIn, SignInRefused, sign_in, sign_out
from ..handlers.accounts import token_digest as session_digest
from ..i18n import LANGUAGE_KEY, current_locale
from ..unit_of_work import DonationsUnitOfWork

backoffice = Blueprint(
    "backoffice",
    __name__,
    url_prefix="/backoffice",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

SESSION_KEY = "backoffice"
ROLE_NAMES = {ADMIN: _l("campaign manager"), FINANCE: _l("finance"), SPONSOR: _l("sponsor")}
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class NavItem:
    role: str
    endpoint: str
    label: Any


# The menu: each area's module adds its entries when it is imported (register_backoffice).
NAVIGATION: list[NavItem] = []


def nav(role: str, endpoint: str, label: Any) -> None:
    """Show `endpoint` in the menu of those who have `role`."""
    NAVIGATION.append(NavItem(role, f"backoffice.{endpoint}", label))


def _engine() -> Any:
    return current_app.extensions["donations"].engine


def is_local(public_url: str) -> bool:
    """True for a site served from this machine over http (make run, the tests): there a
    Secure cookie would never come back, everywhere else it must be Secure."""
    parts = urlsplit(public_url)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def install_sessions(app: Flask) -> None:
    """The session cookie's attributes for signed-in pages."""
    settings = app.extensions["donations"].settings
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not is_local(settings.public_url),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.jinja_env.globals.update(
        backoffice_menu=menu, current_account=current_account, page_lang=current_locale
    )
    app.jinja_env.filters["role_name"] = role_name


def current_account() -> Account | None:
    """The signed-in person of this request, or None (looked up once per request)."""
    if "backoffice_account" not in g:
        token = session.get(SESSION_KEY)
        account = None
        if isinstance(token, str) and 0 < len(token) <= 100:
            with reading(_engine()) as conn:
                account = store.session_account(conn, session_digest(token), datetime.now(UTC))
        g.backoffice_account = account
    return cast(Account | None, g.backoffice_account)


def role_name(role: str) -> str:
    return str(ROLE_NAMES.get(role, role))


def menu() -> list[NavItem]:
    account = current_account()
    if account is None:
        return []
    return [item for item in NAVIGATION if account.has(item.role)]


def _safe_next(target: str | None) -> str:
    """Only a path of the back office: never another site (an open redirect)."""
    if target and target.startswith("/backoffice") and not target.startswith("//"):
        if "\\" not in target and urlsplit(target).netloc == "":
            return target
    return url_for("backoffice.home")


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=320)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


def _sign_in_page(form: SignInForm, status: int, problem: str | None = None) -> Response:
    response = current_app.make_response(
        (render_template("backoffice/sign_in.html", form=form, problem=problem), status)
    )
    return response


def role_required(*roles: str) -> Callable[[F], F]:
    """A page for those with one of `roles`: 401 and the sign-in form without a session,
    403 and a page naming the role for anyone else."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            account = current_account()
            if account is None:
                form = SignInForm(formdata=None, next=request.full_path.rstrip("?"))
                return _sign_in_page(form, 401)
            if not any(account.has(role) for role in roles):
                return render_template(
                    "backoffice/refused.html", needed=[role_name(r) for r in roles]
                ), 403
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


@backoffice.route("/sign-in", methods=["GET", "POST"])
def sign_in_page() -> Any:
    """The sign-in form; a right password opens a session and goes where the person was
    headed."""
    form = SignInForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        if current_account() is not None:
            return redirect(_safe_next(form.next.data))
        return _sign_in_page(form, 200)
    if not form.validate():
        return _sign_in_page(form, 422)
    attempt = SignIn(form.email.data or "", form.password.data or "", request.remote_addr or "")
    try:
        signed = sign_in(attempt, DonationsUnitOfWork(_engine()))
    except SignInRefused as refused:
        if refused.until is not None:
            when = format_time(refused.until, "short")
            problem = _("Too many failed attempts. Try again after %(time)s.", time=when)
            response = _sign_in_page(form, 429, problem)
            seconds = max(1, int((refused.until - datetime.now(UTC)).total_seconds()))
            response.headers["Retry-After"] = str(seconds)
            return response
        return _sign_in_page(form, 401, _("That email and password do not match an account."))
    target = _safe_next(form.next.data)
    language = session.get(LANGUAGE_KEY)
    session.clear()  # no session fixation: what was there before signing in goes
    if language:
        session[LANGUAGE_KEY] = language
    session[SESSION_KEY] = signed.token
    session.permanent = True
    return redirect(target, 303)


@backoffice.post("/sign-out")
def sign_out_page() -> Response:
    """End the session (the form's CSRF token proves the person asked)."""
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        sign_out(token, DonationsUnitOfWork(_engine()))
    language = session.get(LANGUAGE_KEY)
    session.clear()
    if language:
        session[LANGUAGE_KEY] = language
    flash(_("You are signed out."))
    return redirect(url_for("backoffice.sign_in_page"), 303)


@backoffice.after_request
def _no_store(response: Response) -> Response:
    """Signed-in pages are nobody else's: no cache keeps them."""
    response.headers["Cache-Control"] = "no-store"
    return response


@backoffice.errorhandler(CSRFError)
def _expired_form(_error: CSRFError) -> Any:
    return render_template(
        "backoffice/problem.html",
        title=_("This form has expired"),
        detail=_("Reload the page and send the form again; nothing was changed."),
    ), 400


@backoffice.errorhandler(HTTPException)
def _problem(error: HTTPException) -> Any:
    return render_template(
        "backoffice/problem.html", title=error.name, detail=error.description
    ), error.code or 500
