"""Marshmallow fields more than one HTTP API reads, so their OpenAPI documents say the same."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate

# Text PostgreSQL can store: it refuses NUL in text columns (and psycopg a lone surrogate).
NO_NUL = r"^[^\x00]*$"


class Text(fields.String):
    """A string of `min_length` to `max_length` characters any database here can store: the
    document says its length and pattern (no NUL); a lone surrogate, which only a JSON escape
    can carry and no document can describe, is refused too."""

    def __init__(self, max_length: int, min_length: int = 0, **kwargs: Any) -> None:
        length = validate.Length(min=min_length or None, max=max_length)
        extra = kwargs.pop("validate", [])
        extra = [extra] if callable(extra) else list(extra)
        validators = [length, validate.Regexp(NO_NUL), self._encodable, *extra]
        super().__init__(validate=validators, **kwargs)

    @staticmethod
    def _encodable(value: str) -> None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValidationError("Not valid Unicode text.") from error


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time, loaded as an aware UTC datetime (no offset means UTC) and written
    with its offset (a naive value, as SQLite hands them back, is UTC). A moment beyond what
    UTC can hold (year 1 at +01:00) is clamped to the first or last moment that can: for a
    filter it is the same bound, and any other use refuses it as too early or too late."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            offset = moment.utcoffset() or timedelta(0)
            return (datetime.min if offset > timedelta(0) else datetime.max).replace(tzinfo=UTC)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# Letters, digits and single hyphens: no "--", so no punycode label IDNA rules could refuse.
_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
MAILBOX_PATTERN = rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"


class Mailbox(fields.String):
    """An email address the sender can deliver to without SMTPUTF8: RFC 5321 ASCII, a dot-atom
    of at most 64 characters, a domain of at most 253 with labels of at most 63, 254 in all.
    The document says it as format "email" plus the pattern and maxLength, and the service
    accepts exactly what they allow (marshmallow's Email takes Unicode the sender cannot send,
    and refuses quoted or IP-literal forms the format allows)."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"format": "email", "pattern": MAILBOX_PATTERN, **kwargs.pop("metadata", {})}
        validators: list[Callable[[Any], Any]] = [validate.Length(max=254), self._deliverable]
        super().__init__(validate=validators, metadata=metadata, **kwargs)

    @staticmethod
    def _deliverable(value: str) -> None:
        local, _, domain = value.rpartition("@")
        if (
            not re.fullmatch(MAILBOX_PATTERN, value)
            or len(local) > 64
            or len(domain) > 253
            or any(len(label) > 63 for label in domain.split("."))
        ):
            raise ValidationError("Not a valid email address.")


class JsonBoolean(fields.Boolean):
    """A JSON true or false, nothing else: marshmallow's Boolean also takes 1, "yes" or "on",
    which the document's `type: boolean` forbids."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class JsonInteger(fields.Integer):
    """A JSON integer, nothing else: not a string of digits, a float or a boolean (Python's
    True is an int, the document's `type: integer` is not)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)
