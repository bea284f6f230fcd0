"""A sponsor's list of recipients, as a CSV file from a spreadsheet, checked row by row.

The file is UTF-8 with or without a byte-order mark (Excel writes one), separated by `,` or by
the `;` French spreadsheets write (whichever the header line uses), with the columns `email`,
`name`, `locale`, `value`, `sponsor_reference` in any order (French names accepted: `nom`,
`langue`, `valeur` or `montant`, `reference`). Only `email` is required. A value is in major
units with `.` or `,` decimals ("20", "20,50"); a locale is fr or en (fr when empty).

All or nothing: one bad row rejects the whole file with every problem found (line, column,
reason), so the sponsor fixes the spreadsheet once and uploads it again.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from services.shared.fields import MAILBOX_PATTERN
from services.shared.money import CURRENCY_EXPONENTS, Money

from .giving import parse_major_amount

MAX_ROWS = 50_000
# A file with thousands of problems is one mistake repeated: list the first ones and count all.
MAX_PROBLEMS_LISTED = 1_000
PROGRESS_EVERY = 1_000
LOCALES = ("fr", "en")
MAX_NAME_LENGTH = 200
MAX_REFERENCE_LENGTH = 100

COLUMNS = ("email", "name", "locale", "value", "sponsor_reference")
# Header names as spreadsheets write them (lower case, without accents, spaces, - or _).
_ALIASES = {
    "email": "email",
    "mail": "email",
    "courriel": "email",
    "name": "name",
    "nom": "name",
    "locale": "locale",
    "language": "locale",
    "langue": "locale",
    "value": "value",
    "valeur": "value",
    "montant": "value",
    "amount": "value",
    "sponsorreference": "sponsor_reference",
    "reference": "sponsor_reference",
    "ref": "sponsor_reference",
}


@dataclass(frozen=True)
class RecipientRow:
    """One recipient of the file: who gets a dift, in which language, and its value when the
    file gives one (else the programme's value); `line` is the row's line in the file."""

    line: int
    email: str
    name: str
    locale: str
    value: Money | None
    sponsor_reference: str | None


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with the file, where: its line (1 is the header), the column, and why."""

    line: int
    column: str
    reason: str


class RecipientFileRejected(ValueError):
    """The file stores nothing: `problems` lists what to fix (at most MAX_PROBLEMS_LISTED of
    them), `problem_count` says how many there are in all."""

    def __init__(self, problems: list[RowProblem], problem_count: int | None = None) -> None:
        self.problems = problems[:MAX_PROBLEMS_LISTED]
        self.problem_count = problem_count if problem_count is not None else len(problems)
        first = self.problems[0] if self.problems else None
        summary = f"line {first.line}, {first.column or 'file'}: {first.reason}" if first else ""
        super().__init__(f"{self.problem_count} problem(s) in the recipients file; {summary}")


class _Problems:
    """Collects problems, keeping the first MAX_PROBLEMS_LISTED and counting the rest."""

    def __init__(self) -> None:
        self.listed: list[RowProblem] = []
        self.count = 0

    def add(self, line: int, column: str, reason: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_PROBLEMS_LISTED:
            self.listed.append(RowProblem(line, column, reason))

    def raise_if_any(self) -> None:
        if self.count:
            raise RecipientFileRejected(self.listed, self.count)


def _header_key(raw: str) -> str:
    """`raw` as an alias key: "Référence " and "sponsor_reference" as "reference" and
    "sponsorreference" (lower case; accents, spaces, hyphens, underscores, a BOM dropped)."""
    text = unicodedata.normalize("NFKD", raw.replace("\ufeff", "").lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[\s_\-]+", "", text)


def _column_of(raw: str) -> str | None:
    return _ALIASES.get(_header_key(raw))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RecipientFileRejected(
            [
                RowProblem(
                    line,
                    "",
                    "the file is not UTF-8 text: save it from the spreadsheet as "
                    "'CSV UTF-8' and upload it again",
                )
            ]
        ) from None


def _separator(header_line: str) -> str:
    """`;` when the header uses it more than `,` (French spreadsheets), else `,`."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _records(
    reader: Iterator[list[str]], line_of: Callable[[], int]
) -> Iterator[tuple[int, list[str]]]:
    """Each record with the line it starts on (a quoted field may span lines)."""
    start = line_of() + 1
    for record in reader:
        yield start, record
        start = line_of() + 1


def _value(text: str, currency: str) -> Money | None | str:
    """The value as money, None when empty, or the reason it is refused."""
    cleaned = text.strip()
    for suffix in ("€", currency, currency.lower()):
        cleaned = cleaned.removesuffix(suffix).strip()
    if not cleaned:
        return None
    exponent = CURRENCY_EXPONENTS[currency]
    amount = parse_major_amount(cleaned, exponent)
    if amount is None:
        decimals = f"at most {exponent} decimals" if exponent else "no decimals"
        return f"not an amount: write it like 20 or 20,50 ({decimals})"
    if amount <= 0:
        return "the value must be more than zero"
    return Money(amount, currency)


def _is_mailbox(email: str) -> bool:
    local, _, domain = email.rpartition("@")
    return (
        len(email) <= 254
        and re.fullmatch(MAILBOX_PATTERN, email) is not None
        and len(local) <= 64
        and all(len(label) <= 63 for label in domain.split("."))
    )


def parse_recipients(
    data: bytes,
    currency: str,
    *,
    max_rows: int = MAX_ROWS,
    progress: Callable[[int], None] | None = None,
) -> list[RecipientRow]:
    """The recipients of a CSV file, in file order, or RecipientFileRejected with every
    problem found. `progress` is told how many rows have been checked, every
    PROGRESS_EVERY rows and at the end, for the person waiting on a large file."""
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"unsupported currency {currency!r}")
    text = _decode(data)
    header_line = text.split("\n", 1)[0]
    if not header_line.strip():
        raise RecipientFileRejected(
            [
                RowProblem(
                    1,
                    "",
                    "the file is empty: its first line names the columns, e.g. "
                    "email;name;locale;value;sponsor_reference",
                )
            ]
        )
    delimiter = _separator(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    problems = _Problems()

    header = next(reader)
    columns: list[str | None] = []
    for raw in header:
        column = _column_of(raw)
        if column is None and raw.strip():
            problems.add(1, raw.strip(), f"unknown column: the columns are {', '.join(COLUMNS)}")
        elif column is not None and column in columns:
            problems.add(1, raw.strip(), "this column is given twice")
        columns.append(column)
    if "email" not in columns:
        problems.add(1, "email", "the file needs an email column")
    problems.raise_if_any()

    rows: list[RecipientRow] = []
    first_line_of_email: dict[str, int] = {}
    first_line_of_reference: dict[str, int] = {}
    checked = 0
    for line, record in _records(reader, lambda: reader.line_num):
        if not any(field.strip() for field in record):
            continue  # spreadsheets leave empty rows (";;;;") at the end
        if checked == max_rows:
            problems.add(
                line,
                "",
                f"more than {max_rows:,} recipients in one file: split it into files of at "
                f"most {max_rows:,} rows",
            )
            break
        checked += 1
        if progress is not None and checked % PROGRESS_EVERY == 0:
            progress(checked)
        if len(record) != len(columns):
            problems.add(
                line,
                "",
                f"expected {len(columns)} fields separated by '{delimiter}', found {len(record)}",
            )
            continue
        fields = {
            column: field.strip() for column, field in zip(columns, record, strict=True) if column
        }
        row_ok = True

        email = fields.get("email", "")
        if not email:
            problems.add(line, "email", "the email address is missing")
            row_ok = False
        elif not _is_mailbox(email):
            problems.add(line, "email", f"not a valid email address: {email[:80]!r}")
            row_ok = False
        else:
            seen = first_line_of_email.setdefault(email.lower(), line)
            if seen != line:
                problems.add(line, "email", f"this email address is already on line {seen}")
                row_ok = False

        name = fields.get("name", "")
        if len(name) > MAX_NAME_LENGTH:
            problems.add(line, "name", f"the name is longer than {MAX_NAME_LENGTH} characters")
            row_ok = False

        locale = fields.get("locale", "").lower() or "fr"
        if locale not in LOCALES:
            problems.add(line, "locale", "the language is fr or en")
            row_ok = False

        value = _value(fields.get("value", ""), currency)
        if isinstance(value, str):
            problems.add(line, "value", value)
            row_ok = False

        reference = fields.get("sponsor_reference") or None
        if reference is not None:
            if len(reference) > MAX_REFERENCE_LENGTH:
                problems.add(
                    line,
                    "sponsor_reference",
                    f"the reference is longer than {MAX_REFERENCE_LENGTH} characters",
                )
                row_ok = False
            else:
                seen = first_line_of_reference.setdefault(reference, line)
                if seen != line:
                    problems.add(
                        line, "sponsor_reference", f"this reference is already on line {seen}"
                    )
                    row_ok = False

        if row_ok and not problems.count:
            assert not isinstance(value, str)
            rows.append(RecipientRow(line, email, name, locale, value, reference))

    if checked == 0 and not problems.count:
        problems.add(2, "", "the file has a header but no recipient")
    if progress is not None and checked % PROGRESS_EVERY:
        progress(checked)
    problems.raise_if_any()
    return rows
