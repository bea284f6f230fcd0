"""The campaign manager's forms: a campaign's facts and its texts in French and English, and a
live campaign's new meal price from a date on. Each turns what was typed into the JSON API's
body (minor units, lists, a UTC moment), so the pages and the API call the same handlers with
the same values; the API's own schema then checks the body once more."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    Field,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp
from wtforms.validators import ValidationError as FieldError

from services.shared.i18n import DEFAULT_LOCALE
from services.shared.money import CURRENCY_EXPONENTS

from ..domain.giving import parse_major_amount
from ..i18n import current_locale
from ..schemas import CampaignCreateSchema, CampaignEditSchema

# The moments a campaign manager types (a price's date and time) are Paris time, as the
# campaigns' donors and the notifications' emails read them.
OFFICE_TIMEZONE = ZoneInfo("Europe/Paris")
MAX_MONEY_USES = 20
# The texts of the default language are the campaign's own; the others are its translations.
OTHER_LOCALES = ("en",)
TEXT_FIELDS = ("title", "summary", "story_markdown", "money_uses")


def money_uses(text: str | None) -> list[str]:
    """What the money is used for, one use per line (blank lines dropped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _uses_fit(_form: Any, field: Field) -> None:
    """At most MAX_MONEY_USES uses of 500 characters each (the API's limits)."""
    uses = money_uses(field.data)
    if len(uses) > MAX_MONEY_USES:
        raise FieldError(_l("At most %(count)d uses, one per line.", count=MAX_MONEY_USES))
    if any(len(use) > 500 for use in uses):
        raise FieldError(_l("Each use is at most 500 characters."))


def _title(language: Any, required: bool) -> StringField:
    checks = [DataRequired()] if required else [Optional()]
    return StringField(language, validators=[*checks, Length(max=300)])


class CampaignForm(FlaskForm):
    """A campaign's facts and texts, as an edit shows them (a live one without its price)."""

    cause = StringField(_l("Cause (the association's name)"), [DataRequired(), Length(max=300)])
    cause_certified = BooleanField(_l("Certified association"))
    action_zone = StringField(_l("Action zone"), [Length(max=200)])
    meal_price = StringField(_l("Price of one meal"), [DataRequired(), Length(max=12)])
    currency = SelectField(_l("Currency"), choices=sorted(CURRENCY_EXPONENTS))
    goal_meals = IntegerField(
        _l("Goal (meals)"), [Optional(), NumberRange(min=1, max=10**8)], render_kw={"min": 1}
    )
    title = _title(_l("Title in French"), required=True)
    summary = TextAreaField(_l("Summary in French"), [Length(max=2000)])
    story_markdown = TextAreaField(_l("Story in French (Markdown)"), [Length(max=50_000)])
    money_uses = TextAreaField(_l("Uses of the money in French, one per line"), [_uses_fit])
    title_en = _title(_l("Title in English"), required=False)
    summary_en = TextAreaField(_l("Summary in English"), [Length(max=2000)])
    story_markdown_en = TextAreaField(_l("Story in English (Markdown)"), [Length(max=50_000)])
    money_uses_en = TextAreaField(_l("Uses of the money in English, one per line"), [_uses_fit])

    def validate_meal_price(self, field: Field) -> None:
        """A price such as 13,50 or 13.50 in the chosen currency, at least one minor unit."""
        if self.price() is None:
            raise FieldError(_l("Type a price such as 13.50 (at most two decimals)."))

    def price(self) -> int | None:
        """The meal price typed, in minor units of the chosen currency (None if unreadable)."""
        exponent = CURRENCY_EXPONENTS.get(self.currency.data or "", 2)
        amount = parse_major_amount(self.meal_price.data or "", exponent)
        return amount if amount and amount <= 10**7 else None

    def fill(self, campaign: Any) -> None:
        """The form showing a stored campaign (before anything is typed)."""
        self.cause.data = campaign.cause
        self.cause_certified.data = campaign.cause_certified
        self.action_zone.data = campaign.action_zone
        exponent = CURRENCY_EXPONENTS[campaign.meal_price.currency]
        whole, cents = divmod(campaign.meal_price.amount, 10**exponent)
        mark = "," if current_locale() == "fr" else "."
        self.meal_price.data = f"{whole}{mark}{cents:0{exponent}d}" if exponent else str(whole)
        self.currency.data = campaign.meal_price.currency
        self.goal_meals.data = campaign.goal_meals
        self.title.data = campaign.title
        self.summary.data = campaign.summary
        self.story_markdown.data = campaign.story_markdown
        self.money_uses.data = "\n".join(campaign.money_uses)
        for locale in OTHER_LOCALES:
            written = campaign.translations.get(locale)
            if written is None:
                continue
            self[f"title_{locale}"].data = written.title
            self[f"summary_{locale}"].data = written.summary
            self[f"story_markdown_{locale}"].data = written.story_markdown
            self[f"money_uses_{locale}"].data = "\n".join(written.money_uses)

    def body(self) -> dict[str, Any]:
        """What was typed as the API's body: the default language's texts are the campaign's
        own (a translation in that language is removed, so the page shows what is edited here),
        each other language's are its translation."""
        body: dict[str, Any] = {
            "cause": (self.cause.data or "").strip(),
            "cause_certified": bool(self.cause_certified.data),
            "action_zone": (self.action_zone.data or "").strip(),
            "goal_meals": self.goal_meals.data,
            "title": (self.title.data or "").strip(),
            "summary": (self.summary.data or "").strip(),
            "story_markdown": self.story_markdown.data or "",
            "money_uses": money_uses(self.money_uses.data),
            "translations": {DEFAULT_LOCALE: {}},
        }
        for locale in OTHER_LOCALES:
            body["translations"][locale] = {
                "title": (self[f"title_{locale}"].data or "").strip(),
                "summary": (self[f"summary_{locale}"].data or "").strip(),
                "story_markdown": self[f"story_markdown_{locale}"].data or "",
                "money_uses": money_uses(self[f"money_uses_{locale}"].data),
            }
        if "meal_price" in self:
            body["meal_price"] = self.price()
            body["currency"] = self.currency.data
        return body

    def checked_body(self, schema: type[CampaignEditSchema] = CampaignEditSchema) -> Any:
        """The body once the API's schema has read it too; a field it refuses gets an error
        next to it on the form (and None is answered)."""
        try:
            return schema().load(self.body())
        except ValidationError as error:
            for name in error.normalized_messages():
                target = name if name in self else "title"
                self[target].errors = [*self[target].errors, _l("This value cannot be kept.")]
            return None


class NewCampaignForm(CampaignForm):
    """A new campaign: its address (slug) too."""

    slug = StringField(
        _l("Address (slug)"),
        [
            DataRequired(),
            Length(min=3, max=100),
            Regexp(
                r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
                message=_l("Lower-case letters and digits, words joined by -."),
            ),
        ],
    )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "slug": (self.slug.data or "").strip()}

    def checked_body(self, schema: type[CampaignEditSchema] = CampaignCreateSchema) -> Any:
        return super().checked_body(schema)


class MealPriceForm(FlaskForm):
    """A live campaign's new meal price, from a day and time (Paris time) on."""

    meal_price = StringField(_l("New price of one meal"), [DataRequired(), Length(max=12)])
    effective_from = DateTimeLocalField(
        _l("From (Paris time)"),
        [DataRequired(message=_l("Give a date and a time."))],
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
    )

    def __init__(self, currency: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    def validate_meal_price(self, field: Field) -> None:
        """A price such as 14,00 in the campaign's currency."""
        if self.price() is None:
            raise FieldError(_l("Type a price such as 14.00 (at most two decimals)."))

    def price(self) -> int | None:
        """The price typed in minor units (None if unreadable)."""
        amount = parse_major_amount(self.meal_price.data or "", CURRENCY_EXPONENTS[self.currency])
        return amount if amount and amount <= 10**7 else None

    def moment(self) -> datetime:
        """The day and time typed, Paris time, as a UTC moment."""
        typed: datetime = self.effective_from.data
        return typed.replace(tzinfo=OFFICE_TIMEZONE).astimezone(UTC)
