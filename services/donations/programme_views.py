"""Reads about company difts for the API and the pages, straight from the database (no
handler, no domain rules): a programme as its sponsor sees it, its report's figures (counts of
difts by where they are, money and meals per cause, directions per day, the causes' latest
news; aggregates only, never a recipient), an upload's progress, and a mécénat receipt as its
PDF states it. A campaign's count of difts received is views.difts_received."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from . import store, views
from .domain.programmes import DiftState, IssuedReceipt, Programme
from .markdown_text import render_markdown
from .mecenat import MecenatReceipt, ReceiptOrganisation


def programme(conn: Connection, programme_id: str) -> Programme | None:
    """The programme, if any."""
    return store.Programmes(conn).get(programme_id)


def sponsor_of_token(conn: Connection, digest: str) -> str | None:
    """The sponsor whose access token has this digest, if any."""
    return store.Sponsors(conn).of_token(digest)


def sponsor_view(conn: Connection, sponsor_id: str) -> dict[str, Any] | None:
    """A sponsor and its programmes, as the admin API shows it."""
    sponsor = store.Sponsors(conn).get(sponsor_id)
    if sponsor is None:
        return None
    listed = store.Programmes(conn).of_sponsor(sponsor_id)
    return {
        "id": sponsor.id,
        "legal_name": sponsor.legal_name,
        "legal_form": sponsor.legal_form,
        "siren": sponsor.siren,
        "postal_address": sponsor.postal_address,
        "contact_email": sponsor.contact_email,
        "brand_name": sponsor.brand_name,
        "created_at": sponsor.created_at,
        "programmes": [p.id for p in listed],
    }


def _slugs(conn: Connection, campaign_ids: tuple[str, ...]) -> list[str]:
    campaigns = store.campaigns
    found = dict(
        conn.execute(
            select(campaigns.c.id, campaigns.c.slug).where(campaigns.c.id.in_(campaign_ids))
        ).all()
    )
    return [found[cid] for cid in campaign_ids if cid in found]


def programme_view(conn: Connection, programme: Programme) -> dict[str, Any]:
    """A programme, its budget's figures and its receipts, as the API shows it."""
    fallback = (
        _slugs(conn, (programme.fallback_campaign_id,)) if programme.fallback_campaign_id else []
    )
    receipts = store.Receipts(conn).of_programme(programme.id)
    return {
        "id": programme.id,
        "sponsor_id": programme.sponsor_id,
        "name": programme.name,
        "occasion": programme.occasion,
        "message_markdown": programme.message_markdown,
        "message_html": render_markdown(programme.message_markdown),
        "currency": programme.currency,
        "dift_value": programme.dift_value.amount if programme.dift_value else None,
        "shortlist": _slugs(conn, programme.shortlist),
        "opens_at": programme.opens_at,
        "expires_at": programme.expires_at,
        "fallback_rule": programme.fallback_rule.value,
        "fallback_campaign": fallback[0] if fallback else None,
        "status": programme.status.value,
        "budget": {
            "funded": programme.funded.amount,
            "reserved": programme.reserved.amount,
            "credited_back": programme.credited_back.amount,
            "available": programme.available.amount,
        },
        "receipts": [{"id": r.id, "number": r.number, "amount": r.amount.amount} for r in receipts],
    }


def dift_counts(conn: Connection, programme_id: str) -> dict[str, int]:
    """How many difts of a programme were issued, sent, opened, directed, expired, bounced
    (sent and opened count every dift that got that far)."""
    difts = store.difts.c
    row = conn.execute(
        select(
            func.count(),
            func.count(difts.sent_at),
            func.count(difts.opened_at),
            func.count(difts.bounced_at),
        ).where(difts.programme_id == programme_id)
    ).one()
    states: Counter[str] = Counter(
        dict(
            conn.execute(
                select(difts.state, func.count())
                .where(difts.programme_id == programme_id)
                .group_by(difts.state)
            ).all()
        )
    )
    return {
        "issued": int(row[0]),
        "sent": int(row[1]),
        "opened": int(row[2]),
        "directed": int(states[DiftState.DIRECTED.value]),
        "expired": int(states[DiftState.EXPIRED.value]),
        "bounced": int(row[3]),
    }


def programme_report(conn: Connection, programme_id: str) -> dict[str, Any] | None:
    """A programme's impact report: counts of difts, money and meals per shortlisted cause
    (directed and expired apart; meals from the ledger's bookings), directions per day, and
    the causes' latest news. Aggregates only."""
    found = programme(conn, programme_id)
    if found is None:
        return None
    allocations = store.dift_allocations.c
    money = {
        (cid, kind): (int(amount), int(count))
        for cid, kind, amount, count in conn.execute(
            select(
                allocations.campaign_id,
                allocations.kind,
                func.sum(allocations.amount),
                func.count(distinct(allocations.dift_id)),
            )
            .join(store.difts, store.difts.c.id == allocations.dift_id)
            .where(store.difts.c.programme_id == programme_id)
            .group_by(allocations.campaign_id, allocations.kind)
        ).all()
    }
    bookings = store.dift_bookings.c
    meals = dict(
        conn.execute(
            select(bookings.campaign_id, func.sum(bookings.meals))
            .where(bookings.programme_id == programme_id)
            .group_by(bookings.campaign_id)
        ).all()
    )
    causes = []
    for campaign_id in found.shortlist:
        campaign = views.campaign_by_id(conn, campaign_id)
        if campaign is None:
            continue
        directed = money.get((campaign_id, "directed"), (0, 0))
        expired = money.get((campaign_id, "expired"), (0, 0))
        posts = views.published_posts(conn, campaign_id, limit=3)
        causes.append(
            {
                "campaign_id": campaign.id,
                "campaign_slug": campaign.slug,
                "campaign_title": campaign.title,
                "cause": campaign.cause,
                "meal_price": campaign.meal_price.amount,
                "directed_amount": directed[0],
                "directed_difts": directed[1],
                "expired_amount": expired[0],
                "expired_difts": expired[1],
                "amount": directed[0] + expired[0],
                "meals": int(meals.get(campaign_id) or 0),
                "latest_news": [
                    {"id": p.id, "title": p.title, "published_at": p.published_at} for p in posts
                ],
            }
        )
    return {
        "programme": programme_view(conn, found),
        "counts": dift_counts(conn, programme_id),
        "causes": causes,
        "directions_per_day": directions_per_day(conn, programme_id),
    }


def directions_per_day(conn: Connection, programme_id: str) -> list[tuple[date, int]]:
    """How many difts of a programme were directed each day (UTC), in date order."""
    difts = store.difts.c
    moments = conn.execute(
        select(difts.directed_at).where(
            difts.programme_id == programme_id, difts.directed_at.is_not(None)
        )
    ).scalars()
    per_day = Counter(moment.date() for moment in moments)
    return sorted(per_day.items())


def upload_view(conn: Connection, programme_id: str, upload_id: str) -> dict[str, Any] | None:
    """A recipient upload's progress, if it is one of this programme's."""
    upload = store.Uploads(conn).get(upload_id)
    if upload is None or upload.programme_id != programme_id:
        return None
    return {
        "id": upload.id,
        "programme_id": upload.programme_id,
        "status": upload.status.value,
        "total": upload.total,
        "issued": upload.issued,
        "problem": upload.problem,
        "created_at": upload.created_at,
        "finished_at": upload.finished_at,
    }


def mecenat_receipt(
    conn: Connection, receipt: IssuedReceipt, organisation: ReceiptOrganisation
) -> MecenatReceipt | None:
    """A stored receipt as the PDF states it, with the sponsor's legal identity."""
    sponsor = store.Sponsors(conn).get(receipt.sponsor_id)
    if sponsor is None:
        return None
    return MecenatReceipt(
        number=receipt.number,
        organisation=organisation,
        sponsor_legal_name=sponsor.legal_name,
        sponsor_legal_form=sponsor.legal_form,
        sponsor_siren=sponsor.siren,
        sponsor_address=sponsor.postal_address,
        amount=receipt.amount,
        received_on=receipt.received_on,
        form=receipt.form,
        issued_on=receipt.issued_on,
    )


def receipt(conn: Connection, receipt_id: str) -> IssuedReceipt | None:
    """A stored mécénat receipt, if any."""
    return store.Receipts(conn).get(receipt_id)
