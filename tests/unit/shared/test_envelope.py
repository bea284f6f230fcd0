"""The CloudEvents envelope and the published event schemas."""

import json

import pytest

from services.shared.envelope import CloudEvent, InvalidEnvelope, new_event
from services.shared.events import (
    DONATION_SUCCEEDED,
    InvalidEventData,
    dump_data,
    load_data,
)

GOOD_DATA = {
    "donation_id": "d-1",
    "campaign_id": "c-1",
    "campaign_slug": "petites-cantines",
    "campaign_title": "Canteens",
    "amount": 2700,
    "currency": "EUR",
    "meal_price": 1350,
    "donor": {"email": "ada@example.org", "name": "Ada", "locale": "fr"},
    "updates_opt_in": True,
    "succeeded_at": "2026-11-22T10:00:00+00:00",
}


def test_an_event_survives_the_round_trip_through_json() -> None:
    event = new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        GOOD_DATA,
        subject="donations/d-1",
        correlation_id="req-42",
    )
    again = CloudEvent.from_json(event.to_json().encode())
    assert again == event
    body = json.loads(event.to_json())
    assert body["specversion"] == "1.0"
    assert body["datacontenttype"] == "application/json"
    assert body["correlationid"] == "req-42"


def test_unknown_envelope_attributes_and_data_fields_are_ignored() -> None:
    body = json.loads(new_event(DONATION_SUCCEEDED, "s", GOOD_DATA).to_json())
    body["someextension"] = "x"
    body["data"]["added_in_v1_1"] = 7
    event = CloudEvent.from_json(json.dumps(body))
    assert "added_in_v1_1" not in load_data(event.type, event.data)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1,2]",
        b'{"specversion":"0.3"}',
        b'{"specversion":"1.0","id":"x","type":"t","source":"s"}',
    ],
)
def test_what_is_not_a_cloudevent_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        CloudEvent.from_json(raw)


@pytest.mark.parametrize("amount", [27.0, "2700", -1, 0, True])
def test_money_in_events_is_a_positive_integer_of_minor_units(amount: object) -> None:
    with pytest.raises(InvalidEventData):
        load_data(DONATION_SUCCEEDED, {**GOOD_DATA, "amount": amount})


def test_a_producer_cannot_publish_data_that_breaks_its_schema() -> None:
    with pytest.raises(InvalidEventData):
        dump_data(DONATION_SUCCEEDED, {**GOOD_DATA, "currency": "euros"})
