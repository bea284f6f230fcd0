"""How an email goes on the wire: the letterhead it is written on, RFC 5322 messages that no
field of an event can add headers to, and addresses masked for logs. The words themselves are
written in emails.py.

No I/O: handlers build messages here, the sender only transmits."""

from __future__ import annotations

import email.policy
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

from services.shared.i18n import supported

if TYPE_CHECKING:
    from .emails import RenderedEmail, UnsubscribeLinks

_SPACES = re.compile(r"\s+")

# Headers up to RFC 5322's hard limit of 998 characters are written on one line: folding a
# long unsubscribe URL would turn it into RFC 2047 encoded words, which mail clients do not
# read in List-Unsubscribe (a structured header).
_HEADERS_UNFOLDED = email.policy.default.clone(max_line_length=998)


class UnsendableAddress(ValueError):
    """The recipient's address cannot be written into a message we can send."""


@dataclass(frozen=True)
class Letterhead:
    """Who the service writes as, where its links point, and which clock its dates use."""

    sender: Address
    public_url: str
    timezone: ZoneInfo
    # Where this service's own pages (unsubscribe) are reached from a donor's mailbox.
    notifications_url: str = "http://127.0.0.1:8003"

    @classmethod
    def from_settings(
        cls,
        mail_from: str,
        public_url: str,
        timezone: str,
        notifications_url: str = "http://127.0.0.1:8003",
    ) -> Letterhead:
        """Parse MAIL_FROM ("difts <thanks@difts.localhost>") and the time zone once, at start."""
        name, addr_spec = parseaddr(mail_from)
        if "@" not in addr_spec:
            raise ValueError(f"MAIL_FROM has no address: {mail_from!r}")
        return cls(
            Address(display_name=one_line(name), addr_spec=addr_spec),
            public_url.rstrip("/"),
            ZoneInfo(timezone),
            notifications_url.rstrip("/"),
        )

    def unsubscribe_url(self, token: str) -> str:
        """The page (GET: confirm; POST: one-click) of an unsubscribe token."""
        return f"{self.notifications_url}/unsubscribe/{quote(token, safe='')}"

    def campaign_url(self, slug: str) -> str:
        """The donor page of a campaign."""
        return f"{self.public_url}/campaigns/{quote(slug, safe='')}"


def language(locale: str) -> str:
    """The language we write in for a recipient's locale: French for fr*, else English."""
    return supported(locale, default="en")


def one_line(value: str, limit: int = 200) -> str:
    """`value` with every control character and run of whitespace made a single space: safe
    for a header's words and a greeting, whatever the event carried."""
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in value)
    return _SPACES.sub(" ", cleaned).strip()[:limit]


def build_message(
    rendered: RenderedEmail,
    to_name: str,
    to_email: str,
    letterhead: Letterhead,
    now: datetime,
    unsubscribe: UnsubscribeLinks | None = None,
) -> EmailMessage:
    """A multipart (text + HTML) message to one person. Every header is set through the
    standard library's header objects, so no value can start a header of its own. Emails
    about news carry RFC 8058 one-click unsubscribe headers for this campaign."""
    try:
        recipient = Address(display_name=one_line(to_name), addr_spec=to_email.strip())
    except (ValueError, IndexError) as error:
        raise UnsendableAddress(f"cannot address {mask_email(to_email)}: {error}") from error
    message = EmailMessage(policy=_HEADERS_UNFOLDED)
    message["From"] = letterhead.sender
    message["To"] = recipient
    message["Subject"] = one_line(rendered.subject, limit=250)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=letterhead.sender.domain)
    # RFC 3834: an automatic message, so auto-responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    if unsubscribe is not None:
        # RFC 2369 / RFC 8058: mail clients show an "Unsubscribe" button that POSTs here.
        message["List-Unsubscribe"] = f"<{unsubscribe.this_campaign}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps the message ASCII, so any relay accepts it (no 8BITMIME needed).
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def serialize(message: EmailMessage) -> str:
    """The message as it goes on the wire; UnsendableAddress if it cannot be written in ASCII
    (an address with a non-ASCII local part needs SMTPUTF8, which we do not use)."""
    try:
        wire = message.as_string()
    except ValueError as error:
        raise UnsendableAddress(f"cannot write the message: {error}") from error
    if not wire.isascii():
        raise UnsendableAddress("the message would need SMTPUTF8")
    return wire


def mask_email(address: str) -> str:
    """An address fit for logs and operators' screens: "j***@example.org"."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


_EMAIL_LIKE = re.compile(r"[^\s<>\"'(),;:@]+@[^\s<>\"'(),;:]+")


def redact(text: str) -> str:
    """`text` (an SMTP reply, say) with every email address in it masked, for logs."""
    return _EMAIL_LIKE.sub(lambda match: mask_email(match.group(0)), text)
