"""Reading what the SMTP sink kept."""

from __future__ import annotations

import email
import email.policy
import json
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path


@dataclass
class Mailbox:
    """The mail directory of one running SMTP sink."""

    host: str
    port: int
    directory: Path

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        """Every kept message (oldest first), optionally only those sent to `to`."""
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            recipients = message.get_all("X-Sink-Rcpt-To", [])
            if to is None or to in recipients:
                found.append(message)
        return found

    def wait_for(
        self, count: int, to: str | None = None, timeout: float = 30.0
    ) -> list[EmailMessage]:
        """Wait until at least `count` messages (to `to`) arrived; return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    @property
    def control_file(self) -> Path:
        """The SMTP sink's control file (see infra/smtp_sink.py)."""
        return self.directory / "sink-control.json"

    def control(self) -> dict[str, object]:
        """What the sink's control file says now (it counts `tempfail_next` down)."""
        try:
            loaded = json.loads(self.control_file.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _set_control(self, **changes: object) -> None:
        control = {**self.control(), **changes}
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / "sink-control.json.test"
        partial.write_text(json.dumps(control))
        partial.replace(self.control_file)

    def refuse_next(self, count: int, code: int = 421) -> None:
        """Make the sink answer the next `count` messages with a transient `code` (4xx)."""
        self._set_control(tempfail_next=count, tempfail_code=code, tempfailed=0)

    def reject(self, *addresses: str) -> None:
        """Make the sink refuse these recipients for good (550 5.1.1)."""
        self._set_control(reject=list(addresses))


def body_text(message: EmailMessage) -> str:
    """The plain-text part of a message."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "message has no text/plain part"
    return part.get_content()
