"""Link tokens and printed codes: unguessable links, short codes whose check symbol catches
what the check guarantees to catch, and typed codes read back despite case, spaces and
look-alike letters."""

from __future__ import annotations

import base64
import re

from hypothesis import given
from hypothesis import strategies as st

from services.donations.domain.codes import (
    ALPHABET,
    CHECK_SYMBOLS,
    check_symbol,
    code_digest,
    new_link_token,
    new_printed_code,
    read_printed_code,
)

CODE_SHAPE = re.compile(
    r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}[0-9A-HJKMNP-TV-Z*~$=U]$"
)
SAMPLE = [new_printed_code() for _ in range(40)]


def _compact(code: str) -> str:
    return code.replace("-", "")


def test_link_tokens_carry_at_least_128_random_bits_and_are_url_safe() -> None:
    token = new_link_token()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) * 8 >= 128
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len({new_link_token() for _ in range(1000)}) == 1000


def test_printed_codes_are_ten_characters_and_a_check_symbol_grouped_for_print() -> None:
    for code in SAMPLE:
        assert CODE_SHAPE.match(code), code
        digits = _compact(code)[:10]
        assert _compact(code)[10] == check_symbol(digits)


def test_a_printed_code_reads_back_as_itself() -> None:
    for code in SAMPLE:
        assert read_printed_code(code) == code


def test_the_check_symbol_is_crockfords_value_modulo_37() -> None:
    # 0 -> "0"; "Z" is 31 -> "Z"; "10" is 32 -> "*"; "11" is 33 -> "~"; "14" is 36 -> "U".
    assert check_symbol("0") == "0"
    assert check_symbol("Z") == "Z"
    assert check_symbol("10") == "*"
    assert check_symbol("11") == "~"
    assert check_symbol("14") == "U"
    assert check_symbol("15") == "0"  # 37 is 0 modulo 37


def test_typed_codes_are_read_in_any_case_with_spaces_hyphens_and_look_alike_letters() -> None:
    digits = "1O0LI23ABC".upper()  # as typed: O for 0, L and I for 1
    canonical_digits = "1001123ABC"
    code = canonical_digits + check_symbol(canonical_digits)
    typed = f" {digits[:3].lower()} {digits[3:7]}-{digits[7:].lower()}{code[-1].lower()} "
    assert read_printed_code(typed) == "1001-123A-BC" + code[-1]


@given(st.sampled_from(SAMPLE), st.integers(0, 10), st.sampled_from(list(CHECK_SYMBOLS)))
def test_every_single_mistyped_character_is_refused(code: str, position: int, typed: str) -> None:
    chars = list(_compact(code))
    if chars[position] == typed:
        return
    chars[position] = typed
    assert read_printed_code("".join(chars)) is None


def test_every_single_substitution_of_every_sampled_code_is_refused_exhaustively() -> None:
    for code in SAMPLE[:10]:
        compact = _compact(code)
        for position in range(11):
            allowed = ALPHABET if position < 10 else CHECK_SYMBOLS
            for char in allowed:
                if char == compact[position]:
                    continue
                mistyped = compact[:position] + char + compact[position + 1 :]
                assert read_printed_code(mistyped) is None, (code, mistyped)


def test_every_swap_of_two_adjacent_random_characters_is_refused() -> None:
    for code in SAMPLE:
        compact = _compact(code)
        for position in range(9):  # the ten random characters; the check symbol is apart
            a, b = compact[position], compact[position + 1]
            if a == b:
                continue
            swapped = compact[:position] + b + a + compact[position + 2 :]
            assert read_printed_code(swapped) is None, (code, swapped)


def test_a_cut_or_lengthened_code_is_refused() -> None:
    for code in SAMPLE[:10]:
        compact = _compact(code)
        for length in range(len(compact)):
            assert read_printed_code(compact[:length]) is None
        assert read_printed_code(compact + "0") is None


def test_characters_outside_the_alphabet_are_refused() -> None:
    compact = _compact(SAMPLE[0])
    for stranger in ("U", "*", "!", "é", "٣"):
        assert read_printed_code(stranger + compact[1:]) is None


def test_digests_are_sha256_hex_and_differ_per_secret() -> None:
    code = SAMPLE[0]
    assert re.fullmatch(r"[0-9a-f]{64}", code_digest(code))
    assert code_digest(code) == code_digest(read_printed_code(code.lower()) or "")
    assert code_digest(code) != code_digest(SAMPLE[1])
    assert code not in code_digest(code)
