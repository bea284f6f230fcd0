"""Company difts on the unit of work's transaction: sponsors and their access tokens,
programmes (with their shortlist), fundings and credits back, difts and their allocations,
recipient uploads, redemption attempts, mécénat receipts and the ledger's bookings of difts.

A programme is loaded with a row lock (`get(id, lock=True)`) before its budget changes, so two
issuers never both spend its last euros. A dift changes state by a conditional UPDATE (`move`:
only from the states the domain allowed), so two concurrent submits give one redemption: the
second finds no row in the state it read and loses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from services.shared.db import as_utc, dialect_insert, insert_if_absent
from services.shared.money import Money

from ..domain.programmes import (
    Allocation,
    Channel,
    CreditBack,
    CreditReason,
    Dift,
    DiftState,
    FallbackRule,
    Funding,
    FundingMethod,
    IssuedReceipt,
    Programme,
    ProgrammeStatus,
    Recipient,
    RecipientUpload,
    Sponsor,
    UploadRow,
    UploadStatus,
    receipt_number,
)
from .rows import by_id, columns, record
from .tables import (
    dift_allocations,
    dift_bookings,
    difts,
    mecenat_receipts,
    programme_credits,
    programme_fundings,
    programme_shortlist,
    programmes,
    receipt_counters,
    recipient_rows,
    recipient_uploads,
    redemption_attempts,
    sponsor_tokens,
    sponsors,
)


class Sponsors:
    """The sponsors, and the digests of their access tokens."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, sponsor: Sponsor, seed_key: str | None = None) -> None:
        """Store a new sponsor."""
        self.conn.execute(sponsors.insert().values(**columns(sponsor), seed_key=seed_key))

    def get(self, sponsor_id: str) -> Sponsor | None:
        """The sponsor, if any."""
        row = by_id(self.conn, sponsors, sponsor_id)
        return record(row, Sponsor) if row is not None else None

    def by_seed_key(self, seed_key: str) -> Sponsor | None:
        """The sponsor seed-demo wrote under this key, if any."""
        row = self.conn.execute(select(sponsors).where(sponsors.c.seed_key == seed_key)).first()
        return record(row, Sponsor) if row is not None else None

    def add_token(self, digest: str, sponsor_id: str, now: datetime) -> None:
        """Keep the digest of a new access token of the sponsor."""
        row = {"digest": digest, "sponsor_id": sponsor_id, "created_at": now}
        self.conn.execute(sponsor_tokens.insert().values(**row))

    def of_token(self, digest: str) -> str | None:
        """The sponsor whose access token has this digest, if any."""
        query = select(sponsor_tokens.c.sponsor_id).where(sponsor_tokens.c.digest == digest)
        found = self.conn.execute(query).scalar()
        return str(found) if found is not None else None


# What a programme's life changes; the rest (and the shortlist) is a draft's.
PROGRAMME_LIFE = (
    "status",
    "funded",
    "reserved",
    "credited_back",
    "expired_to_credit",
    "funded_at",
    "opened_at",
    "closed_at",
    # An open programme ended early expires now (Programme.ended_early).
    "expires_at",
)
PROGRAMME_DRAFT = (
    "name",
    "occasion",
    "message_markdown",
    "opens_at",
    "fallback_rule",
    "fallback_campaign_id",
)


def _programme(conn: Connection, row: Any) -> Programme:
    currency = row.currency
    listed = conn.execute(
        select(programme_shortlist.c.campaign_id)
        .where(programme_shortlist.c.programme_id == row.id)
        .order_by(programme_shortlist.c.position)
    ).scalars()
    return record(
        row,
        Programme,
        dift_value=Money(row.dift_value, currency) if row.dift_value is not None else None,
        shortlist=tuple(listed),
        fallback_rule=FallbackRule(row.fallback_rule),
        status=ProgrammeStatus(row.status),
        funded=Money(row.funded, currency),
        reserved=Money(row.reserved, currency),
        credited_back=Money(row.credited_back, currency),
        expired_to_credit=Money(row.expired_to_credit, currency),
    )


class Programmes:
    """The programmes, with their shortlist in order."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, programme: Programme, seed_key: str | None = None) -> None:
        """Store a new programme and its shortlist."""
        values = columns(programme, "id", "sponsor_id", "currency", "dift_value", "created_at")
        values.update(columns(programme, *PROGRAMME_DRAFT, *PROGRAMME_LIFE))
        self.conn.execute(programmes.insert().values(**values, seed_key=seed_key))
        self._list(programme)

    def _list(self, programme: Programme) -> None:
        self.conn.execute(
            programme_shortlist.delete().where(programme_shortlist.c.programme_id == programme.id)
        )
        self.conn.execute(
            programme_shortlist.insert(),
            [
                {"programme_id": programme.id, "position": i, "campaign_id": campaign_id}
                for i, campaign_id in enumerate(programme.shortlist)
            ],
        )

    def get(self, programme_id: str, lock: bool = False) -> Programme | None:
        """The programme, if any; `lock` holds it until the transaction ends."""
        row = by_id(self.conn, programmes, programme_id, lock)
        return _programme(self.conn, row) if row is not None else None

    def by_seed_key(self, seed_key: str) -> Programme | None:
        """The programme seed-demo wrote under this key, if any."""
        query = select(programmes).where(programmes.c.seed_key == seed_key)
        row = self.conn.execute(query).first()
        return _programme(self.conn, row) if row is not None else None

    def save(self, programme: Programme) -> None:
        """Write what changed: its life and budget, and a draft's texts, value and shortlist."""
        values = columns(programme, *PROGRAMME_LIFE)
        if programme.status is ProgrammeStatus.DRAFT:
            values.update(columns(programme, *PROGRAMME_DRAFT, "dift_value"))
            self._list(programme)
        self.conn.execute(
            update(programmes).where(programmes.c.id == programme.id).values(**values)
        )

    def of_sponsor(self, sponsor_id: str) -> list[Programme]:
        """A sponsor's programmes, newest first."""
        rows = self.conn.execute(
            select(programmes)
            .where(programmes.c.sponsor_id == sponsor_id)
            .order_by(programmes.c.created_at.desc())
        ).all()
        return [_programme(self.conn, row) for row in rows]

    def due_to_open(self, now: datetime, limit: int = 100) -> list[str]:
        """Funded programmes whose opening date has come."""
        query = (
            select(programmes.c.id)
            .where(programmes.c.status == ProgrammeStatus.FUNDED.value)
            .where(programmes.c.opens_at <= now, programmes.c.expires_at > now)
            .order_by(programmes.c.opens_at)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def past_expiry(self, now: datetime, limit: int = 100) -> list[str]:
        """Open (or funded, never opened) programmes whose expiry date has passed."""
        query = (
            select(programmes.c.id)
            .where(
                programmes.c.status.in_([ProgrammeStatus.OPEN.value, ProgrammeStatus.FUNDED.value])
            )
            .where(programmes.c.expires_at <= now)
            .order_by(programmes.c.expires_at)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())


def _funding(row: Any) -> Funding:
    return record(
        row,
        Funding,
        method=FundingMethod(row.method),
        amount=Money(row.amount, row.currency),
    )


class Fundings:
    """Money received for programmes, each once per source."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, funding: Funding) -> bool:
        """Keep a funding; False if its source was kept already (a replay)."""
        values = {**columns(funding), "currency": funding.amount.currency}
        return insert_if_absent(self.conn, programme_fundings, values, key="source")

    def by_source(self, source: str) -> Funding | None:
        """The funding of this source, if any."""
        query = select(programme_fundings).where(programme_fundings.c.source == source)
        row = self.conn.execute(query).first()
        return _funding(row) if row is not None else None

    def of_programme(self, programme_id: str) -> list[Funding]:
        """A programme's fundings, oldest first."""
        rows = self.conn.execute(
            select(programme_fundings)
            .where(programme_fundings.c.programme_id == programme_id)
            .order_by(programme_fundings.c.funded_at)
        ).all()
        return [_funding(row) for row in rows]


class Credits:
    """Money given back to sponsors."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, credit: CreditBack) -> None:
        """Keep a credit back."""
        values = {**columns(credit), "currency": credit.amount.currency}
        self.conn.execute(programme_credits.insert().values(**values))

    def of_programme(self, programme_id: str) -> list[CreditBack]:
        """A programme's credits back, oldest first."""
        rows = self.conn.execute(
            select(programme_credits)
            .where(programme_credits.c.programme_id == programme_id)
            .order_by(programme_credits.c.credited_at)
        ).all()
        return [
            record(
                row,
                CreditBack,
                amount=Money(row.amount, row.currency),
                reason=CreditReason(row.reason),
            )
            for row in rows
        ]


# What a dift's life changes (its allocations are rows of their own).
DIFT_LIFE = (
    "state",
    "sent_at",
    "bounced_at",
    "opened_at",
    "directed_at",
    "expired_at",
    "updates_opt_in",
    "fallback_rule",
)


class Difts:
    """The difts, by id, by the digest of their secret, or by the sponsor's reference."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _dift(self, row: Any) -> Dift:
        currency = row.currency
        allocations = self.conn.execute(
            select(dift_allocations.c.campaign_id, dift_allocations.c.amount)
            .where(dift_allocations.c.dift_id == row.id)
            .order_by(dift_allocations.c.position)
        ).all()
        recipient = (
            Recipient(row.recipient_email, row.recipient_name or "", row.recipient_locale or "fr")
            if row.recipient_email
            else None
        )
        return record(
            row,
            Dift,
            channel=Channel(row.channel),
            value=Money(row.value, currency),
            state=DiftState(row.state),
            recipient=recipient,
            fallback_rule=FallbackRule(row.fallback_rule) if row.fallback_rule else None,
            allocations=tuple(
                Allocation(a.campaign_id, Money(a.amount, currency)) for a in allocations
            ),
        )

    def add(self, dift: Dift, secret_digest: str) -> None:
        """Store a new dift under the digest of its link token or printed code."""
        recipient = dift.recipient
        values = {
            **columns(dift, "id", "programme_id", "channel", "value", "sponsor_reference"),
            **columns(dift, "upload_id", "issued_at", *DIFT_LIFE),
            "currency": dift.value.currency,
            "secret_digest": secret_digest,
            "recipient_email": recipient.email if recipient else None,
            "recipient_name": recipient.name if recipient else None,
            "recipient_locale": recipient.locale if recipient else None,
        }
        self.conn.execute(difts.insert().values(**values))

    def add_many(self, issued: Sequence[tuple[Dift, str]]) -> None:
        """Store new difts (each with its secret's digest) in one statement."""
        for dift, digest in issued:
            self.add(dift, digest)

    def get(self, dift_id: str) -> Dift | None:
        """The dift, if any."""
        row = by_id(self.conn, difts, dift_id)
        return self._dift(row) if row is not None else None

    def by_secret(self, digest: str) -> Dift | None:
        """The dift whose link token or printed code has this digest, if any."""
        row = self.conn.execute(select(difts).where(difts.c.secret_digest == digest)).first()
        return self._dift(row) if row is not None else None

    def by_reference(self, programme_id: str, sponsor_reference: str) -> Dift | None:
        """The dift a programme's sponsor issued under its own reference, if any."""
        row = self.conn.execute(
            select(difts).where(
                difts.c.programme_id == programme_id,
                difts.c.sponsor_reference == sponsor_reference,
            )
        ).first()
        return self._dift(row) if row is not None else None

    def move(self, before: Dift, after: Dift, kind: str | None = None) -> bool:
        """Write a dift's transition only if it is still in the state `before` was read in
        (one conditional UPDATE); then its allocations too, as `kind` (directed / expired).
        False when another transaction moved it first: nothing is written."""
        moved = self.conn.execute(
            update(difts)
            .where(difts.c.id == after.id, difts.c.state == before.state.value)
            .values(**columns(after, *DIFT_LIFE))
            .returning(difts.c.id)
        ).first()
        if moved is None:
            return False
        if after.allocations:
            at = after.directed_at or after.expired_at
            self.conn.execute(
                dift_allocations.insert(),
                [
                    {
                        "dift_id": after.id,
                        "campaign_id": allocation.campaign_id,
                        "position": i,
                        "amount": allocation.amount.amount,
                        "currency": allocation.amount.currency,
                        "kind": kind or after.state.value,
                        "at": at,
                    }
                    for i, allocation in enumerate(after.allocations)
                ],
            )
        return True

    def undirected(self, programme_id: str, limit: int = 500) -> list[Dift]:
        """Difts of a programme nobody directed yet (issued, sent or opened)."""
        rows = self.conn.execute(
            select(difts)
            .where(
                difts.c.programme_id == programme_id,
                difts.c.state.in_(
                    [DiftState.ISSUED.value, DiftState.SENT.value, DiftState.OPENED.value]
                ),
            )
            .order_by(difts.c.issued_at, difts.c.id)
            .limit(limit)
        ).all()
        return [self._dift(row) for row in rows]

    def count_undirected(self, programme_id: str) -> int:
        """How many difts of a programme nobody directed yet."""
        undirected = [DiftState.ISSUED.value, DiftState.SENT.value, DiftState.OPENED.value]
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(difts)
                .where(difts.c.programme_id == programme_id, difts.c.state.in_(undirected))
            ).scalar_one()
        )


def _upload(row: Any) -> RecipientUpload:
    return record(row, RecipientUpload, status=UploadStatus(row.status))


class Uploads:
    """Recipient files being issued, their rows, and their progress."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, upload: RecipientUpload, rows: Sequence[UploadRow]) -> None:
        """Store an accepted file and every row of it."""
        self.conn.execute(recipient_uploads.insert().values(**columns(upload)))
        for start in range(0, len(rows), 500):
            self.conn.execute(
                recipient_rows.insert(), [columns(row) for row in rows[start : start + 500]]
            )

    def get(self, upload_id: str, lock: bool = False) -> RecipientUpload | None:
        """The upload, if any; `lock` holds it until the transaction ends (one issuer)."""
        row = by_id(self.conn, recipient_uploads, upload_id, lock)
        return _upload(row) if row is not None else None

    def issuing(self, limit: int = 20) -> list[str]:
        """Uploads with rows still to issue, oldest first."""
        query = (
            select(recipient_uploads.c.id)
            .where(recipient_uploads.c.status == UploadStatus.ISSUING.value)
            .order_by(recipient_uploads.c.created_at)
            .limit(limit)
        )
        return list(self.conn.execute(query).scalars())

    def next_rows(self, upload_id: str, limit: int) -> list[UploadRow]:
        """The next rows of an upload with no dift yet, in file order."""
        rows = self.conn.execute(
            select(recipient_rows)
            .where(recipient_rows.c.upload_id == upload_id, recipient_rows.c.dift_id.is_(None))
            .order_by(recipient_rows.c.line)
            .limit(limit)
        ).all()
        return [record(row, UploadRow) for row in rows]

    def row_issued(self, upload_id: str, line: int, dift_id: str) -> None:
        """Remember the dift issued for a row."""
        self.conn.execute(
            update(recipient_rows)
            .where(recipient_rows.c.upload_id == upload_id, recipient_rows.c.line == line)
            .values(dift_id=dift_id)
        )

    def save(self, upload: RecipientUpload) -> None:
        """Write an upload's progress."""
        values = columns(upload, "status", "issued", "problem", "finished_at")
        self.conn.execute(
            update(recipient_uploads).where(recipient_uploads.c.id == upload.id).values(**values)
        )


class RedemptionAttempts:
    """Redemption attempts that named no dift, per client address (the rate limit)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record_wrong(self, client: str, at: datetime) -> None:
        """Remember one wrong attempt of a client."""
        self.conn.execute(redemption_attempts.insert().values(client=client[:100], at=at))

    def wrong_since(self, client: str, since: datetime) -> int:
        """How many wrong attempts a client made after `since`."""
        attempts = redemption_attempts.c
        return int(
            self.conn.execute(
                select(func.count())
                .select_from(redemption_attempts)
                .where(attempts.client == client[:100], attempts.at > since)
            ).scalar_one()
        )

    def forget_before(self, before: datetime) -> None:
        """Drop attempts older than the window (the worker's housekeeping)."""
        self.conn.execute(redemption_attempts.delete().where(redemption_attempts.c.at < before))


class Receipts:
    """Mécénat receipts, numbered per issuing organisation and year without gaps."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def next_sequence(self, organisation: str, year: int) -> int:
        """Take the next receipt number of an organisation's year, in this transaction: the
        counter row is created if absent, then incremented by UPDATE ... RETURNING, which
        holds its row lock until commit on PostgreSQL (the next taker waits and reads the
        committed value; a rolled-back transaction gives its number back) and runs inside
        the write lock on SQLite. So numbers are unique and gapless under concurrency."""
        counters = receipt_counters.c
        self.conn.execute(
            dialect_insert(self.conn, receipt_counters)
            .values(organisation=organisation, year=year, last_number=0)
            .on_conflict_do_nothing(index_elements=["organisation", "year"])
        )
        taken = self.conn.execute(
            update(receipt_counters)
            .where(and_(counters.organisation == organisation, counters.year == year))
            .values(last_number=counters.last_number + 1)
            .returning(counters.last_number)
        ).scalar_one()
        return int(taken)

    def add(self, receipt: IssuedReceipt) -> None:
        """Keep an issued receipt."""
        values = {**columns(receipt), "currency": receipt.amount.currency}
        self.conn.execute(mecenat_receipts.insert().values(**values))

    def issue(
        self,
        receipt_id: str,
        organisation: str,
        funding: Funding,
        sponsor_id: str,
        form: str,
        received_on: date,
        issued_on: date,
    ) -> IssuedReceipt:
        """Number and keep the receipt of a funding (numbered in the year it is issued)."""
        year = issued_on.year
        sequence = self.next_sequence(organisation, year)
        receipt = IssuedReceipt(
            id=receipt_id,
            number=receipt_number(year, sequence),
            organisation=organisation,
            year=year,
            sequence=sequence,
            programme_id=funding.programme_id,
            funding_id=funding.id,
            sponsor_id=sponsor_id,
            amount=funding.amount,
            received_on=received_on,
            form=form,
            issued_on=issued_on,
        )
        self.add(receipt)
        return receipt

    def of_programme(self, programme_id: str) -> list[IssuedReceipt]:
        """A programme's receipts, in number order."""
        rows = self.conn.execute(
            select(mecenat_receipts)
            .where(mecenat_receipts.c.programme_id == programme_id)
            .order_by(mecenat_receipts.c.year, mecenat_receipts.c.sequence)
        ).all()
        return [record(row, IssuedReceipt, amount=Money(row.amount, row.currency)) for row in rows]

    def get(self, receipt_id: str) -> IssuedReceipt | None:
        """The receipt, if any."""
        row = by_id(self.conn, mecenat_receipts, receipt_id)
        if row is None:
            return None
        return record(row, IssuedReceipt, amount=Money(row.amount, row.currency))


class DiftBookings:
    """What the ledger said each allocation of a dift funded (its dift_booked events)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record(
        self,
        dift_id: str,
        programme_id: str,
        kind: str,
        booked: Sequence[tuple[str, int, int]],
        at: datetime,
    ) -> None:
        """Keep each (campaign, amount, meals) of a booked dift, once."""
        for campaign_id, amount, meals in booked:
            row = {
                "dift_id": dift_id,
                "campaign_id": campaign_id,
                "programme_id": programme_id,
                "kind": kind,
                "amount": amount,
                "meals": meals,
                "booked_at": as_utc(at),
            }
            self.conn.execute(
                dialect_insert(self.conn, dift_bookings)
                .values(**row)
                .on_conflict_do_nothing(index_elements=["dift_id", "campaign_id"])
            )
