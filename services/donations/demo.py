"""The demo campaign that `make run` seeds: Les Petites Cantines, 13.50 EUR a meal, with its
story, what the money is used for, and the news posts its donors received; and for company
difts two of its canteens (Bagnolet, Bruz) as campaigns of their own, a demo sponsor and its
funded, open programme with five recipients invited by email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from services.shared.money import Money

from .domain.programmes import Channel
from .handlers.campaigns import CreateCampaign, EditCampaign, edit_campaign, publish_campaign
from .handlers.news import WriteNewsPost, write_news_post
from .unit_of_work import DonationsUnitOfWork

SLUG = "petites-cantines"
# The campaign's own texts are French (what a French page shows, and the fallback); the
# English ones are its "en" translation.
TITRE = "Des cantines de quartier participatives pour (re)créer du lien"
RESUME = (
    "Dans chaque Petite Cantine, des voisins cuisinent et partagent un repas, et chacun paie "
    "ce qu’il peut. Un·e Responsable de cantine veille à ce que chacun se sente bienvenu. "
    "Chaque don de 13,50 € finance un repas et aide le réseau à ouvrir et renforcer des "
    "cantines."
)
RECIT = """\
Les Petites Cantines est un réseau de **cantines de quartier participatives**. Les habitants
cuisinent ensemble, s’assoient à la même table et partagent le repas. Chaque convive paie ce
qu’il peut : ce prix libre couvre l’essentiel des frais, si bien que personne n’est refusé ni
montré du doigt.

Dans chaque cantine, un·e *Responsable de cantine* accueille, organise la cuisine avec les
bénévoles et veille à ce que chacun trouve sa place. Le but est simple et ambitieux : relier
les gens, et redonner confiance en soi, dans les autres et en l’avenir.

L’association a été cofondée par Diane Dupré la Tour. En 2023, les 13 cantines alors ouvertes
ont servi **54 000 repas** ; une 14ᵉ a ouvert à Bruz, près de Rennes, le 2 mai 2024.

L’association est labellisée : sa solidité financière, son impact systémique et sa
contribution aux objectifs de développement durable ont été examinés.
"""
USAGES = (
    "Développer le réseau : aider des habitants à ouvrir de nouvelles cantines (local, "
    "communauté, financement, modèle économique, premier recrutement).",
    "Renforcer le réseau : accompagner au quotidien les cantines ouvertes (gestion, rôle "
    "d’employeur, accueil, cuisine, approvisionnement, plan d’hygiène, mixité des convives).",
    "Étendre l’impact : soutenir d’autres projets alimentaires de lien social, former des "
    "entreprises, essaimer.",
    "Animer le réseau : entraide, intelligence collective, bien-être des salariés et des "
    "bénévoles.",
)
TITLE = "Participatory neighbourhood canteens to (re)connect people"
CAUSE = "Les Petites Cantines"
ACTION_ZONE = "Grand Est"
SUMMARY = (
    "In each Petite Cantine, neighbours cook and share a meal together and everyone pays what "
    "they can. A Canteen Manager makes sure each person feels welcome. Every 13.50 EUR you "
    "give funds one meal and helps the network open and strengthen canteens."
)
STORY = """\
Les Petites Cantines is a network of **participatory neighbourhood canteens**. Residents cook
together, sit at the same table and share the meal. Each diner pays what they can: this free
price covers most of the running costs, so nobody is turned away and nobody is singled out.

In every canteen a *Canteen Manager* welcomes people, organises the kitchen with volunteers and
makes sure each person finds a place. The aim is simple and ambitious: bring people together,
and rebuild trust in oneself, in others and in the future.

The association was co-founded by Diane Dupré la Tour. In 2023 the 13 canteens then open served
**54,000 meals**; a 14th opened in Bruz, near Rennes, on 2 May 2024.

The association is certified: its financial stability, its systemic impact and its contribution
to the sustainable development goals were reviewed.
"""
MONEY_USES = (
    "Developing the network: helping residents open new canteens (premises, community, "
    "funding, business model, first hire).",
    "Strengthening the network: supporting open canteens day to day (admin and finance, the "
    "employer role, welcome, kitchen, supply, hygiene plan, diversity of diners).",
    "Extending the reach: supporting other food projects for social cohesion, training "
    "companies, spreading the impact.",
    "Leading the network: mutual help, collective intelligence, the well-being of staff and "
    "volunteers.",
)
MEAL_PRICE = Money(1350, "EUR")
GOAL_MEALS = 2000

# (seed key, date, title, body): the news posts donors received, oldest first.
NEWS_POSTS = (
    (
        "bruz-2024",
        datetime(2024, 5, 2, 10, tzinfo=UTC),
        "A new Petite Cantine in Bruz!",
        "Dear difteurs,\n\nOur **14th canteen** opened its doors today in Bruz, near Rennes. "
        "Neighbours have been cooking together for weeks to get ready; the first lunch was "
        "full.\n\nThank you: your meals make openings like this one possible.",
    ),
    (
        "rencontre-2024",
        datetime(2024, 9, 20, 10, tzinfo=UTC),
        "La Rencontre 2024: three days together",
        "Dear difteurs,\n\nFor three days the network's employees met to share what works, "
        "what is hard, and what they want to try next. These days are how a canteen in one "
        "town learns from a canteen in another.",
    ),
    (
        "bagnolet-2024",
        datetime(2024, 11, 16, 10, tzinfo=UTC),
        "Opening of Petites Cantines Bagnolet",
        "Dear difteurs,\n\nLes Petites Cantines Bagnolet is open! Find it at **85 Rue Sadi "
        "Carnot, Bagnolet**, for lunch from Tuesday to Friday. Come and cook, or just come "
        "and eat: everyone pays what they can.",
    ),
    (
        "training-2025",
        datetime(2025, 2, 5, 10, tzinfo=UTC),
        "Training days for eight future canteens",
        "Dear difteurs,\n\nOn 3 and 4 February, project leaders from eight territories "
        "(Forez, Bordeaux, Villefranche, Romans, Mulhouse, La Réunion, Brignais and Tassin) "
        "followed training modules 6 and 7 in Villeurbanne and Vieux Lyon.\n\nTwo more days "
        "in Vieux Lyon brought together four teams: Bagnolet, Villefranche-sur-Saône and two "
        "third places.",
    ),
    (
        "la-recette-2025",
        datetime(2025, 3, 10, 10, tzinfo=UTC),
        "Four episodes of La Recette about the canteens",
        "Dear difteurs,\n\nThe podcast *La Recette* devoted four episodes to the canteens: "
        "the people who cook, the people who come, and why a shared table changes things. "
        "A good listen for your next walk.",
    ),
    (
        "seminar-2025",
        datetime(2025, 4, 15, 10, tzinfo=UTC),
        "Our annual seminar: Fragilities and Robustness",
        "Dear difteurs,\n\nThis year's seminar asked how a network of small canteens stays "
        "strong when each of them is fragile. Spoiler: by relying on each other. And the "
        "co-founder's book, *Comme à la Maison*, tells how it all began.",
    ),
    (
        "prix-solidaire-2025",
        datetime(2025, 6, 12, 10, tzinfo=UTC),
        "The network wins the Prix Solidaire of Futur(e)s Food 2025",
        "Dear difteurs,\n\nLes Petites Cantines won the **Prix Solidaire** of Futur(e)s Food "
        "2025, chosen among 225 projects. This prize is yours too: thank you for every meal.",
    ),
)


def seed_demo_campaign(
    engine: Engine, public_url: str = "http://127.0.0.1:8001"
) -> tuple[str, bool]:
    """Create and announce the demo campaign and its news posts unless they exist; return
    (id, created). Run twice, it adds nothing."""
    english = {
        "title": TITLE,
        "summary": SUMMARY,
        "story_markdown": STORY,
        "money_uses": list(MONEY_USES),
    }
    details = {
        "cause_certified": True,
        "action_zone": ACTION_ZONE,
        "story_markdown": RECIT,
        "money_uses": list(USAGES),
        "translations": {"en": english},
    }
    texts = {"title": TITRE, "cause": CAUSE, "summary": RESUME, "goal_meals": GOAL_MEALS}
    with DonationsUnitOfWork(engine) as uow:
        campaign_id, created = publish_campaign(
            CreateCampaign(SLUG, MEAL_PRICE, {**texts, **details}), uow
        )
        campaign = uow.campaigns.get(campaign_id)
        if not created and campaign is not None and "en" not in campaign.translations:
            # A campaign seeded before it had French texts and an English translation gets them
            # once.
            edit_campaign(EditCampaign(SLUG, {**details, "title": TITRE, "summary": RESUME}), uow)
        for key, when, title, body in NEWS_POSTS:
            post = WriteNewsPost(
                SLUG,
                title=title,
                body_markdown=body,
                public_url=public_url,
                locale="en",
                seed_key=f"demo-{key}",
                published_at=when,
            )
            write_news_post(post, uow)
    return campaign_id, created


# --- company difts: two canteens of the network, a demo sponsor and its programme ------------

CANTEENS = (
    (
        "petites-cantines-bagnolet",
        {
            "title": "Petites Cantines Bagnolet",
            "cause": "Les Petites Cantines Bagnolet",
            "action_zone": "Bagnolet (Seine-Saint-Denis)",
            "summary": "The Bagnolet canteen opened on 16 November 2024 at 85 Rue Sadi Carnot, "
            "93170 Bagnolet: neighbours cook lunch together and everyone pays what they can.",
            "story_markdown": "Les Petites Cantines **Bagnolet** opened on 16 November 2024 at "
            "**85 Rue Sadi Carnot, 93170 Bagnolet**. Residents cook and share lunch together, "
            "and each diner pays what they can.",
        },
    ),
    (
        "petites-cantines-bruz",
        {
            "title": "Petites Cantines Bruz",
            "cause": "Les Petites Cantines Bruz",
            "action_zone": "Bruz (Ille-et-Vilaine), near Rennes",
            "summary": "The network's 14th canteen opened in Bruz, near Rennes, on 2 May 2024: "
            "a shared table where everyone pays what they can.",
            "story_markdown": "Les Petites Cantines **Bruz** opened on 2 May 2024, near Rennes: "
            "the network's 14th canteen. Neighbours cook together and sit at the same table.",
        },
    ),
)
DEMO_SPONSOR = {
    "legal_name": "Demo company (not a real sponsor)",
    "legal_form": "SAS",
    # A SIREN whose Luhn key checks, for the demo only.
    "siren": "732829320",
    "postal_address": "1 rue de la Démonstration, 69001 Lyon",
    "contact_email": "csr@demo-company.example",
    "brand_name": "Demo company",
}
DEMO_RECIPIENTS = (
    ("camille@example.org", "Camille", "fr"),
    ("alex@example.org", "Alex", "en"),
    ("dominique@example.org", "Dominique", "fr"),
    ("sam@example.org", "Sam", "en"),
    ("lou@example.org", "Lou", "fr"),
)
DEMO_MESSAGE = (
    "Thank you for this year together! Instead of a gift, **we offer you a dift**: choose the "
    "canteen it goes to, or split it between them."
)


def seed_demo_difts(
    engine: Engine, public_url: str = "http://127.0.0.1:8001"
) -> tuple[str, str | None]:
    """Seed the two canteens as campaigns of their own, the demo sponsor, and its programme
    of 20 EUR difts over the network and the two canteens, funded by a recorded bank transfer,
    open, with five recipients (fr and en) issued by email (notifications sends their
    invitations). Run twice, it adds nothing. Returns the programme id and the sponsor's
    access token (None when the sponsor existed: its token was printed then)."""
    from .domain.programmes import Recipient
    from .handlers import difts, programmes

    now = datetime.now(UTC)
    with DonationsUnitOfWork(engine) as uow:
        for slug, texts in CANTEENS:
            publish_campaign(CreateCampaign(slug, MEAL_PRICE, texts), uow)
        sponsor, token = programmes.register_sponsor(
            programmes.RegisterSponsor(**DEMO_SPONSOR, seed_key="demo-sponsor"), uow
        )
        programme = programmes.create_programme(
            programmes.CreateProgramme(
                sponsor_id=sponsor.id,
                name="Demo year-end difts",
                occasion="End of year",
                message_markdown=DEMO_MESSAGE,
                currency="EUR",
                dift_value=2000,
                shortlist=(SLUG, *(slug for slug, _texts in CANTEENS)),
                opens_at=now - timedelta(minutes=1),
                expires_at=now + timedelta(days=30),
                seed_key="demo-programme",
            ),
            uow,
        )
    with DonationsUnitOfWork(engine) as uow:
        transfer = programmes.RecordBankTransfer(
            programme.id, Money(20_000, "EUR"), now.date(), "DEMO-TRANSFER-0001"
        )
        programmes.record_bank_transfer(transfer, uow)
    with DonationsUnitOfWork(engine) as uow:
        programmes.open_due_programmes(uow)
    for index, (email, name, locale) in enumerate(DEMO_RECIPIENTS, start=1):
        with DonationsUnitOfWork(engine) as uow:
            difts.issue_dift(
                difts.IssueDift(
                    programme.id,
                    public_url,
                    recipient=Recipient(email, name, locale),
                    sponsor_reference=f"demo-recipient-{index}",
                    channel=Channel.EMAIL,
                ),
                uow,
            )
    return programme.id, token
