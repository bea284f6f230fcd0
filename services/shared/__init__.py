"""What every difts service needs the same way: the event envelope and the published event
schemas, the outbox and its relay, the idempotent consumer with its dead-letter path,
configuration, logging, and the health and error pieces of a Flask app. No domain logic."""
