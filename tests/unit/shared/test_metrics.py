"""/metrics: every service answers Prometheus's text format, requests are timed by route
pattern (one series per endpoint, not per id), and in multiprocess mode (under gunicorn)
one process's /metrics reports what the others counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.shared.web import create_service_app


def samples(body: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    ]


def test_requests_are_timed_by_route_pattern_and_exposed() -> None:
    app, _api = create_service_app("metrics-test", "test", checks={})

    @app.get("/things/<thing>")
    def thing(thing: str) -> str:
        return thing

    client = app.test_client()
    for name in ("a", "b", "c"):
        assert client.get(f"/things/{name}").status_code == 200
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.content_type.startswith("text/plain")
    counts = {
        labels["route"]: value
        for labels, value in samples(reply.text, "difts_http_request_duration_seconds_count")
        if labels["service"] == "metrics-test" and labels["status"] == "200"
    }
    assert counts["/things/<thing>"] == 3
    assert not any(route.startswith("/things/a") for route in counts)
    assert "/metrics" not in counts  # scrapes do not time themselves


CHILD = """
import sys
from services.shared.metrics import EMAILS, OUTBOX_BACKLOG
EMAILS.labels("receipt", "sent").inc(int(sys.argv[1]))
OUTBOX_BACKLOG.labels("child").set(int(sys.argv[1]))
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    repo = Path(__file__).resolve().parents[3]
    for count in (2, 5):
        subprocess.run([sys.executable, "-c", CHILD, str(count)], env=env, cwd=repo, check=True)
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "from services.shared.metrics import exposition; print(exposition()[0].decode())",
        ],
        env=env,
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    sent = samples(reader.stdout, "difts_emails_total")
    assert [
        value for labels, value in sent if labels == {"kind": "receipt", "outcome": "sent"}
    ] == [7.0]
    backlog = samples(reader.stdout, "difts_outbox_backlog_events")
    assert [value for _labels, value in backlog] == pytest.approx([5.0])  # livemax of the two
