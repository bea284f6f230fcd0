"""The secrets that open a dift: a personal link's token, or a short code printed on a card.

A link token carries 192 random bits (URL-safe text), so it cannot be guessed. A printed
code is short enough to type: 10 random Crockford base32 characters (50 bits; guessing is
held back by the rate limit on redemption attempts) and one check character, grouped for print
as "7K3M-Q9TX-4AC". The check character is Crockford's mod-37 check symbol: the code's value
modulo 37, written with the 32 digits plus `*~$=U`. Because 37 is prime and neither 32 nor 31
is a multiple of it, every single mistyped character and every swap of two adjacent
characters of the random part changes the remainder, so such a code is refused rather than
opening someone else's dift.

The database keeps only `code_digest` of a token or a code, never the secret itself.
"""

from __future__ import annotations

import hashlib
import secrets

# Crockford's base32: no I, L, O, U (they read as 1, 1, 0 and offend), case-insensitive.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# The check symbols: the 32 digits for 0-31, then five more for 32-36.
CHECK_SYMBOLS = ALPHABET + "*~$=U"
CODE_LENGTH = 10
GROUP = 4
LINK_TOKEN_BYTES = 24
# What people type for a character the alphabet leaves out.
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_link_token() -> str:
    """A fresh personal link token: 192 random bits as 32 URL-safe characters."""
    return secrets.token_urlsafe(LINK_TOKEN_BYTES)


def check_symbol(digits: str) -> str:
    """Crockford's check symbol of `digits` (base32 characters): their value modulo 37."""
    value = 0
    for char in digits:
        value = value * 32 + ALPHABET.index(char)
    return CHECK_SYMBOLS[value % 37]


def _grouped(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def new_printed_code() -> str:
    """A fresh printed code in its canonical form, e.g. "7K3M-Q9TX-4AC" (the last character
    is the check symbol)."""
    digits = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return _grouped(digits + check_symbol(digits))


def read_printed_code(text: str) -> str | None:
    """The canonical form of a code as someone typed it (any case, spaces or hyphens
    anywhere, I and L for 1, O for 0), or None when it cannot be a code: too short or too
    long (a cut code), a character outside the alphabet, or a check symbol that does not
    match (a mistyped one)."""
    compact = "".join(text.split()).replace("-", "").upper().translate(_READ_AS)
    if len(compact) != CODE_LENGTH + 1:
        return None
    digits, check = compact[:CODE_LENGTH], compact[CODE_LENGTH]
    if any(char not in ALPHABET for char in digits) or check not in CHECK_SYMBOLS:
        return None
    if check_symbol(digits) != check:
        return None
    return _grouped(compact)


def code_digest(code_or_token: str) -> str:
    """What the database keeps of a link token or a printed code (its canonical form, as
    new_printed_code and read_printed_code give it): the SHA-256 hex digest."""
    return hashlib.sha256(code_or_token.encode("utf-8")).hexdigest()
