"""An SMTP sink for local runs and tests: accepts every message on 127.0.0.1 and keeps it as an
.eml file in a mail directory, so people and tests can read what the system sent.

    python infra/smtp_sink.py --port 2525 --maildir var/mail
"""

from __future__ import annotations

import argparse
import itertools
import signal
import threading
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller

_counter = itertools.count()


class MaildirHandler:
    """Writes each accepted message to <maildir>/<time>-<n>-<uuid>.eml atomically."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        """Keep the message with its envelope recipients, then say 250."""
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
