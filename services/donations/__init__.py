"""The donations service: campaigns, donations and their lifecycle, Stripe Checkout and the
Stripe webhook. Publishes donation and campaign events through its outbox."""
