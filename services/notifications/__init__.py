"""The notifications service: who may be emailed about what, the email templates, the
delivery log, and sending over SMTP with retries. It learns everything from events (donation,
campaign and ledger events) and keeps its own projection of donors per campaign."""
