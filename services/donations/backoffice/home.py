"""The back office's first page: what the signed-in person's roles let them do."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ..domain.accounts import ADMIN, FINANCE, SPONSOR
from .auth import backoffice, current_account, menu, role_required


@backoffice.get("/")
@role_required(ADMIN, FINANCE, SPONSOR)
def home() -> Any:
    """The areas of the person's roles, as the menu lists them."""
    return render_template("backoffice/home.html", account=current_account(), areas=menu())
