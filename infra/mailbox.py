"""`make mail` / `python -m infra.mailbox [N]`: show the last N messages the SMTP sink kept,
decoded (headers that matter and the plain-text part), newest last."""

from __future__ import annotations

import email
import email.policy
import os
import sys
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Print the newest messages of var/mail (or $DIFTS_VAR/mail)."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    maildir = Path(os.environ.get("DIFTS_VAR", REPO / "var")) / "mail"
    paths = sorted(maildir.glob("*.eml"))
    if not paths:
        print(f"no mail in {maildir} yet (make run keeps every message the system sends there)")
        return
    for path in paths[-count:]:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        print(f"=== {path.name}")
        for header in ("Date", "From", "To", "Subject", "List-Unsubscribe"):
            if message[header]:
                print(f"{header}: {message[header]}")
        body = message.get_body(preferencelist=("plain",))
        print()
        print(body.get_content().strip() if body else "(no text part)")
        print()
    print(f"{len(paths)} message(s) in {maildir}; open an .eml file in any mail client for HTML.")


if __name__ == "__main__":
    main()
