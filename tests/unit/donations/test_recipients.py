"""A sponsor's recipients file, as spreadsheets write it: checked row by row, all or nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.donations.domain.recipients import (
    MAX_PROBLEMS_LISTED,
    RecipientFileRejected,
    RecipientRow,
    RowProblem,
    parse_recipients,
)
from services.shared.money import Money


def _rejected(data: bytes, **kwargs: object) -> RecipientFileRejected:
    with pytest.raises(RecipientFileRejected) as caught:
        parse_recipients(data, "EUR", **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_french_excel_file_with_bom_semicolons_and_french_headers_parses() -> None:
    data = (
        "\ufeffE-mail;Nom;Langue;Montant;Référence\r\n"
        "ana@example.org;Ana Lopez;fr;20,50;EMP-1\r\n"
        "bob@example.org;Bob;EN;;\r\n"
        ";;;;\r\n"
    ).encode()
    assert parse_recipients(data, "EUR") == [
        RecipientRow(2, "ana@example.org", "Ana Lopez", "fr", Money(2050, "EUR"), "EMP-1"),
        RecipientRow(3, "bob@example.org", "Bob", "en", None, None),
    ]


def test_a_comma_file_with_english_headers_in_any_order_and_only_emails_parses() -> None:
    data = b'value,email\n"20,5",a@example.org\n15.25,b@example.org\n'
    assert parse_recipients(data, "EUR") == [
        RecipientRow(2, "a@example.org", "", "fr", Money(2050, "EUR"), None),
        RecipientRow(3, "b@example.org", "", "fr", Money(1525, "EUR"), None),
    ]


def test_every_bad_row_is_reported_with_its_line_column_and_reason() -> None:
    data = (
        "email;name;locale;value;sponsor_reference\n"
        "ok@example.org;Ok;fr;20;R1\n"
        "not-an-email;X;fr;20;R2\n"
        "c@example.org;C;de;20;R3\n"
        "d@example.org;D;fr;vingt;R4\n"
        "e@example.org;E;fr;-5;R5\n"
        "f@example.org;F;fr;20,505;R6\n"
        ";G;fr;20;R7\n"
        "h@example.org;H;fr\n"
        f"i@example.org;{'n' * 201};fr;20;R9\n"
    ).encode()
    problems = _rejected(data).problems
    assert [(p.line, p.column) for p in problems] == [
        (3, "email"),
        (4, "locale"),
        (5, "value"),
        (6, "value"),
        (7, "value"),
        (8, "email"),
        (9, ""),
        (10, "name"),
    ]
    assert "expected 5 fields" in problems[6].reason


def test_duplicate_emails_are_reported_on_every_line_after_the_first_whatever_the_case() -> None:
    data = b"email\nA@example.org\nb@example.org\na@EXAMPLE.org\na@example.org\n"
    assert _rejected(data).problems == [
        RowProblem(4, "email", "this email address is already on line 2"),
        RowProblem(5, "email", "this email address is already on line 2"),
    ]


def test_duplicate_sponsor_references_are_reported() -> None:
    data = b"email,reference\na@example.org,R1\nb@example.org,R1\n"
    assert _rejected(data).problems == [
        RowProblem(3, "sponsor_reference", "this reference is already on line 2")
    ]


def test_a_file_with_one_bad_row_stores_nothing_it_returns_no_row() -> None:
    data = b"email\na@example.org\nbad\n"
    rejected = _rejected(data)
    assert rejected.problem_count == 1
    assert "line 3" in str(rejected)


def test_unknown_missing_and_doubled_columns_are_reported_on_the_header_line() -> None:
    assert _rejected(b"mail;valeu\nx@example.org;2\n").problems == [
        RowProblem(
            1,
            "valeu",
            "unknown column: the columns are email, name, locale, value, sponsor_reference",
        )
    ]
    assert _rejected(b"name\nAna\n").problems == [
        RowProblem(1, "email", "the file needs an email column")
    ]
    assert _rejected(b"email,courriel\na@example.org,b@example.org\n").problems == [
        RowProblem(1, "courriel", "this column is given twice")
    ]


def test_an_empty_file_or_a_header_alone_is_refused() -> None:
    assert _rejected(b"").problems[0].line == 1
    assert _rejected(b"\xef\xbb\xbf").problems[0].line == 1
    assert _rejected(b"email\n").problems == [
        RowProblem(2, "", "the file has a header but no recipient")
    ]


def test_a_file_that_is_not_utf8_is_refused_at_its_line() -> None:
    data = "email;nom\na@example.org;Zoé\n".encode("latin-1")
    [problem] = _rejected(data).problems
    assert problem.line == 2
    assert "UTF-8" in problem.reason


def test_a_quoted_field_may_hold_the_separator_and_a_new_line() -> None:
    data = b'email;name\n"a@example.org";"Dupont; Ana\nand Bob"\nb@example.org;B\n'
    rows = parse_recipients(data, "EUR")
    assert [(row.line, row.name) for row in rows] == [(2, "Dupont; Ana\nand Bob"), (4, "B")]


def test_more_rows_than_allowed_is_one_problem() -> None:
    data = ("email\n" + "".join(f"r{i}@example.org\n" for i in range(6))).encode()
    assert _rejected(data, max_rows=5).problems == [
        RowProblem(
            7, "", "more than 5 recipients in one file: split it into files of at most 5 rows"
        )
    ]
    assert len(parse_recipients(data, "EUR", max_rows=6)) == 6


def test_fifty_thousand_rows_parse_with_progress_for_the_person_waiting() -> None:
    data = ("email;valeur\n" + "".join(f"r{i}@example.org;20\n" for i in range(50_000))).encode()
    seen: list[int] = []
    rows = parse_recipients(data, "EUR", progress=seen.append)
    assert len(rows) == 50_000
    assert seen[0] == 1_000 and seen[-1] == 50_000 and seen == sorted(seen)
    over = data + b"one.more@example.org;20\n"
    assert "more than 50,000" in _rejected(over).problems[0].reason


def test_problems_are_listed_up_to_a_cap_and_all_counted() -> None:
    data = ("email\n" + "bad\n" * (MAX_PROBLEMS_LISTED + 500)).encode()
    rejected = _rejected(data)
    assert len(rejected.problems) == MAX_PROBLEMS_LISTED
    assert rejected.problem_count == MAX_PROBLEMS_LISTED + 500


def test_yen_values_take_no_decimals() -> None:
    ok = parse_recipients(b"email,value\na@example.org,2000\n", "JPY")
    assert ok[0].value == Money(2000, "JPY")
    with pytest.raises(RecipientFileRejected):
        parse_recipients(b"email,value\na@example.org,20.5\n", "JPY")


# Names and references without the separators or quotes, so a spreadsheet writes them bare.
_text = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_characters=',;"\r\n\ufeff',
        exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
    ),
    max_size=20,
)
_recipient = st.tuples(
    _text,
    st.sampled_from(["fr", "en"]),
    st.one_of(st.none(), st.integers(1, 10**8)),
    st.one_of(st.none(), st.text(alphabet="ABCDEFGH0123456789-", min_size=1, max_size=12)),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_recipient, min_size=1, max_size=30, unique_by=lambda r: r[3] or object()),
    st.sampled_from([",", ";"]),
    st.booleans(),
    st.sampled_from(["\n", "\r\n"]),
)
def test_any_valid_file_parses_to_the_same_rows_with_either_separator_and_with_or_without_bom(
    recipients: list[tuple[str, str, int | None, str | None]],
    separator: str,
    bom: bool,
    newline: str,
) -> None:
    decimal = "," if separator == ";" else "."
    lines = [separator.join(["email", "name", "locale", "value", "sponsor_reference"])]
    expected = []
    for i, (name, locale, cents, reference) in enumerate(recipients):
        email = f"recipient{i}@example.org"
        value = "" if cents is None else f"{cents // 100}{decimal}{cents % 100:02d}"
        lines.append(separator.join([email, name, locale, value, reference or ""]))
        expected.append(
            RecipientRow(
                i + 2,
                email,
                name.strip(),
                locale,
                None if cents is None else Money(cents, "EUR"),
                reference,
            )
        )
    data = (("\ufeff" if bom else "") + newline.join(lines) + newline).encode()
    assert parse_recipients(data, "EUR") == expected
