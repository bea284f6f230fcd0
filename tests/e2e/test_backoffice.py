"""The back office on the running system (gunicorn processes, PostgreSQL, Kafka): an account
made with the CLI as `make account` makes it, signed in through the form, a campaign
manager's news editor previewing the email through the notifications service over HTTP (so
the stack's wiring of DIFTS_NOTIFICATIONS_URL and its token is what is tested), and finance
refused the manager's pages."""

from __future__ import annotations

import re
import subprocess
import sys

import requests

from infra.stack import REPO

from .conftest import RunningSystem
from .test_one_dift import SLUG

PASSWORD = "e2e-back-office-password"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def create_account(system: RunningSystem, email: str, role: str) -> None:
    env = {**system.stack._env(), "DIFTS_ACCOUNT_PASSWORD": PASSWORD}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.donations",
            "create-account",
            "--email",
            email,
            "--role",
            role,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert f"account {email} created" in made.stdout


def signed_in(system: RunningSystem, email: str) -> tuple[requests.Session, str]:
    browser = requests.Session()
    browser.headers["Accept-Language"] = "en"
    base = system.url("donations")
    form = browser.get(f"{base}/backoffice/sign-in", timeout=10)
    token = _CSRF.search(form.text)
    assert token
    answer = browser.post(
        f"{base}/backoffice/sign-in",
        data={"csrf_token": token.group(1), "email": email, "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text[-500:]
    assert "HttpOnly" in answer.headers["Set-Cookie"]
    return browser, base


def test_a_manager_previews_a_news_email_through_notifications(system: RunningSystem) -> None:
    create_account(system, "manager-e2e@example.org", "admin")
    create_account(system, "books-e2e@example.org", "finance")
    assert requests.get(f"{system.url('donations')}/backoffice/", timeout=10).status_code == 401

    manager, base = signed_in(system, "manager-e2e@example.org")
    editor = manager.get(f"{base}/backoffice/news/{SLUG}/new", timeout=10)
    assert editor.status_code == 200
    token = _CSRF.search(editor.text)
    assert token
    preview = manager.post(
        f"{base}/backoffice/news/{SLUG}/preview",
        data={
            "csrf_token": token.group(1),
            "title": "The new canteen opens",
            "body_markdown": "Come **on Monday**.",
            "locale": "en",
            "action": "preview",
        },
        timeout=30,
    )
    assert preview.status_code == 200, preview.text[-1000:]
    assert "The new canteen opens" in preview.text
    assert "Dear difteurs" in preview.text  # notifications' rendering, over HTTP
    assert "does not answer" not in preview.text

    books, _ = signed_in(system, "books-e2e@example.org")
    assert books.get(f"{base}/backoffice/news", timeout=10).status_code == 403
