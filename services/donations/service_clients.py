"""The donations service's HTTP clients of the other services, for the back-office pages: the
ledger's finance API (every figure finance staff see is the ledger's) and the notifications
API (a news post's deliveries, resending one, the preview of a news email).

No service reads another's database (DESIGN.md): what a page shows of the books or of the
delivery log comes through these. Each call has a timeout; a service that does not answer,
or answers 5xx, raises ServiceUnavailable (the page says "try again"); a 4xx raises
ServiceRefused with the message and the fields at fault, so a page can show each error next
to its field. Bearer tokens go in the Authorization header only, never in a log line or an
error message. Answers are the services' JSON as they document it (money in minor units with
a currency, dates as ISO 8601 strings)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from .config import Settings

log = logging.getLogger(__name__)

JSON = dict[str, Any]

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
STRIPE_READ_TIMEOUT = 60.0
"""Reconciliation and re-sync read Stripe's balance transactions (every page of a period)
before answering: they get longer to answer than the ledger's own reads."""


class ServiceUnavailable(Exception):
    """A service did not answer in time, could not be reached, or failed (5xx): nothing to
    show but "try again"."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service} is unavailable: {detail}")
        self.service = service
        self.detail = detail


class ServiceRefused(Exception):
    """A service refused the request (4xx): its message, and the fields at fault with their
    messages (from flask-smorest's errors, whatever the location: json, query, path)."""

    def __init__(self, status: int, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.fields = fields


def _field_errors(errors: Any) -> dict[str, list[str]]:
    """{"json": {"since": ["..."]}, "query": {...}} as {"since": ["..."]}."""
    fields: dict[str, list[str]] = {}
    if not isinstance(errors, Mapping):
        return fields
    for at_location in errors.values():
        if not isinstance(at_location, Mapping):
            continue
        for name, messages in at_location.items():
            said = messages if isinstance(messages, list) else [messages]
            fields.setdefault(str(name), []).extend(str(message) for message in said)
    return fields


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class ServiceClient:
    """One service's API at `base_url`, with a bearer token and timeouts."""

    service = "service"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        read_timeout: float = READ_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self.session = session or requests.Session()
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def __repr__(self) -> str:
        # No token in a repr: it may end up in a traceback or a log.
        return f"{type(self).__name__}({self.base_url!r})"

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | None = None,
        read_timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """The answer to one request, or ServiceUnavailable / ServiceRefused."""
        url = self.base_url + path
        try:
            response = self.session.request(
                method,
                url,
                params=_without_none(params or {}),
                json=body,
                headers=self._headers,
                timeout=(CONNECT_TIMEOUT, read_timeout or self.read_timeout),
                stream=stream,
            )
        except requests.Timeout as error:
            log.warning("%s %s %s: no answer in time", self.service, method, path)
            raise ServiceUnavailable(self.service, "no answer in time") from error
        except requests.RequestException as error:
            log.warning("%s %s %s: unreachable", self.service, method, path)
            raise ServiceUnavailable(self.service, f"unreachable ({type(error).__name__})") from (
                error
            )
        log.debug("%s %s %s: %s", self.service, method, path, response.status_code)
        if response.status_code >= 500:
            said = _said(response).get("message") or response.reason
            response.close()
            raise ServiceUnavailable(self.service, f"{response.status_code} {said}")
        if response.status_code >= 400:
            said = _said(response)
            response.close()
            raise ServiceRefused(
                response.status_code,
                str(said.get("message") or response.reason),
                _field_errors(said.get("errors")),
            )
        return response

    def _json(self, method: str, path: str, **options: Any) -> Any:
        response = self._send(method, path, **options)
        try:
            return response.json()
        except ValueError as error:
            raise ServiceUnavailable(self.service, "the answer is not JSON") from error


def _said(response: requests.Response) -> JSON:
    """The error body flask-smorest writes ({code, status, message, errors}), if any."""
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _segment(value: str) -> str:
    """One path segment, escaped (a slug or id typed into a page goes no further)."""
    return quote(value, safe="")


class LedgerClient(ServiceClient):
    """The ledger's finance API (a token with the finance role): summaries, history, the
    journal, the trial balance, reconciliation, re-sync and period close."""

    service = "ledger"
    FINANCE = "/api/v1/finance"

    @classmethod
    def of(cls, settings: Settings) -> LedgerClient:
        """The ledger the settings name (DIFTS_LEDGER_URL, DIFTS_LEDGER_TOKEN)."""
        return cls(settings.ledger_url, settings.ledger_token)

    def summary(self, slug: str) -> JSON:
        """A campaign's finance summary: donated, fees, net, refunded, disputed, paid out,
        fund balance, meals funded and the remainder (FinanceSummarySchema)."""
        return dict(self._json("GET", f"{self.FINANCE}/campaigns/{_segment(slug)}/summary"))

    def history(
        self,
        slug: str,
        *,
        interval: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> JSON:
        """A campaign's money and meals over time, bucket by bucket (CampaignHistorySchema)."""
        params = {"interval": interval, "since": _moment(since), "until": _moment(until)}
        path = f"{self.FINANCE}/campaigns/{_segment(slug)}/history"
        return dict(self._json("GET", path, params=params))

    def programme_balance(self, programme_id: str) -> JSON:
        """A programme of difts' fund (ProgrammeBalanceSchema)."""
        path = f"{self.FINANCE}/programmes/{_segment(programme_id)}/balance"
        return dict(self._json("GET", path))

    def journal_page(
        self,
        *,
        campaign: str | None = None,
        account: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        stripe_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JSON:
        """One page of journal entries with their lines: {entries, next_cursor, total}."""
        params = {
            "campaign": campaign,
            "account": account,
            "kind": kind,
            "since": _moment(since),
            "until": _moment(until),
            "stripe_id": stripe_id,
            "cursor": cursor,
            "limit": limit,
        }
        return dict(self._json("GET", f"{self.FINANCE}/journal", params=params))

    def journal_csv(
        self,
        *,
        campaign: str | None = None,
        account: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        stripe_id: str | None = None,
    ) -> Iterator[bytes]:
        """Every matching journal line as the ledger's CSV, streamed in chunks: the request is
        made (and refused or failed) now, the body read as the iterator is."""
        params = {
            "format": "csv",
            "campaign": campaign,
            "account": account,
            "kind": kind,
            "since": _moment(since),
            "until": _moment(until),
            "stripe_id": stripe_id,
        }
        response = self._send("GET", f"{self.FINANCE}/journal", params=params, stream=True)
        return _chunks(response, self.service)

    def trial_balance(self, at: datetime | None = None) -> JSON:
        """Every account's balance at a date, and the totals per currency
        (TrialBalanceSchema)."""
        return dict(self._json("GET", f"{self.FINANCE}/trial-balance", params={"at": _moment(at)}))

    def reconcile_payout(self, payout_id: str) -> JSON:
        """A payout's balance transactions matched to the journal (ReconciliationSchema)."""
        path = f"{self.FINANCE}/payouts/{_segment(payout_id)}/reconciliation"
        return dict(self._json("GET", path, read_timeout=STRIPE_READ_TIMEOUT))

    def reconcile_period(self, since: datetime, until: datetime) -> JSON:
        """Stripe's balance transactions of [since, until) matched to the journal."""
        params = {"since": _moment(since), "until": _moment(until)}
        path = f"{self.FINANCE}/reconciliation"
        return dict(self._json("GET", path, params=params, read_timeout=STRIPE_READ_TIMEOUT))

    def resync(
        self,
        *,
        payout: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> JSON:
        """Book what only Stripe has, for a payout or a period: {booked, already_booked,
        needs_a_person, ...} (ResyncSchema)."""
        body = _without_none({"payout": payout, "since": _moment(since), "until": _moment(until)})
        path = f"{self.FINANCE}/resync"
        return dict(self._json("POST", path, body=body, read_timeout=STRIPE_READ_TIMEOUT))

    def close_period(self, month: str) -> JSON:
        """Close a month (YYYY-MM): {month, closed, already_closed}."""
        return dict(self._json("POST", f"{self.FINANCE}/periods/{_segment(month)}/close"))


def _chunks(response: requests.Response, service: str) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=64 * 1024)
    except requests.RequestException as error:
        raise ServiceUnavailable(service, "the answer broke off") from error
    finally:
        response.close()


class NotificationsClient(ServiceClient):
    """The notifications API (a token with the admin role): what became of a news post's
    emails, resending one, and the preview of a news email."""

    service = "notifications"
    API = "/api/v1"
    NEWS_PREVIEW = "/api/v1/previews/news"

    @classmethod
    def of(cls, settings: Settings) -> NotificationsClient:
        """The notifications service the settings name (DIFTS_NOTIFICATIONS_URL,
        DIFTS_NOTIFICATIONS_TOKEN)."""
        return cls(settings.notifications_url, settings.notifications_token)

    def post_counts(self, post_id: str) -> JSON:
        """How a news post's emails fared: {post_id, sent, failed, skipped, pending}."""
        return dict(self._json("GET", f"{self.API}/posts/{_segment(post_id)}/counts"))

    def post_deliveries(
        self, post_id: str, *, status: str | None = None, limit: int = 100
    ) -> list[JSON]:
        """A news post's deliveries, newest first (recipients masked by the service)."""
        params = {"post_id": post_id, "status": status, "limit": limit}
        return list(self._json("GET", f"{self.API}/deliveries", params=params))

    def resend(self, delivery_id: str) -> JSON:
        """Send one delivery again; the delivery as it is now (pending)."""
        return dict(self._json("POST", f"{self.API}/deliveries/{_segment(delivery_id)}/resend"))

    def news_preview(
        self,
        *,
        campaign_title: str,
        campaign_slug: str,
        cause_name: str,
        title: str,
        body_markdown: str,
        locale: str,
    ) -> JSON:
        """The email donors would get for a news post, rendered by the notifications
        service's own templates: {subject, text, html}."""
        body = {
            "campaign_title": campaign_title,
            "campaign_slug": campaign_slug,
            "cause_name": cause_name,
            "title": title,
            "body_markdown": body_markdown,
            "locale": locale,
        }
        return dict(self._json("POST", self.NEWS_PREVIEW, body=body))
