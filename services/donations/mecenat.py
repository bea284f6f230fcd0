"""The mécénat receipt a company gets when its programme is funded: a PDF carrying the
mentions of the official form CERFA n° 16216 (2041-MEC-SD, "reçu des dons et versements
effectués par les entreprises au titre de l'article 238 bis du code général des impôts"),
so the sponsor can claim the tax reduction for its gift.

The administration allows a receipt of its own layout as long as it carries every mention of
the form (an organisation states only the status that applies to it): the receipt's number,
the receiving organisation (name, address, object, status), the giving company (name, legal
form, SIREN, full address), the amount in figures (framed by asterisks, as computer-made
receipts do) and in words, the date of the payment, the form, nature and payment method of
the gift, the certification under article 238 bis, and the date, place and signatory.

The organisation's facts come from the donations service's configuration (one issuing
organisation): name, address, object, status, SIREN (optional), the signatory's name and
role, the place of signature. The receipt number ("2026-000001": year and sequence, unique
and without gaps per issuing organisation and year) is allocated when the programme is funded.

ReportLab writes the PDF: its standard fonts (WinAnsi) print French accents and the euro sign
without shipping a font file. num2words writes the amount in words.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

from num2words import num2words
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.shared.i18n import format_day_pattern, format_money
from services.shared.money import Money

CERFA = "Cerfa n° 16216*02"
TITLE = (
    "Reçu des dons et versements effectués par les entreprises au titre de l'article "
    "238 bis du code général des impôts"
)
CERTIFICATION = (
    "Le bénéficiaire certifie sur l'honneur que les dons et versements qu'il reçoit ouvrent "
    "droit à la réduction d'impôt prévue à l'article 238 bis du code général des impôts."
)
# What the form offers for each choice; the receipt ticks the one that applies.
GIFT_FORMS = ("Acte authentique", "Acte sous seing privé", "Déclaration de don manuel", "Autres")
NATURES = ("Numéraire", "Titres de sociétés cotés", "Autres")
NBSP = "\u00a0"
PAYMENT_METHODS = ("Remise d'espèces", "Chèque", "Virement, prélèvement, carte bancaire")


@dataclass(frozen=True)
class ReceiptOrganisation:
    """The organisation that receives the money and signs the receipt."""

    name: str
    address: str
    object: str
    # Its status as the form words it, e.g. "Œuvre ou organisme d'intérêt général".
    status: str
    signatory_name: str
    signatory_role: str
    signature_place: str
    siren: str | None = None


@dataclass(frozen=True)
class MecenatReceipt:
    """One receipt: which organisation received how much from which company, when and how.

    `form` is how the money came ("virement", "prélèvement" or "carte bancaire": the form's
    "mode de versement"); `gift_form` and `nature` are the form's "forme du don" and "nature
    du don" (an online payment is a manual gift of money)."""

    number: str
    organisation: ReceiptOrganisation
    sponsor_legal_name: str
    sponsor_legal_form: str
    sponsor_siren: str
    sponsor_address: str
    amount: Money
    received_on: date
    form: str
    issued_on: date
    nature: str = "Numéraire"
    gift_form: str = "Déclaration de don manuel"

    def __post_init__(self) -> None:
        if self.amount.currency != "EUR":
            raise ValueError("a French mécénat receipt is in euros")
        if not self.amount.is_positive():
            raise ValueError("a receipt is for a positive amount")


# A French legal document whatever the reader's language; CLDR's narrow and plain no-break
# spaces become plain spaces, which the PDF's standard fonts (WinAnsi) lack.
RECEIPT_LOCALE = "fr"
PLAIN_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


def amount_in_figures(amount: Money) -> str:
    """ "2 000,00 €": CLDR's French format (babel), with plain spaces for the PDF's fonts."""
    return format_money(amount, RECEIPT_LOCALE).translate(PLAIN_SPACES)


def amount_in_words(amount: Money) -> str:
    """The amount in French words: "deux mille euros", "un million d'euros",
    "vingt euros et cinquante centimes"."""
    units, cents = divmod(amount.amount, 100)
    words = num2words(units, lang="fr")
    if units >= 1_000_000 and units % 1_000_000 == 0:
        euros = f"{words} d'euros"  # "un million d'euros", "deux milliards d'euros"
    else:
        euros = f"{words} euro{'s' if units > 1 else ''}"
    if cents:
        euros += f" et {num2words(cents, lang='fr')} centime{'s' if cents > 1 else ''}"
    return euros


def _siren(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    if len(digits) != 9:
        return number
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def _date(day: date) -> str:
    """The form's jj/mm/aaaa, through CLDR's French calendar (babel)."""
    return format_day_pattern(day, "dd/MM/yyyy", RECEIPT_LOCALE)


def _payment_method_box(form: str) -> str:
    """The form's payment-method box that covers `form` (a transfer, a debit or a card)."""
    lowered = form.lower()
    if "espèce" in lowered:
        return PAYMENT_METHODS[0]
    if "chèque" in lowered or "cheque" in lowered:
        return PAYMENT_METHODS[1]
    return PAYMENT_METHODS[2]


def _markup(text: str) -> str:
    """`text` as Paragraph markup: escaped, its line breaks kept (addresses)."""
    return escape(text).replace("\n", "<br/>")


def _ticks(options: tuple[str, ...], chosen: str) -> str:
    # No-break spaces keep each box with its words when the line wraps.
    return "   ".join(
        f"[{'X' if option == chosen else NBSP}]{NBSP}{option.replace(' ', NBSP)}"
        for option in options
    )


def receipt_lines(receipt: MecenatReceipt) -> list[tuple[str, str]]:
    """The receipt's content as (heading, text) pairs in print order; the PDF lays them out
    (a heading of "" continues the section above)."""
    org = receipt.organisation
    figures = amount_in_figures(receipt.amount)
    method = _payment_method_box(receipt.form)
    lines = [
        ("Numéro d'ordre du reçu", receipt.number),
        ("§", "Organisme bénéficiaire des dons et versements"),
        ("Dénomination", org.name),
    ]
    if org.siren:
        lines.append(("N° SIREN", _siren(org.siren)))
    lines += [
        ("Adresse", org.address),
        ("Objet", org.object),
        ("Qualité de l'organisme", f"[X] {org.status}"),
        ("§", "Entreprise donatrice"),
        ("Dénomination", receipt.sponsor_legal_name),
        ("Forme juridique", receipt.sponsor_legal_form),
        ("N° SIREN", _siren(receipt.sponsor_siren)),
        ("Adresse", receipt.sponsor_address),
        ("§", "Dons et versements"),
        (
            "Montant",
            "Le bénéficiaire reconnaît avoir reçu au titre des dons et versements ouvrant "
            f"droit à réduction d'impôt la somme de : ***{figures}***",
        ),
        ("Somme en toutes lettres", amount_in_words(receipt.amount)),
        ("Date du versement ou du don", _date(receipt.received_on)),
        ("", CERTIFICATION),
        ("Forme du don", _ticks(GIFT_FORMS, receipt.gift_form)),
        ("Nature du don", _ticks(NATURES, receipt.nature)),
        (
            "Mode de versement du don (don en numéraire)",
            f"{_ticks(PAYMENT_METHODS, method)} (ici : {receipt.form})",
        ),
        ("§", "Date et signature"),
        ("Fait à", f"{org.signature_place}, le {_date(receipt.issued_on)}"),
        ("Signataire", f"{org.signatory_name}, {org.signatory_role}"),
    ]
    return lines


def render_receipt_pdf(receipt: MecenatReceipt) -> bytes:
    """The receipt as an A4 PDF, one page."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Reçu {receipt.number}",
        author=receipt.organisation.name,
        subject=TITLE,
    )
    styles = getSampleStyleSheet()
    body = ParagraphStyle("receipt", parent=styles["BodyText"], fontSize=9.5, leading=12)
    label = ParagraphStyle("label", parent=body, fontName="Helvetica-Bold")
    section = ParagraphStyle(
        "section", parent=styles["Heading3"], fontSize=11, spaceBefore=8, spaceAfter=2
    )
    story: list = [
        Paragraph(escape(CERFA), ParagraphStyle("cerfa", parent=body, alignment=2)),
        Paragraph(escape(TITLE), styles["Heading2"]),
        Spacer(1, 2 * mm),
    ]
    rows: list[list[Paragraph]] = []

    def flush() -> None:
        if rows:
            table = Table(rows, colWidths=[52 * mm, None])
            table.setStyle(
                TableStyle(
                    [
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                    ]
                )
            )
            story.append(table)
            rows.clear()

    for heading, text in receipt_lines(receipt):
        if heading == "§":
            flush()
            story.append(Paragraph(escape(text), section))
        elif heading == "":
            flush()
            story.append(Spacer(1, 2 * mm))
            story.append(Paragraph(f"<i>{_markup(text)}</i>", body))
        else:
            rows.append([Paragraph(_markup(heading), label), Paragraph(_markup(text), body)])
    flush()
    document.build(story)
    return buffer.getvalue()
