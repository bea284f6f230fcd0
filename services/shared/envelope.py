"""The CloudEvents 1.0 envelope (structured JSON mode) that every difts event travels in."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class InvalidEnvelope(ValueError):
    """The bytes are not a CloudEvents 1.0 structured JSON event we can read."""


class _EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    specversion = fields.String(required=True, validate=validate.Equal(SPEC_VERSION))
    id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.Length(min=1, max=200))
    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
    time = fields.AwareDateTime(required=True, format="iso", default_timezone=UTC)
    subject = fields.String(load_default=None, allow_none=True)
    datacontenttype = fields.String(load_default=CONTENT_TYPE)
    data = fields.Dict(required=True)
    # CloudEvents extension attribute: lowercase alphanumerics only, by the spec.
    correlationid = fields.String(load_default=None, allow_none=True)


_SCHEMA = _EnvelopeSchema()


@dataclass(frozen=True)
class CloudEvent:
    """One event: who said it (source), what happened (type), about what (subject), and data."""

    id: str
    type: str
    source: str
    time: datetime
    data: dict[str, Any]
    subject: str | None = None
    correlationid: str | None = None
    datacontenttype: str = CONTENT_TYPE
    specversion: str = field(default=SPEC_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """The structured-mode JSON object."""
        body: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "time": self.time.isoformat(),
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        if self.correlationid is not None:
            body["correlationid"] = self.correlationid
        return body

    def to_json(self) -> str:
        """Serialise for the wire (and for the outbox table)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        """Parse structured-mode JSON; raise InvalidEnvelope with the reason if we cannot."""
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEnvelope(f"not JSON: {error}") from error
        if not isinstance(body, dict):
            raise InvalidEnvelope("envelope is not a JSON object")
        try:
            loaded = _SCHEMA.load(body)
        except ValidationError as error:
            raise InvalidEnvelope(f"invalid envelope: {error.messages}") from error
        return cls(**loaded)


def new_event(
    type_: str,
    source: str,
    data: dict[str, Any],
    subject: str | None = None,
    correlation_id: str | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """A fresh event with a new id and the current time."""
    return CloudEvent(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        source=source,
        time=datetime.now(UTC),
        data=data,
        subject=subject,
        correlationid=correlation_id,
    )
