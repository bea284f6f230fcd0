"""Difts, from issuing to their end: issue one (the API, idempotent by the sponsor's own
reference), a recipient file (validated whole, stored as an upload the worker issues in
chunks), or N anonymous printed codes (returned once); open and direct one (its recipient's
choice); expire what nobody directed after the programme's expiry (the fallback rule) and close
the programme; and keep what notifications (invitation sent or bounced) and the ledger (what
each allocation funded) report about difts.

Every dift issued queues DIFT_ISSUED in the same transaction (an email's and the API's carry
the secret link `<public url>/difts/<link token>`; a printed code carries no recipient and no
URL). The database keeps only the digest of a link token or code (codes.code_digest).

What the redemption pages (H4) call, each in a unit of work they open:

- `open_dift(secret, uow) -> DiftView`: the dift of a link token or a printed code (as typed);
  marks it opened once. Raises UnknownDift (no such dift, or a cut or mistyped code),
  DiftAlreadyDirected, DiftExpired (both from domain.programmes, RuleBroken with field "dift").
- `direct_dift(DirectDift(secret, allocations, one_campaign_id, updates_opt_in), uow) -> Dift`:
  `allocations` is [(campaign_id, Money in whole units)] for a split, or None with
  `one_campaign_id` for all to one cause. Checks with the domain (DiftRuleBroken naming
  "allocations" / "campaign_id"); the state change is a conditional UPDATE, so of two
  concurrent submits one wins and the other gets DiftAlreadyDirected.
- The printed-code rate limit: `redemption_allowed(client, uow, now)` before trying a code
  (False: answer 429), and `record_wrong_code(client, uow, now)` in a unit of work of its own
  after an UnknownDift (the failed attempt's own transaction rolled back).
- `DiftView` (below): the dift, its programme, the sponsor's brand, the shortlisted campaigns
  in order and the company's message as safe HTML.
- Report figures: services/donations/programme_views.py (`programme_report(conn, id)`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.shared.envelope import CloudEvent
from services.shared.money import Money

from ..domain import codes
from ..domain.campaigns import Campaign
from ..domain.programmes import (
    UNDIRECTED,
    Channel,
    Dift,
    DiftAlreadyDirected,
    DiftExpired,
    DiftRuleBroken,
    DiftState,
    Programme,
    ProgrammeRuleBroken,
    ProgrammeStatus,
    Recipient,
    RecipientUpload,
    Sponsor,
    UploadRow,
    UploadStatus,
    direction,
)
from ..domain.recipients import RecipientFileRejected, RowProblem, parse_recipients
from ..markdown_text import render_markdown
from . import UnitOfWork
from .programmes import keep_credit, require_programme, require_sponsor
from .publishing import publish_dift_directed, publish_dift_expired, publish_dift_issued

log = logging.getLogger(__name__)

# The printed-code rate limit's defaults: this many wrong codes per client in the window.
WRONG_CODES_ALLOWED = 10
WRONG_CODES_WINDOW = timedelta(minutes=10)
MAX_CODES_AT_ONCE = 1_000


class UnknownDift(LookupError):
    """No dift has this link or code (or the code is cut or mistyped)."""


@dataclass(frozen=True)
class DiftView:
    """A dift as its redemption page shows it."""

    dift: Dift
    programme: Programme
    brand_name: str
    shortlist: tuple[Campaign, ...]
    message_html: str


@dataclass(frozen=True)
class IssuedDift:
    """A dift issued now or found again: its secret (link token or printed code) and its
    link only when it was issued now (the database keeps neither)."""

    dift: Dift
    created: bool
    secret: str | None = None
    redeem_url: str | None = None


def redeem_url(public_url: str, token: str) -> str:
    """The secret link a dift's invitation carries."""
    return f"{public_url}/difts/{token}"


def _shortlist(uow: UnitOfWork, programme: Programme) -> list[Campaign]:
    listed = [uow.campaigns.get(cid) for cid in programme.shortlist]
    return [c for c in listed if c is not None]


class _Issuer:
    """Issues difts of one programme in one transaction: the programme locked and read once,
    its budget reserved dift by dift, saved at the end."""

    def __init__(self, uow: UnitOfWork, programme_id: str, public_url: str) -> None:
        self.uow = uow
        self.programme = require_programme(uow, programme_id, lock=True)
        self.sponsor: Sponsor = require_sponsor(uow, self.programme.sponsor_id)
        self.shortlist = _shortlist(uow, self.programme)
        self.public_url = public_url

    def issue(
        self,
        channel: Channel,
        value: Money | None,
        recipient: Recipient | None = None,
        sponsor_reference: str | None = None,
        upload_id: str | None = None,
    ) -> IssuedDift:
        now = datetime.now(UTC)
        if sponsor_reference is not None:
            known = self.uow.difts.by_reference(self.programme.id, sponsor_reference)
            if known is not None:
                return IssuedDift(known, created=False)
        worth = self.programme.value_of(value)
        self.programme = self.programme.reserving(worth, now)
        dift, event = Dift.issue(
            str(uuid.uuid4()),
            self.programme,
            channel,
            worth,
            now,
            recipient=recipient,
            sponsor_reference=sponsor_reference,
            upload_id=upload_id,
        )
        if channel is Channel.CODE:
            secret = codes.new_printed_code()
            url = None
        else:
            secret = codes.new_link_token()
            url = redeem_url(self.public_url, secret)
        self.uow.difts.add(dift, codes.code_digest(secret))
        publish_dift_issued(self.uow, event, self.programme, self.sponsor, self.shortlist, url)
        return IssuedDift(dift, created=True, secret=secret, redeem_url=url)

    def done(self) -> None:
        self.uow.programmes.save(self.programme)


@dataclass(frozen=True)
class IssueDift:
    """One dift through the API (a loyalty integration): to a named recipient (then an
    invitation is emailed) or not; its value when the programme's is per recipient."""

    programme_id: str
    public_url: str
    recipient: Recipient | None = None
    value: Money | None = None
    sponsor_reference: str | None = None
    # EMAIL for a dift a sponsor's list names (the demo's); API for a loyalty integration.
    channel: Channel = Channel.API


def issue_dift(command: IssueDift, uow: UnitOfWork) -> IssuedDift:
    """Issue one dift, or find the one issued before under the same sponsor reference."""
    issuer = _Issuer(uow, command.programme_id, command.public_url)
    issued = issuer.issue(
        command.channel, command.value, command.recipient, command.sponsor_reference
    )
    issuer.done()
    return issued


@dataclass(frozen=True)
class CreateCodes:
    """N anonymous printed codes for a loyalty app or printed cards."""

    programme_id: str
    count: int
    public_url: str
    value: Money | None = None


def create_codes(command: CreateCodes, uow: UnitOfWork) -> list[IssuedDift]:
    """Issue `count` difts as printed codes (returned once: only digests are kept)."""
    if not 1 <= command.count <= MAX_CODES_AT_ONCE:
        raise ProgrammeRuleBroken("count", f"1 to {MAX_CODES_AT_ONCE} codes at once")
    issuer = _Issuer(uow, command.programme_id, command.public_url)
    worth = issuer.programme.value_of(command.value)
    if issuer.programme.available < worth * command.count:
        raise ProgrammeRuleBroken(
            "count", f"the budget left ({issuer.programme.available.amount}) is not enough"
        )
    issued = [issuer.issue(Channel.CODE, worth) for _ in range(command.count)]
    issuer.done()
    return issued


# --- recipient files --------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptRecipients:
    """A sponsor's recipient file (CSV bytes) for a programme."""

    programme_id: str
    data: bytes
    max_rows: int = 50_000


def accept_recipients(command: AcceptRecipients, uow: UnitOfWork) -> RecipientUpload:
    """Validate a recipient file whole (RecipientFileRejected with every problem: nothing is
    stored) and store it as an upload the worker issues in chunks. The file is parsed before
    the transaction opens (`uow` given unopened); its total must fit the budget left."""
    with uow:
        programme = require_programme(uow, command.programme_id)
    if programme.status is not ProgrammeStatus.OPEN:
        raise ProgrammeRuleBroken("status", f"a {programme.status.value} programme issues no difts")
    rows = parse_recipients(command.data, programme.currency, max_rows=command.max_rows)
    problems: list[RowProblem] = []
    total = Money.zero(programme.currency)
    for row in rows:
        try:
            total = total + programme.value_of(row.value)
        except ProgrammeRuleBroken as refused:
            problems.append(RowProblem(row.line, "value", refused.message))
    if problems:
        raise RecipientFileRejected(problems)
    now = datetime.now(UTC)
    upload = RecipientUpload(
        str(uuid.uuid4()), programme.id, UploadStatus.ISSUING, len(rows), 0, now
    )
    stored = [
        UploadRow(
            upload.id,
            row.line,
            row.email,
            row.name,
            row.locale,
            row.value.amount if row.value is not None else None,
            row.sponsor_reference,
        )
        for row in rows
    ]
    with uow:
        programme = require_programme(uow, command.programme_id, lock=True)
        if programme.available < total:
            raise RecipientFileRejected(
                [
                    RowProblem(
                        1,
                        "value",
                        f"the file's difts total {total.amount}; the budget left is "
                        f"{programme.available.amount}",
                    )
                ]
            )
        uow.uploads.add(upload, stored)
    return upload


def issue_upload_chunk(upload_id: str, uow: UnitOfWork, public_url: str, chunk: int = 500) -> int:
    """Issue the next `chunk` rows of an upload (in this transaction), one email invitation
    each; the upload is done after its last row, or stopped if the budget runs out. How many
    were issued."""
    upload = uow.uploads.get(upload_id, lock=True)
    if upload is None or upload.status is not UploadStatus.ISSUING:
        return 0
    rows = uow.uploads.next_rows(upload_id, chunk)
    now = datetime.now(UTC)
    if not rows:
        uow.uploads.save(replace(upload, status=UploadStatus.DONE, finished_at=now))
        return 0
    issuer = _Issuer(uow, upload.programme_id, public_url)
    issued = 0
    problem = None
    for row in rows:
        value = Money(row.value, issuer.programme.currency) if row.value is not None else None
        recipient = Recipient(row.email, row.name, row.locale)
        try:
            with uow.savepoint():
                done = issuer.issue(
                    Channel.EMAIL, value, recipient, row.sponsor_reference, upload.id
                )
        except ProgrammeRuleBroken as refused:
            problem = f"line {row.line}: {refused.message}"
            break
        uow.uploads.row_issued(upload.id, row.line, done.dift.id)
        issued += 1
    issuer.done()
    progressed = replace(upload, issued=upload.issued + issued)
    if problem is not None:
        progressed = replace(
            progressed, status=UploadStatus.STOPPED, problem=problem, finished_at=now
        )
    elif progressed.issued >= progressed.total:
        progressed = replace(progressed, status=UploadStatus.DONE, finished_at=now)
    uow.uploads.save(progressed)
    return issued


# --- recipients open and direct -----------------------------------------------------------------


def _find(uow: UnitOfWork, secret: str) -> Dift:
    """The dift of a link token or a printed code as typed; UnknownDift if none."""
    text = (secret or "").strip()
    if not text or len(text) > 200:
        raise UnknownDift("no such dift")
    code = codes.read_printed_code(text)
    found = uow.difts.by_secret(codes.code_digest(code)) if code is not None else None
    if found is None:
        found = uow.difts.by_secret(codes.code_digest(text))
    if found is None:
        raise UnknownDift("no such dift")
    return found


def _view(uow: UnitOfWork, dift: Dift, programme: Programme) -> DiftView:
    sponsor = require_sponsor(uow, programme.sponsor_id)
    return DiftView(
        dift,
        programme,
        sponsor.brand_name,
        tuple(_shortlist(uow, programme)),
        render_markdown(programme.message_markdown),
    )


def open_dift(secret: str, uow: UnitOfWork, now: datetime | None = None) -> DiftView:
    """The dift a recipient opened, marked opened the first time. UnknownDift,
    DiftAlreadyDirected or DiftExpired when it cannot be directed (nothing changes)."""
    now = now or datetime.now(UTC)
    dift = _find(uow, secret)
    programme = require_programme(uow, dift.programme_id)
    if dift.state is DiftState.DIRECTED:
        raise DiftAlreadyDirected()
    if dift.state is DiftState.EXPIRED or not programme.accepts_directions(now):
        raise DiftExpired()
    if dift.state is not DiftState.OPENED:
        opened, _event = dift.opened(now)
        if uow.difts.move(dift, opened):
            dift = opened
    return _view(uow, dift, programme)


def view_dift(secret: str, uow: UnitOfWork) -> DiftView:
    """The dift of a link or code as it stands (a thank-you page), changing nothing."""
    dift = _find(uow, secret)
    return _view(uow, dift, require_programme(uow, dift.programme_id))


@dataclass(frozen=True)
class DirectDift:
    """A recipient's choice: all to one shortlisted campaign, or a split in whole units."""

    secret: str
    allocations: Sequence[tuple[str, Money]] | None = None
    one_campaign_id: str | None = None
    updates_opt_in: bool = False


def direct_dift(command: DirectDift, uow: UnitOfWork, now: datetime | None = None) -> Dift:
    """Direct a dift once: the allocations (checked by the domain) are kept and
    DIFT_DIRECTED queued. The state change is conditional on the state read, so of two
    concurrent submits one wins and the other raises DiftAlreadyDirected."""
    now = now or datetime.now(UTC)
    dift = _find(uow, command.secret)
    programme = require_programme(uow, dift.programme_id)
    if dift.state is not DiftState.DIRECTED and (
        dift.state is DiftState.EXPIRED or not programme.accepts_directions(now)
    ):
        raise DiftExpired()
    allocations = direction(
        programme,
        dift.value,
        one_campaign_id=command.one_campaign_id,
        shares=command.allocations,
    )
    directed, event = dift.directed(allocations, command.updates_opt_in, now)
    if not uow.difts.move(dift, directed, "directed"):
        raise DiftAlreadyDirected()
    sponsor = require_sponsor(uow, programme.sponsor_id)
    publish_dift_directed(uow, event, programme, sponsor)
    log.info("dift directed", extra={"dift_id": dift.id, "programme_id": programme.id})
    return directed


def redemption_allowed(
    client: str,
    uow: UnitOfWork,
    now: datetime | None = None,
    allowed: int = WRONG_CODES_ALLOWED,
    window: timedelta = WRONG_CODES_WINDOW,
) -> bool:
    """Whether a client may try a printed code now (fewer wrong ones than `allowed` within
    `window`)."""
    now = now or datetime.now(UTC)
    return uow.redemptions.wrong_since(client, now - window) < allowed


def record_wrong_code(client: str, uow: UnitOfWork, now: datetime | None = None) -> None:
    """Count one wrong code of a client towards the rate limit."""
    uow.redemptions.record_wrong(client, now or datetime.now(UTC))


# --- expiry and closing -------------------------------------------------------------------------


def expire_programme(
    programme_id: str, uow: UnitOfWork, now: datetime | None = None, chunk: int = 500
) -> tuple[int, bool]:
    """Expire up to `chunk` undirected difts of a programme past its expiry (the fallback
    rule's allocations, DIFT_EXPIRED each), and close the programme once none is left,
    crediting back what remains so its balance ends at zero. Returns (difts expired, closed)."""
    now = now or datetime.now(UTC)
    programme = require_programme(uow, programme_id, lock=True)
    if programme.status not in (ProgrammeStatus.OPEN, ProgrammeStatus.FUNDED):
        return 0, False
    if now < programme.expires_at:
        return 0, False
    expired = 0
    for dift in uow.difts.undirected(programme.id, chunk):
        gone, event = dift.expired(programme, now)
        if not uow.difts.move(dift, gone, "expired"):
            continue  # directed meanwhile: the recipient's choice stands
        if not gone.allocations:
            programme = programme.expiring_to_credit(gone.value)
        publish_dift_expired(uow, event, programme)
        expired += 1
    closed = False
    if uow.difts.count_undirected(programme.id) == 0:
        programme, credits = programme.closed((str(uuid.uuid4()), str(uuid.uuid4())), now)
        for credit in credits:
            keep_credit(uow, credit)
        closed = True
    uow.programmes.save(programme)
    return expired, closed


# --- what other services report ---------------------------------------------------------------


def record_invitation_sent(event: CloudEvent, uow: UnitOfWork) -> None:
    """DIFT_INVITATION_SENT: an issued dift's invitation left (it is sent) or bounced (the
    bounce is recorded); a reminder, or a dift already further, changes nothing."""
    data = event.data
    if data["kind"] != "invitation":
        return
    dift = uow.difts.get(data["dift_id"])
    if dift is None or dift.state is not DiftState.ISSUED:
        return
    try:
        sent, _ = dift.sent(data["at"], bounced=data["status"] == "bounced")
    except DiftRuleBroken:
        return
    uow.difts.move(dift, sent)


def record_dift_booked(event: CloudEvent, uow: UnitOfWork) -> None:
    """DIFT_BOOKED: what each allocation of a dift funded in meals, for the impact report."""
    data = event.data
    booked = [(a["campaign_id"], a["amount"], a["meals"]) for a in data.get("allocations", [])]
    uow.dift_bookings.record(
        data["dift_id"],
        data["programme_id"],
        data["kind"],
        booked,
        data["booked_at"],
    )


__all__ = [
    "UNDIRECTED",
    "AcceptRecipients",
    "CreateCodes",
    "DiftAlreadyDirected",
    "DiftExpired",
    "DiftView",
    "DirectDift",
    "IssueDift",
    "IssuedDift",
    "UnknownDift",
    "accept_recipients",
    "create_codes",
    "direct_dift",
    "expire_programme",
    "issue_dift",
    "issue_upload_chunk",
    "open_dift",
    "record_dift_booked",
    "record_invitation_sent",
    "record_wrong_code",
    "redemption_allowed",
    "view_dift",
]
