"""Helpers shared by the test suites: real infrastructure, mailboxes, Stripe signatures."""
