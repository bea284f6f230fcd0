"""Signed unsubscribe links and the pseudonym of an address.

An unsubscribe link names the donor by a keyed pseudonym (an HMAC of the lower-cased address),
never by the address itself, so links, web server logs and erased delivery rows carry no email
address. The same secret signs the links, so nobody can forge one for another donor.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

EVERY_CAMPAIGN = "*"


class InvalidUnsubscribeLink(ValueError):
    """The token was not signed by us, or was altered, or is not a token at all."""


@dataclass(frozen=True)
class UnsubscribeRequest:
    """What a valid unsubscribe link asks: stop one campaign's news (or every campaign's)."""

    email_ref: str
    campaign_id: str | None  # None: every campaign


@dataclass(frozen=True)
class ConsentKeys:
    """The secret behind unsubscribe links and address pseudonyms (NOTIFICATIONS_SIGNING_SECRET).
    Changing it breaks every link already sent and every pseudonym already stored."""

    secret: str

    def email_ref(self, email: str) -> str:
        """The pseudonym of an address: stable, and meaningless without the secret."""
        digest = hmac.new(
            self.secret.encode(), b"email-ref:" + email.strip().lower().encode(), hashlib.sha256
        )
        return digest.hexdigest()

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt="difts-unsubscribe-v1")

    def unsubscribe_token(self, email_ref: str, campaign_id: str | None) -> str:
        """A token for one donor and one campaign (None: every campaign). It does not expire:
        a link in a years-old email must still work."""
        return str(self._serializer().dumps({"r": email_ref, "c": campaign_id or EVERY_CAMPAIGN}))

    def read_unsubscribe_token(self, token: str) -> UnsubscribeRequest:
        """What a token asks, or InvalidUnsubscribeLink."""
        try:
            payload = self._serializer().loads(token)
        except BadSignature as error:
            raise InvalidUnsubscribeLink(
                "the link is not one of ours, or it was altered"
            ) from error
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("r"), str)
            or not isinstance(payload.get("c"), str)
        ):
            raise InvalidUnsubscribeLink("the link does not say whom to unsubscribe")
        campaign = payload["c"]
        return UnsubscribeRequest(payload["r"], None if campaign == EVERY_CAMPAIGN else campaign)
