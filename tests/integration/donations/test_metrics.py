"""The webhook's answers are counted on /metrics by outcome: received, duplicate, unreadable,
bad_signature."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.donations.conftest import post_signed
from tests.support.stripe_signing import checkout_completed_event, encode

pytestmark = pytest.mark.integration


def answered(client: Any) -> dict[str, float]:
    body = client.get("/metrics").text
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "difts_stripe_webhooks_total"
    }


def test_each_answer_is_counted_by_outcome(donations: dict[str, Any]) -> None:
    client = donations["client"]
    before = answered(client)
    body = encode(checkout_completed_event("no-such-donation", donations["campaign_id"], 2700))
    assert post_signed(client, body, apply=False).json["outcome"] == "received"
    assert post_signed(client, body, apply=False).json["outcome"] == "duplicate"
    assert post_signed(client, b"[]", apply=False).json["outcome"] == "unreadable"
    assert post_signed(client, body, secret="whsec_wrong", apply=False).status_code == 400
    after = answered(client)
    grown = {outcome: after.get(outcome, 0) - before.get(outcome, 0) for outcome in after}
    assert grown == {"received": 1, "duplicate": 1, "unreadable": 1, "bad_signature": 1}
