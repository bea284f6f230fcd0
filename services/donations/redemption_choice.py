"""A dift recipient's choice on the redemption pages: what every step shows of the offer, the
choice read from the form and checked with the domain's rules (the errors named per field, in
the page's language), and where the choice sends the dift's value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext
from werkzeug.datastructures import MultiDict

from services.shared.i18n import format_money
from services.shared.money import CURRENCY_EXPONENTS, Money, from_major_units, major_units

from .domain.campaigns import Campaign
from .domain.programmes import DiftRuleBroken, FallbackRule, direction
from .handlers.difts import DiftView
from .i18n import current_locale

MAX_SHARE_DIGITS = 7


def meals_for(amount: Money, campaign: Campaign) -> int:
    whole, _rest = amount.divmod(campaign.meal_price)
    return whole


def offer_of(view: DiftView) -> dict[str, Any]:
    """What every step shows of the dift: the brand, the message, the value, the causes."""
    programme, value = view.programme, view.dift.value
    unit = 10 ** CURRENCY_EXPONENTS[value.currency]
    by_id = {campaign.id: campaign for campaign in view.shortlist}
    fallback = programme.fallback_rule
    fallback_cause = by_id.get(programme.fallback_campaign_id or "")
    return {
        "brand": view.brand_name,
        "programme": programme.name,
        "occasion": programme.occasion,
        "message_html": view.message_html,
        "value": value,
        "whole": Money(major_units(value) * unit, value.currency),
        "cents": Money(value.amount % unit, value.currency),
        "symbol": "€" if value.currency == "EUR" else value.currency,
        "expires_at": programme.expires_at,
        "fallback": fallback.value,
        "fallback_cause": fallback_cause.cause if fallback_cause else "",
        "is_split_evenly": fallback is FallbackRule.SPLIT_EVENLY,
        "causes": [
            {"campaign": campaign, "meals": meals_for(value, campaign)}
            for campaign in view.shortlist
        ],
    }


@dataclass(frozen=True)
class Choice:
    """A recipient's choice as the form gave it, checked against the dift."""

    one_campaign_id: str | None
    shares: list[tuple[str, Money]] | None
    updates_opt_in: bool


def whole_euros(text: str) -> int | None:
    cleaned = text.strip()
    if not cleaned:
        return 0
    # ASCII digits only: other scripts' digits are digits to str.isdigit, not to a person.
    if not (cleaned.isascii() and cleaned.isdigit()) or len(cleaned) > MAX_SHARE_DIGITS:
        return None
    return int(cleaned)


def read_choice(
    form: MultiDict[str, str], view: DiftView
) -> tuple[Choice | None, dict[str, tuple[str, dict[str, Any]]]]:
    """The choice in the form, checked with the domain's rules, or the errors per field
    (field -> (text key, its values)): "choice", "campaign" or "shares"."""
    value, currency = view.dift.value, view.dift.value.currency
    ids = [campaign.id for campaign in view.shortlist]
    choice = form.get("choice", "")
    typed = {cid: form.get(f"share_{cid}", "") for cid in ids}
    if choice not in ("one", "split"):
        if any(text.strip() for text in typed.values()):
            choice = "split"
        elif form.get("campaign"):
            choice = "one"
        else:
            return None, {"choice": ("error_choice", {})}
    updates = form.get("updates_opt_in") == "on"
    whole = Money(major_units(value) * 10 ** CURRENCY_EXPONENTS[currency], currency)
    if choice == "one":
        campaign_id = form.get("campaign", "")
        try:
            direction(view.programme, value, one_campaign_id=campaign_id)
        except DiftRuleBroken:
            return None, {"campaign": ("error_one", {})}
        return Choice(campaign_id, None, updates), {}
    units = {cid: whole_euros(text) for cid, text in typed.items()}
    if any(count is None for count in units.values()):
        return None, {"shares": ("error_shares_format", {})}
    shares = [(cid, from_major_units(count or 0, currency)) for cid, count in units.items()]
    try:
        direction(view.programme, value, shares=shares)
    except DiftRuleBroken:
        total = Money(sum(share.amount for _cid, share in shares), currency)
        return None, {"shares": ("error_shares", {"whole": whole, "typed": total})}
    return Choice(None, shares, updates), {}


def allocations_of(view: DiftView, pairs: list[tuple[str, Money]]) -> list[dict[str, Any]]:
    by_id = {campaign.id: campaign for campaign in view.shortlist}
    return [
        {"campaign": by_id[cid], "amount": amount, "meals": meals_for(amount, by_id[cid])}
        for cid, amount in pairs
        if cid in by_id and amount.is_positive()
    ]


def preview_of(view: DiftView, choice: Choice) -> list[dict[str, Any]]:
    """Where the choice sends the value (the cents with the first cause, as the domain does)."""
    allocations = direction(
        view.programme,
        view.dift.value,
        one_campaign_id=choice.one_campaign_id,
        shares=choice.shares,
    )
    return allocations_of(view, [(a.campaign_id, a.amount) for a in allocations])


def error_text(key: str, values: dict[str, Any]) -> str:
    """The message next to a field for an error of read_choice, in the page's language
    (amounts in its format)."""
    written = {
        name: format_money(value, current_locale()) if isinstance(value, Money) else value
        for name, value in values.items()
    }
    if key == "error_one":
        return gettext("Choose one of the causes.")
    if key == "error_shares_format":
        return gettext("Type whole euros only, such as 10 (no cents, no signs).")
    if key == "error_shares":
        return gettext(
            "Type whole euros for each cause (0 for none), adding up to %(whole)s; "
            "these add up to %(typed)s.",
            **written,
        )
    return gettext("Choose how to give your dift: all to one cause, or shared.")
