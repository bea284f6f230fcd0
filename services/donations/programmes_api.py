"""The company difts HTTP API: sponsors and programmes (admin), bank transfers received
(finance), and each sponsor's own programmes (the sponsor's access token, or an admin's):
figures, recipient files, one dift at a time, printed codes, the mécénat receipt."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from flask import Response, current_app, request
from flask_smorest import Blueprint, abort
from flask_smorest.error_handler import ErrorSchema

from services.shared.auth import protected
from services.shared.db import reading
from services.shared.money import Money

from . import programme_views
from .domain.campaigns import RuleBroken
from .domain.programmes import FallbackRule, Recipient
from .domain.recipients import RecipientFileRejected
from .handlers import difts, programmes
from .handlers.programmes import UnknownProgramme, UnknownSponsor
from .mecenat import ReceiptOrganisation, render_receipt_pdf
from .payments import PaymentProviderError
from .programme_schemas import (
    BankTransferSchema,
    CheckoutRequestSchema,
    CodesRequestSchema,
    CreditRequestSchema,
    CreditSchema,
    DiftRequestSchema,
    DiftSchema,
    FundingCheckoutSchema,
    FundingSchema,
    ProgrammeCreateSchema,
    ProgrammeEditSchema,
    ProgrammeReportSchema,
    ProgrammeSchema,
    SponsorCreateSchema,
    SponsorSchema,
    UploadSchema,
)
from .sponsor_auth import sponsor_protected
from .unit_of_work import DonationsUnitOfWork

programmes_api = Blueprint(
    "programmes",
    __name__,
    url_prefix="/api/v1",
    description="Company difts: sponsors, programmes, funding, issuing",
)

NO_PROGRAMME = "No such programme"
# What a valid request may still be refused for by the programme's state (422, field named).
STATE_FIELDS = (
    "status, budget, value, amount, count, currency, shortlist, fallback_campaign, reference"
)
SAMPLE_CSV = "email;nom;langue;valeur;reference\nada@example.org;Ada;en;20;crm-1\n"


def _error(status: int, description: str) -> Any:
    return programmes_api.alt_response(status, schema=ErrorSchema, description=description)


def _service() -> Any:
    return current_app.extensions["donations"]


def _uow() -> DonationsUnitOfWork:
    return DonationsUnitOfWork(_service().engine)


def _refuse(error: Exception) -> NoReturn:
    """Answer what refused a request: 404 for what does not exist, 409 for a state that does
    not allow it, 422 naming the field at fault."""
    if isinstance(error, UnknownProgramme):
        abort(404, message="no such programme", errors={"path": {"programme_id": ["unknown"]}})
    if isinstance(error, UnknownSponsor):
        abort(404, message="no such sponsor", errors={"path": {"sponsor_id": ["unknown"]}})
    if isinstance(error, RuleBroken):
        status = 409 if error.field == "status" else 422
        abort(status, message=error.message, errors={"json": {error.field: [error.message]}})
    raise error


def _run(change: Callable[[DonationsUnitOfWork], Any]) -> Any:
    """A change in a unit of work of its own, or the answer of what refused it."""
    try:
        with _uow() as uow:
            return change(uow)
    except (UnknownProgramme, UnknownSponsor, RuleBroken) as error:
        _refuse(error)


def _programme_answer(programme_id: str) -> dict[str, Any]:
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
        if found is None:
            abort(404, message="no such programme")
        assert found is not None
        return programme_views.programme_view(conn, found)


def _idempotency_key() -> str | None:
    """The request's Idempotency-Key header, when it is one (else a new request each time)."""
    key = request.headers.get("Idempotency-Key")
    if key and 1 <= len(key) <= 200 and key.isascii() and key.isprintable():
        return key
    return None


def _settings() -> Any:
    return _service().settings


# --- admin: sponsors and programmes ---------------------------------------------------------


@programmes_api.route("/admin/sponsors", methods=["POST"])
@protected(programmes_api, "admin")
@programmes_api.arguments(SponsorCreateSchema)
@programmes_api.response(201, SponsorSchema)
def create_sponsor(body: dict[str, Any]) -> dict[str, Any]:
    """Register a sponsor; the answer carries its access token (the sponsor role for the
    company's contact), shown this once (admin)."""
    command = programmes.RegisterSponsor(**body)
    sponsor, token = _run(lambda uow: programmes.register_sponsor(command, uow))
    with reading(_service().engine) as conn:
        answer = programme_views.sponsor_view(conn, sponsor.id)
    assert answer is not None
    return {**answer, "access_token": token}


@programmes_api.route("/admin/sponsors/<sponsor_id>", methods=["GET"])
@protected(programmes_api, "admin")
@programmes_api.response(200, SponsorSchema)
@_error(404, "No such sponsor")
def get_sponsor(sponsor_id: str) -> dict[str, Any]:
    """A sponsor and its programmes' ids (admin)."""
    with reading(_service().engine) as conn:
        answer = programme_views.sponsor_view(conn, sponsor_id)
    if answer is None:
        abort(404, message="no such sponsor", errors={"path": {"sponsor_id": ["unknown"]}})
    assert answer is not None
    return answer


@programmes_api.route("/admin/sponsors/<sponsor_id>/programmes", methods=["POST"])
@protected(programmes_api, "admin")
@programmes_api.arguments(ProgrammeCreateSchema)
@programmes_api.response(201, ProgrammeSchema)
@_error(404, "No such sponsor")
@_error(422, f"Invalid fields, or a programme its campaigns refuse (field named): {STATE_FIELDS}")
def create_programme(body: dict[str, Any], sponsor_id: str) -> dict[str, Any]:
    """Write a draft programme of a sponsor: its shortlist of 1 to 6 published campaigns (by
    slug, in order), value, dates and fallback rule (admin)."""
    command = programmes.CreateProgramme(
        sponsor_id=sponsor_id,
        name=body["name"],
        currency=body["currency"],
        dift_value=body.get("dift_value"),
        shortlist=tuple(body["shortlist"]),
        opens_at=body["opens_at"],
        expires_at=body["expires_at"],
        fallback_rule=FallbackRule(body["fallback_rule"]),
        fallback_campaign=body.get("fallback_campaign"),
        occasion=body.get("occasion", ""),
        message_markdown=body.get("message_markdown", ""),
    )
    created = _run(lambda uow: programmes.create_programme(command, uow))
    return _programme_answer(created.id)


@programmes_api.route("/admin/programmes/<programme_id>", methods=["PATCH"])
@protected(programmes_api, "admin")
@programmes_api.arguments(ProgrammeEditSchema, required=False)
@programmes_api.response(200, ProgrammeSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "Only a draft programme is edited")
@_error(422, f"Invalid fields, or a change the programme refuses (field named): {STATE_FIELDS}")
def edit_programme(body: dict[str, Any], programme_id: str) -> dict[str, Any]:
    """Edit a draft programme (admin)."""
    command = programmes.EditProgramme(programme_id, body or {})
    _run(lambda uow: programmes.edit_programme(command, uow))
    return _programme_answer(programme_id)


@programmes_api.route("/admin/programmes/<programme_id>/end", methods=["POST"])
@protected(programmes_api, "admin")
@programmes_api.response(200, ProgrammeSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "Only an open programme is ended")
@_error(422, "The programme has expired already (expires_at)")
def end_programme(programme_id: str) -> dict[str, Any]:
    """End an open programme now, before its expiry date (admin): the worker then gives every
    dift nobody directed by the fallback rule and closes the programme."""
    _run(lambda uow: programmes.end_programme_now(programme_id, uow))
    return _programme_answer(programme_id)


@programmes_api.route("/admin/programmes/<programme_id>/checkout", methods=["POST"])
@protected(programmes_api, "admin")
@programmes_api.arguments(CheckoutRequestSchema)
@programmes_api.response(201, FundingCheckoutSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "A closed programme takes no more money")
@_error(422, "Invalid fields, or an amount the programme refuses (amount)")
@_error(502, "Stripe could not be reached; nothing was stored")
def start_checkout(body: dict[str, Any], programme_id: str) -> Any:
    """Open a Stripe Checkout Session (card or SEPA debit) where the sponsor pays the
    programme's budget; the programme is funded when Stripe's webhook says it was paid
    (admin). With an Idempotency-Key header (1 to 200 printable characters) a retry opens no
    second session."""
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
    if found is None:
        abort(404, message="no such programme")
    assert found is not None
    command = programmes.StartFunding(
        programme_id,
        Money(body["amount"], found.currency),
        _settings().public_url,
        _idempotency_key() or str(uuid.uuid4()),
    )
    try:
        session = programmes.start_funding(command, _uow(), _service().payments)
    except (UnknownProgramme, RuleBroken) as error:
        _refuse(error)
    except PaymentProviderError as error:
        abort(502, message=f"the payment processor is unavailable, try again: {error}")
    return {"checkout_session_id": session.id, "checkout_url": session.url}


@programmes_api.route("/finance/programmes/<programme_id>/bank-transfers", methods=["POST"])
@protected(programmes_api, "finance")
@programmes_api.arguments(BankTransferSchema)
@programmes_api.response(201, FundingSchema)
@programmes_api.alt_response(200, schema=FundingSchema, description="Recorded before")
@_error(404, NO_PROGRAMME)
@_error(409, "A closed programme takes no more money")
def record_bank_transfer(body: dict[str, Any], programme_id: str) -> Any:
    """Record a bank transfer received for a programme: it is funded (or topped up) once per
    reference, and its mécénat receipt numbered (finance). The same reference again answers
    200 with what was recorded then."""
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
    if found is None:
        abort(404, message="no such programme")
    assert found is not None
    command = programmes.RecordBankTransfer(
        programme_id, Money(body["amount"], found.currency), body["received_on"], body["reference"]
    )
    funding, receipt, fresh = _run(lambda uow: programmes.record_bank_transfer(command, uow))
    answer = {
        "funding_id": funding.id,
        "programme_id": programme_id,
        "method": funding.method.value,
        "amount": funding.amount.amount,
        "currency": funding.amount.currency,
        "recorded": fresh,
        "receipt_id": receipt.id if receipt else None,
        "receipt_number": receipt.number if receipt else None,
    }
    return answer if fresh else (answer, 200)


@programmes_api.route("/admin/programmes/<programme_id>/credits", methods=["POST"])
@protected(programmes_api, "admin")
@programmes_api.arguments(CreditRequestSchema)
@programmes_api.response(201, CreditSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "A closed programme has nothing left")
@_error(422, "Invalid fields, or more than the budget no dift uses (amount)")
def credit_back(body: dict[str, Any], programme_id: str) -> dict[str, Any]:
    """Credit unused budget back to the sponsor (admin)."""
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
    if found is None:
        abort(404, message="no such programme")
    assert found is not None
    command = programmes.CreditBackUnused(
        programme_id, Money(body["amount"], found.currency), body["reference"]
    )
    credit = _run(lambda uow: programmes.credit_back(command, uow))
    return {
        "credit_id": credit.id,
        "programme_id": programme_id,
        "amount": credit.amount.amount,
        "currency": credit.amount.currency,
        "reason": credit.reason.value,
    }


# --- the sponsor's own programmes -----------------------------------------------------------


@programmes_api.route("/sponsor/programmes/<programme_id>", methods=["GET"])
@sponsor_protected(programmes_api)
@programmes_api.response(200, ProgrammeReportSchema)
@_error(404, NO_PROGRAMME)
def sponsor_programme(programme_id: str) -> dict[str, Any]:
    """A programme, its budget and its report's figures: difts issued, sent, opened,
    directed, expired; money and meals per cause; directions per day (aggregates only)."""
    with reading(_service().engine) as conn:
        report = programme_views.programme_report(conn, programme_id)
    if report is None:
        abort(404, message="no such programme")
    assert report is not None
    days = [
        {"day": day.isoformat(), "directed": count} for day, count in report["directions_per_day"]
    ]
    causes = [
        {
            **cause,
            "latest_news": [
                {**post, "published_at": post["published_at"].isoformat()}
                for post in cause["latest_news"]
            ],
        }
        for cause in report["causes"]
    ]
    return {**report, "causes": causes, "directions_per_day": days}


RECIPIENTS_BODY = {
    "required": True,
    "description": "The recipients as CSV (UTF-8, with or without BOM; ',' or ';'): columns "
    "email (required), name, locale (fr|en), value (major units, '20' or '20,50'), "
    "sponsor_reference; French names accepted (nom, langue, valeur/montant, reference). "
    "As the body (text/csv) or as the `file` of a form.",
    "content": {
        "text/csv": {"schema": {"type": "string"}, "example": SAMPLE_CSV},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
PROBLEMS = {
    "description": "The file stores nothing: every problem, as errors.problems "
    "[{line, column, reason}] (the first 1,000) and errors.problem_count; or a state the "
    f"programme refuses it in (field named: {STATE_FIELDS})",
    "content": {"application/json": {"schema": ErrorSchema}},
}


@programmes_api.route("/sponsor/programmes/<programme_id>/recipients", methods=["POST"])
@sponsor_protected(programmes_api)
@programmes_api.response(202, UploadSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "The programme is not open")
@_error(413, "A file over RECIPIENTS_MAX_BYTES")
@programmes_api.doc(requestBody=RECIPIENTS_BODY, responses={"422": PROBLEMS})
def upload_recipients(programme_id: str) -> dict[str, Any]:
    """Upload a recipient file: validated whole (one bad row stores nothing and answers the
    per-row report), then issued by the worker in chunks, one invitation email each; the
    answer is the upload, whose progress GET .../uploads/<id> tells."""
    request.max_content_length = _settings().recipients_max_bytes
    if request.mimetype == "multipart/form-data":
        sent = request.files.get("file")
        data = sent.read() if sent is not None else b""
    else:
        data = request.get_data()
    command = difts.AcceptRecipients(programme_id, data, _settings().recipients_max_rows)
    try:
        upload = difts.accept_recipients(command, _uow())
    except RecipientFileRejected as rejected:
        problems = [
            {"line": p.line, "column": p.column, "reason": p.reason} for p in rejected.problems
        ]
        abort(
            422,
            message=str(rejected),
            errors={
                "json": {"file": [str(rejected)]},
                "problems": problems,
                "problem_count": rejected.problem_count,
            },
        )
    except (UnknownProgramme, RuleBroken) as error:
        _refuse(error)
    with reading(_service().engine) as conn:
        answer = programme_views.upload_view(conn, programme_id, upload.id)
    assert answer is not None
    return answer


@programmes_api.route("/sponsor/programmes/<programme_id>/uploads/<upload_id>", methods=["GET"])
@sponsor_protected(programmes_api)
@programmes_api.response(200, UploadSchema)
@_error(404, "No such upload of this programme")
def upload_progress(programme_id: str, upload_id: str) -> dict[str, Any]:
    """How far the worker is in issuing a recipient file (issued of total)."""
    with reading(_service().engine) as conn:
        answer = programme_views.upload_view(conn, programme_id, upload_id)
    if answer is None:
        abort(404, message="no such upload", errors={"path": {"upload_id": ["unknown"]}})
    assert answer is not None
    return answer


def _dift_answer(issued: difts.IssuedDift) -> dict[str, Any]:
    dift = issued.dift
    return {
        "id": dift.id,
        "programme_id": dift.programme_id,
        "channel": dift.channel.value,
        "state": dift.state.value,
        "value": dift.value.amount,
        "currency": dift.value.currency,
        "sponsor_reference": dift.sponsor_reference,
        "redeem_url": issued.redeem_url,
    }


@programmes_api.route("/sponsor/programmes/<programme_id>/difts", methods=["POST"])
@sponsor_protected(programmes_api)
# No body is a dift with nothing given, as webargs reads it: the body is optional.
@programmes_api.arguments(DiftRequestSchema, required=False)
@programmes_api.response(201, DiftSchema)
@programmes_api.alt_response(
    200, schema=DiftSchema, description="Issued before under this sponsor_reference"
)
@_error(404, NO_PROGRAMME)
@_error(409, "The programme is not open")
@_error(422, f"Invalid fields, or a dift the programme refuses (field named): {STATE_FIELDS}")
def issue_dift(body: dict[str, Any], programme_id: str) -> Any:
    """Issue one dift (a loyalty integration): emailed to `recipient` if given. Idempotent by
    `sponsor_reference`: the same reference answers 200 with the same dift (its link is in
    the first answer only)."""
    body = body or {}
    given = body.get("recipient")
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
    if found is None:
        abort(404, message="no such programme")
    assert found is not None
    value = body.get("value")
    command = difts.IssueDift(
        programme_id,
        _settings().public_url,
        recipient=Recipient(given["email"], given["name"], given["locale"]) if given else None,
        value=Money(value, found.currency) if value is not None else None,
        sponsor_reference=body.get("sponsor_reference"),
    )
    issued = _run(lambda uow: difts.issue_dift(command, uow))
    answer = _dift_answer(issued)
    return answer if issued.created else (answer, 200)


CODES_ANSWER = {
    "201": {
        "description": "The codes, this once (only their digests are kept): CSV with columns "
        "code, value (minor units), currency, expires_at",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@programmes_api.route("/sponsor/programmes/<programme_id>/codes", methods=["POST"])
@sponsor_protected(programmes_api)
@programmes_api.arguments(CodesRequestSchema)
@_error(404, NO_PROGRAMME)
@_error(409, "The programme is not open")
@_error(422, f"Invalid fields, or codes the programme refuses (field named): {STATE_FIELDS}")
@programmes_api.doc(responses=CODES_ANSWER)
def create_codes(body: dict[str, Any], programme_id: str) -> Response:
    """Issue `count` anonymous printed codes (for a loyalty app or printed cards), answered
    once as a CSV download."""
    with reading(_service().engine) as conn:
        found = programme_views.programme(conn, programme_id)
    if found is None:
        abort(404, message="no such programme")
    assert found is not None
    value = body.get("value")
    command = difts.CreateCodes(
        programme_id,
        body["count"],
        _settings().public_url,
        Money(value, found.currency) if value is not None else None,
    )
    issued = _run(lambda uow: difts.create_codes(command, uow))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "value", "currency", "expires_at"])
    for code in issued:
        writer.writerow(
            [
                code.secret,
                code.dift.value.amount,
                code.dift.value.currency,
                found.expires_at.isoformat(),
            ]
        )
    return Response(
        out.getvalue(),
        status=201,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="codes-{programme_id}.csv"'},
    )


RECEIPT_ANSWER = {
    "200": {
        "description": "The mécénat receipt (CERFA 16216 mentions) as a PDF",
        "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def receipt_organisation(settings: Any) -> ReceiptOrganisation:
    """The issuing organisation's facts, from the configuration."""
    return ReceiptOrganisation(
        name=settings.receipt_organisation_name,
        address=settings.receipt_organisation_address,
        object=settings.receipt_organisation_object,
        status=settings.receipt_organisation_status,
        signatory_name=settings.receipt_signatory_name,
        signatory_role=settings.receipt_signatory_role,
        signature_place=settings.receipt_signature_place,
        siren=settings.receipt_organisation_siren or None,
    )


@programmes_api.route("/sponsor/programmes/<programme_id>/receipts/<receipt_id>", methods=["GET"])
@sponsor_protected(programmes_api)
@_error(404, "No such receipt of this programme")
@_error(409, "The funding is not in euros: no French receipt")
@programmes_api.doc(responses=RECEIPT_ANSWER)
def download_receipt(programme_id: str, receipt_id: str) -> Response:
    """Download a mécénat receipt of the programme's funding (a PDF)."""
    with reading(_service().engine) as conn:
        stored = programme_views.receipt(conn, receipt_id)
        if stored is None or stored.programme_id != programme_id:
            abort(404, message="no such receipt", errors={"path": {"receipt_id": ["unknown"]}})
        assert stored is not None
        receipt = programme_views.mecenat_receipt(conn, stored, receipt_organisation(_settings()))
    if receipt is None:
        abort(404, message="no such receipt")
    assert receipt is not None
    try:
        pdf = render_receipt_pdf(receipt)
    except ValueError as error:  # a French mécénat receipt is in euros
        abort(409, message=str(error))
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="recu-{receipt.number}.pdf"'},
    )


__all__ = ["programmes_api", "receipt_organisation"]
