"""Local-run machinery: starting the broker, stripe-mock, the SMTP sink and the services."""
