"""An SMTP sink for local runs and tests: accepts every message on 127.0.0.1 and keeps it as an
.eml file in a mail directory, so people and tests can read what the system sent.

    python infra/smtp_sink.py --port 2525 --maildir var/mail

Tests (and people) can make it misbehave at run time through a control file in the mail
directory, `<maildir>/sink-control.json`, read at every recipient and message:

    {"tempfail_next": 3, "tempfail_code": 421, "reject": ["bounce@example.org"]}

- `tempfail_next`: answer the next N messages (at DATA) with a transient error, default 421
  ("service not available", after which clients close the connection); the sink counts it
  down itself. `tempfail_code` may be any 4xx.
- `reject`: recipients refused for good at RCPT with "550 5.1.1".

Without the file the sink accepts everything, as before. Refused messages are not kept.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import threading
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

_counter = itertools.count()

CONTROL_FILE = "sink-control.json"


class MaildirHandler:
    """Writes each accepted message to <maildir>/<time>-<n>-<uuid>.eml atomically."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.maildir.mkdir(parents=True, exist_ok=True)

    def _control(self) -> dict:
        """The failure modes asked for in the control file, or none."""
        try:
            control = json.loads((self.maildir / CONTROL_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return control if isinstance(control, dict) else {}

    def _write_control(self, control: dict) -> None:
        partial = self.maildir / (CONTROL_FILE + ".sink")
        partial.write_text(json.dumps(control))
        partial.replace(self.maildir / CONTROL_FILE)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        """Refuse the recipients the control file names, accept every other one."""
        rejected = {str(item).lower() for item in self._control().get("reject", [])}
        if address.lower() in rejected:
            return f"550 5.1.1 <{address}>: recipient address rejected (sink control)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        """Keep the message with its envelope recipients, then say 250 (or, if the control
        file asks, refuse it for now)."""
        control = self._control()
        pending_failures = int(control.get("tempfail_next", 0) or 0)
        if pending_failures > 0:
            control["tempfail_next"] = pending_failures - 1
            control["tempfailed"] = int(control.get("tempfailed", 0)) + 1
            self._write_control(control)
            code = int(control.get("tempfail_code", 421))
            return f"{code} 4.3.2 Service busy, try again later (sink control)"
        name = f"{time.time_ns()}-{next(_counter):06d}-{uuid.uuid4().hex[:8]}.eml"
        header = "".join(f"X-Sink-Rcpt-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        header += f"X-Sink-Mail-From: {envelope.mail_from}\r\n"
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        partial = self.maildir / (name + ".part")
        partial.write_bytes(header.encode() + content)
        partial.rename(self.maildir / name)
        return "250 Message accepted for delivery"


def main() -> None:
    """Run the sink until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(
        f"smtp sink listening on {args.host}:{args.port}, keeping mail in {args.maildir}",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
