"""difts services: donations, ledger and notifications, and the plumbing they share."""
