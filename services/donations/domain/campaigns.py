"""Campaigns and their news posts: which campaigns take gifts, what a campaign manager may
change and when, how a live campaign's meal price changes from a date on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.shared.money import Money

# What a campaign manager writes about a campaign (the meal price and currency have rules of
# their own).
CAMPAIGN_FIELDS = (
    "title",
    "cause",
    "cause_certified",
    "action_zone",
    "summary",
    "story_markdown",
    "money_uses",
    "goal_meals",
)
# The texts a campaign may have in each language of the donor pages (the others, such as the
# cause's name, are the same in every language).
TRANSLATED_FIELDS = ("title", "summary", "story_markdown", "money_uses")


class RuleBroken(ValueError):
    """A request the rules refuse; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class CampaignRuleBroken(RuleBroken):
    """A change a campaign's state does not allow."""


class CampaignStatus(StrEnum):
    """Where a campaign is in its life."""

    DRAFT = "draft"
    LIVE = "live"
    CLOSED = "closed"


@dataclass(frozen=True)
class CampaignTexts:
    """What donors read of a campaign in one language; an empty text there is the campaign's
    default text (texts_in)."""

    title: str = ""
    summary: str = ""
    story_markdown: str = ""
    money_uses: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> CampaignTexts:
        """The texts among `values` (the others empty)."""
        texts = {key: values[key] for key in TRANSLATED_FIELDS if key in values}
        return cls(**{**texts, "money_uses": tuple(texts.get("money_uses", ()))})

    def is_empty(self) -> bool:
        """Nothing written in this language: the campaign's default texts stand for it."""
        return not (self.title or self.summary or self.story_markdown or self.money_uses)


@dataclass(frozen=True)
class Campaign:
    """A cause's fundraising campaign: what donors read, and the price of one meal in force."""

    id: str
    slug: str
    title: str
    cause: str
    meal_price: Money
    goal_meals: int | None
    status: CampaignStatus
    cause_certified: bool = False
    action_zone: str = ""
    summary: str = ""
    story_markdown: str = ""
    money_uses: tuple[str, ...] = field(default_factory=tuple)
    created_at: datetime | None = None
    published_at: datetime | None = None
    closed_at: datetime | None = None
    # The texts written for a language (its code: "fr", "en"); any text left empty there, and
    # any language without texts, reads the default ones above.
    translations: Mapping[str, CampaignTexts] = field(default_factory=dict)

    @classmethod
    def draft(
        cls, campaign_id: str, slug: str, meal_price: Money, texts: Mapping[str, Any], now: datetime
    ) -> Campaign:
        """A new campaign, not yet announced: its title and cause, and any other texts."""
        written = _texts(texts)
        return cls(
            id=campaign_id,
            slug=slug,
            meal_price=meal_price,
            status=CampaignStatus.DRAFT,
            created_at=now,
            **{"goal_meals": None, **written},
            translations=_translations({}, texts),
        )

    def texts_in(self, locale: str) -> CampaignTexts:
        """What a reader of `locale` sees: each text written for that language, else the
        default one (so a page never shows a blank where the other language has words)."""
        written = self.translations.get(locale, CampaignTexts())
        return CampaignTexts(
            title=written.title or self.title,
            summary=written.summary or self.summary,
            story_markdown=written.story_markdown or self.story_markdown,
            money_uses=written.money_uses or self.money_uses,
        )

    def accepts_gifts(self) -> bool:
        """Only a live campaign takes donations."""
        return self.status is CampaignStatus.LIVE

    def can_publish(self) -> bool:
        """A draft goes live once; a closed campaign stays closed."""
        return self.status is CampaignStatus.DRAFT

    def can_close(self) -> bool:
        """Only a live campaign can be closed."""
        return self.status is CampaignStatus.LIVE

    def edited(self, changes: Mapping[str, Any]) -> Campaign:
        """The campaign with new texts and goal (a draft's meal price and currency too). A
        live campaign's meal price changes only from a date on (repriced), and it keeps its
        currency."""
        draft = self.open_for_changes().status is CampaignStatus.DRAFT
        if "meal_price" in changes and not draft:
            raise CampaignRuleBroken(
                "meal_price",
                "a live campaign's meal price changes from a date: POST .../meal-price",
            )
        if "currency" in changes and not draft:
            raise CampaignRuleBroken("currency", "a live campaign keeps its currency")
        price = Money(
            changes.get("meal_price", self.meal_price.amount),
            changes.get("currency", self.meal_price.currency),
        )
        translations = _translations(self.translations, changes)
        return replace(self, meal_price=price, translations=translations, **_texts(changes))

    def gone_live(self, now: datetime) -> Campaign:
        """The draft published: it takes gifts from now."""
        if not self.can_publish():
            raise CampaignRuleBroken("status", f"campaign {self.slug!r} is {self.status.value}")
        return replace(self, status=CampaignStatus.LIVE, published_at=now)

    def closed(self, now: datetime) -> Campaign:
        """The live campaign closed: it takes no more gifts."""
        if not self.can_close():
            raise CampaignRuleBroken("status", f"campaign {self.slug!r} is {self.status.value}")
        return replace(self, status=CampaignStatus.CLOSED, closed_at=now)

    def open_for_changes(self) -> Campaign:
        """The campaign, unless it is closed: a closed campaign changes no more and publishes
        no more news."""
        if self.status is CampaignStatus.CLOSED:
            raise CampaignRuleBroken("campaign", f"campaign {self.slug!r} is closed")
        return self


def _texts(values: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign texts among `values`, as the campaign keeps them."""
    texts = {key: values[key] for key in CAMPAIGN_FIELDS if key in values}
    if "money_uses" in texts:
        texts["money_uses"] = tuple(texts["money_uses"])
    return texts


def _translations(
    current: Mapping[str, CampaignTexts], values: Mapping[str, Any]
) -> dict[str, CampaignTexts]:
    """`current` with the languages `values["translations"]` gives replaced whole; a language
    given with no text at all is removed (it reads the default texts again)."""
    kept = dict(current)
    for locale, texts in dict(values.get("translations") or {}).items():
        written = texts if isinstance(texts, CampaignTexts) else CampaignTexts.of(texts)
        if written.is_empty():
            kept.pop(locale, None)
        else:
            kept[locale] = written
    return kept


def check_meal_price_change(
    campaign: Campaign, new_price: Money, effective_from: datetime, now: datetime
) -> None:
    """A live campaign's meal price changes only from a date not in the past, in the same
    currency, so no gift already counted is re-priced silently."""
    campaign.open_for_changes()
    if new_price.currency != campaign.meal_price.currency:
        raise CampaignRuleBroken(
            "currency", f"the meal price stays in {campaign.meal_price.currency}"
        )
    if new_price.amount < 1:
        raise CampaignRuleBroken("meal_price", "a meal costs at least one minor unit")
    if effective_from < now.replace(microsecond=0):
        raise CampaignRuleBroken("effective_from", "a price change cannot take effect in the past")


@dataclass(frozen=True)
class MealPriceChange:
    """A live campaign's meal price from `effective_from` on; `previous_meal_price` is the
    price in force just before, which the ledger needs to price gifts between the two."""

    id: str
    campaign_id: str
    meal_price: Money
    previous_meal_price: int
    effective_from: datetime
    created_at: datetime


@dataclass(frozen=True)
class NewsPost:
    """A campaign's news post: published now, or when `publish_at` comes (by the worker)."""

    id: str
    campaign_id: str
    title: str
    body_markdown: str
    locale: str
    created_at: datetime
    publish_at: datetime | None = None
    published_at: datetime | None = None
    # Lets seed-demo recreate nothing when run twice.
    seed_key: str | None = None

    def due(self, now: datetime) -> bool:
        """Whether the post is to be published at `now` (one not scheduled is due at once)."""
        return self.publish_at is None or self.publish_at <= now

    def published(self, when: datetime) -> NewsPost:
        """The post published at `when`."""
        return replace(self, published_at=when)

    @property
    def status(self) -> str:
        """draft (no date: nobody publishes it yet), scheduled (the worker publishes it at
        publish_at) or published."""
        if self.published_at is not None:
            return "published"
        return "scheduled" if self.publish_at is not None else "draft"

    def revised(
        self, title: str, body_markdown: str, locale: str, publish_at: datetime | None
    ) -> NewsPost:
        """The post rewritten before its publication; a published post has been emailed to
        donors already and changes no more."""
        if self.published_at is not None:
            raise CampaignRuleBroken("post", f"news post {self.id!r} is published already")
        return replace(
            self, title=title, body_markdown=body_markdown, locale=locale, publish_at=publish_at
        )


def post_url(public_url: str, campaign_slug: str, post_id: str) -> str:
    """Where donors read one news post."""
    return f"{public_url}/campaigns/{campaign_slug}/news/{post_id}"
