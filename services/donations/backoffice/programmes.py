"""A sponsor's contact's page: the company's programmes of difts, their budget and difts, and
a fresh signed link to each impact report (the report page itself is impact_report.py's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import lazy_gettext as _l

from services.shared.db import reading

from .. import programme_views
from ..domain.accounts import SPONSOR
from ..impact_report import report_url
from .auth import backoffice, current_account, nav, role_required

# Long enough to read the report and download its CSV, short enough not to be forwarded far.
REPORT_LINK_LIFETIME = timedelta(hours=2)

STATUS = {
    "draft": _l("draft, waiting for its funding"),
    "funded": _l("funded, opens on its date"),
    "open": _l("open: difts are being directed"),
    "closed": _l("closed"),
}

nav(SPONSOR, "sponsor_programmes", _l("Our programmes"))


@backoffice.get("/programmes")
@role_required(SPONSOR)
def sponsor_programmes() -> Any:
    """The signed-in contact's company's programmes, newest first."""
    account = current_account()
    assert account is not None and account.sponsor_id is not None
    service = current_app.extensions["donations"]
    expires = datetime.now(UTC) + REPORT_LINK_LIFETIME
    with reading(service.engine) as conn:
        sponsor = programme_views.sponsor_view(conn, account.sponsor_id)
        programmes = []
        for programme_id in sponsor["programmes"] if sponsor else []:
            found = programme_views.programme(conn, programme_id)
            if found is None:
                continue
            programmes.append(
                {
                    **programme_views.programme_view(conn, found),
                    "difts": programme_views.dift_counts(conn, programme_id),
                    "report_url": report_url(service.settings, programme_id, expires),
                }
            )
    return render_template(
        "backoffice/programmes.html",
        sponsor=sponsor,
        programmes=programmes,
        expires=expires,
        status=STATUS,
    )
