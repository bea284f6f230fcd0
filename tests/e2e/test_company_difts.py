"""Company difts on the running system: a sponsor's 1,000-recipient programme from a CSV upload
to 1,000 invitations in the SMTP sink; 600 difts directed through the redemption pages (some
split), 400 left to the fallback when the programme ends; then the programme's balance is zero,
each campaign's money, difts and meals are exact, and the impact report's figures equal the
ledger's."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from services.shared.money import Money, split_evenly

from .conftest import FINANCE_TOKEN, RunningSystem, log_tail
from .test_one_dift import wait_for

RECIPIENTS = 1000
DIRECTED = 600
VALUE = 2000  # 20 € each
SHORTLIST = ("petites-cantines", "petites-cantines-bagnolet", "petites-cantines-bruz")
LINK = re.compile(r"(/difts/[A-Za-z0-9_\-]{20,})")


def api(system: RunningSystem, method: str, path: str, token: str, **kwargs: Any) -> Any:
    reply = requests.request(
        method,
        f"{system.url('donations')}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
        timeout=60,
        **kwargs,
    )
    assert reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text}"
    return (
        reply.json()
        if reply.headers.get("Content-Type", "").startswith("application/json")
        else reply
    )


def campaign_summary(system: RunningSystem, slug: str) -> dict[str, Any]:
    reply = requests.get(f"{system.url('ledger')}/api/v1/campaigns/{slug}/summary", timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def programme_balance(system: RunningSystem, programme_id: str) -> dict[str, Any] | None:
    reply = requests.get(
        f"{system.url('ledger')}/api/v1/finance/programmes/{programme_id}/balance",
        headers={"Authorization": f"Bearer {FINANCE_TOKEN}"},
        timeout=10,
    )
    return dict(reply.json()) if reply.status_code == 200 else None


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def direct(
    system: RunningSystem, path: str, shares: dict[str, int], by_slug: dict[str, str]
) -> None:
    """Open the dift's page, choose (one cause, or a split in whole euros), confirm."""
    with requests.Session() as browser:
        base = system.url("donations")
        page = browser.get(base + path, timeout=30)
        assert page.status_code == 200, page.text
        if len(shares) == 1:
            [slug] = shares
            fields = {"choice": "one", "campaign": by_slug[slug]}
        else:
            fields = {"choice": "split"}
            fields |= {f"share_{by_slug[slug]}": str(euros) for slug, euros in shares.items()}
        confirmation = browser.post(
            f"{base}{path}/confirm", data={"csrf_token": csrf(page.text), **fields}, timeout=30
        )
        assert confirmation.status_code == 200, confirmation.text
        form = confirmation.text.split('id="direct-form"', 1)[1].split("</form>", 1)[0]
        hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form))
        action = confirmation.text.split('<form method="post" action="', 1)[1].split('"', 1)[0]
        done = browser.post(base + action, data=hidden, timeout=30, allow_redirects=False)
        assert done.status_code == 303, done.text


def choice_of(n: int) -> dict[str, int]:
    """The n-th recipient's choice: all to one cause, or a split in whole euros."""
    if n % 3 == 0:
        return {SHORTLIST[n % 2]: 10, SHORTLIST[2]: 10}
    if n % 3 == 1:
        return {SHORTLIST[0]: 7, SHORTLIST[1]: 7, SHORTLIST[2]: 6}
    return {SHORTLIST[(n // 3) % 3]: 20}


def test_a_thousand_recipients_direct_or_leave_their_difts_and_the_books_end_exact(
    system: RunningSystem,
) -> None:
    admin, finance = system.admin_token, system.finance_token

    def known() -> bool:
        return all(
            requests.get(f"{system.url('ledger')}/api/v1/campaigns/{slug}/summary", timeout=10).ok
            for slug in SHORTLIST
        )

    wait_for(known, 60, system, "the ledger to know the demo campaigns")
    before = {slug: campaign_summary(system, slug) for slug in SHORTLIST}
    by_slug = {slug: summary["campaign_id"] for slug, summary in before.items()}
    company = api(
        system,
        "POST",
        "/admin/sponsors",
        admin,
        json={
            "legal_name": "Acme End-to-End SAS",
            "legal_form": "SAS",
            "siren": "732 829 320",
            "postal_address": "1 rue de la Paix, 75002 Paris",
            "contact_email": "csr@acme.test",
            "brand_name": "Acme",
        },
    )
    sponsor_token = company["access_token"]
    now = datetime.now(UTC)
    programme = api(
        system,
        "POST",
        f"/admin/sponsors/{company['id']}/programmes",
        admin,
        json={
            "name": "Year-end difts",
            "occasion": "End of year",
            "message_markdown": "Thank you **for this year**.",
            "currency": "EUR",
            "dift_value": VALUE,
            "shortlist": list(SHORTLIST),
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "expires_at": (now + timedelta(days=30)).isoformat(),
            "fallback_rule": "split_evenly",
        },
    )
    pid = programme["id"]
    api(
        system,
        "POST",
        f"/finance/programmes/{pid}/bank-transfers",
        finance,
        json={
            "amount": RECIPIENTS * VALUE,
            "received_on": now.date().isoformat(),
            "reference": "VIR-E2E-1",
        },
    )
    sponsor = {"Authorization": f"Bearer {sponsor_token}"}

    def status() -> str:
        return str(
            api(system, "GET", f"/sponsor/programmes/{pid}", sponsor_token)["programme"]["status"]
        )

    wait_for(lambda: status() == "open", 60, system, "the programme to open")

    domain = f"e2e-{uuid.uuid4().hex[:8]}.test"
    lines = ["\ufeffemail;nom;langue"] + [
        f"r{n}@{domain};Recipient {n};{'en' if n % 4 == 0 else 'fr'}" for n in range(RECIPIENTS)
    ]
    upload = api(
        system,
        "POST",
        f"/sponsor/programmes/{pid}/recipients",
        sponsor_token,
        data="\r\n".join(lines).encode(),
        headers={**sponsor, "Content-Type": "text/csv"},
    )

    def issued() -> int:
        found = api(
            system, "GET", f"/sponsor/programmes/{pid}/uploads/{upload['id']}", sponsor_token
        )
        return int(found["issued"])

    wait_for(lambda: issued() == RECIPIENTS, 180, system, "the upload to be issued")

    def invitations() -> list[Any]:
        return [
            m
            for m in system.mailbox.messages()
            if domain in ",".join(m.get_all("X-Sink-Rcpt-To", []))
        ]

    wait_for(lambda: len(invitations()) >= RECIPIENTS, 300, system, "1,000 invitations")
    mails = invitations()
    assert len(mails) == RECIPIENTS, "one invitation per dift, no more"
    links: dict[int, str] = {}
    for message in mails:
        [to] = message.get_all("X-Sink-Rcpt-To")
        text = message.get_body(preferencelist=("plain",)).get_content()
        n = int(to.split("@")[0].removeprefix("r"))
        found = LINK.search(text)
        assert found, f"no link in the invitation to {to}"
        links[n] = found.group(1)
        assert ("Acme" in text) and ("20" in text)
    assert len(links) == RECIPIENTS

    chosen = {n: choice_of(n) for n in range(DIRECTED)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: direct(system, links[n], chosen[n], by_slug), range(DIRECTED)))

    def counts() -> dict[str, int]:
        return dict(api(system, "GET", f"/sponsor/programmes/{pid}", sponsor_token)["counts"])

    wait_for(lambda: counts()["directed"] == DIRECTED, 60, system, "600 directions")
    # A dift directed twice: a clear page, nothing changes.
    again = requests.get(system.url("donations") + links[0], timeout=30)
    assert again.status_code == 409, again.text

    api(system, "POST", f"/admin/programmes/{pid}/end", admin)
    wait_for(lambda: status() == "closed", 180, system, "the programme to expire and close")

    # What the campaigns should have received, to the cent.
    expected: Counter[str] = Counter()
    difts_to: Counter[str] = Counter()
    for shares in chosen.values():
        for slug, euros in shares.items():
            expected[slug] += euros * 100
            difts_to[slug] += 1
    fallback = split_evenly(Money(VALUE, "EUR"), len(SHORTLIST))
    for slug, share in zip(SHORTLIST, fallback, strict=True):
        expected[slug] += share.amount * (RECIPIENTS - DIRECTED)
        difts_to[slug] += RECIPIENTS - DIRECTED
    assert sum(expected.values()) == RECIPIENTS * VALUE

    def booked() -> bool:
        balance = programme_balance(system, pid)
        return (
            bool(balance)
            and balance["difts_directed"] + balance["difts_expired"] == RECIPIENTS
            and balance["balance"] == 0
        )

    wait_for(booked, 120, system, "the ledger to book every dift")
    balance = programme_balance(system, pid)
    assert balance is not None
    assert balance["funded"] == RECIPIENTS * VALUE
    assert (balance["directed"], balance["expired_given"]) == (
        sum(euros * 100 for shares in chosen.values() for euros in shares.values()),
        (RECIPIENTS - DIRECTED) * VALUE,
    )
    assert (balance["balance"], balance["credited_back"]) == (0, 0)

    ledger_causes = {c["campaign_slug"]: c for c in balance["campaigns"]}
    for slug in SHORTLIST:
        after = campaign_summary(system, slug)
        assert after["difts_amount"] - before[slug]["difts_amount"] == expected[slug], slug
        assert after["difts_received"] - before[slug]["difts_received"] == difts_to[slug], slug
        assert ledger_causes[slug]["amount"] == expected[slug]
        assert ledger_causes[slug]["difts"] == difts_to[slug]
        eligible = after["donated"] - after["refunded"] + after["difts_amount"]
        assert after["meals_funded"] == eligible // after["meal_price"], slug

    def report_matches() -> bool:
        report = api(system, "GET", f"/sponsor/programmes/{pid}", sponsor_token)
        return all(
            (c["amount"], c["meals"])
            == (
                ledger_causes[c["campaign_slug"]]["amount"],
                ledger_causes[c["campaign_slug"]]["meals"],
            )
            for c in report["causes"]
        )

    wait_for(report_matches, 60, system, "the impact report to equal the ledger")
    report = api(system, "GET", f"/sponsor/programmes/{pid}", sponsor_token)
    assert report["counts"]["issued"] == RECIPIENTS
    assert report["counts"]["directed"] == DIRECTED
    assert report["counts"]["expired"] == RECIPIENTS - DIRECTED
    assert report["counts"]["sent"] == RECIPIENTS
    assert report["counts"]["opened"] >= DIRECTED
    assert sum(c["amount"] for c in report["causes"]) == RECIPIENTS * VALUE
    page = requests.get(
        f"{system.url('donations')}/programmes/{pid}/report", headers=sponsor, timeout=30
    )
    assert page.status_code == 200, log_tail(system)
    assert domain not in page.text, "the report shows aggregates only"
