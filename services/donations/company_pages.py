"""The company difts' pages on the donations app: the redemption pages a dift's recipient
chooses on (redemption_pages.py) and what the company sees of its programme (impact_report.py).
"""

from __future__ import annotations

from flask import Flask


def register_company_pages(app: Flask) -> None:
    """Add the redemption pages and the impact report to the donations app (their forms are
    CSRF-protected by the app's CSRFProtect, as the donor pages are)."""
    from .impact_report import impact_report
    from .redemption_pages import dift_pages

    app.register_blueprint(dift_pages)
    app.register_blueprint(impact_report)
