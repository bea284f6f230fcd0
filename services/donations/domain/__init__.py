"""The donations service's rules, with no I/O: campaigns and their news (campaigns.py), what a
gift costs (giving.py), a donation's lifecycle from checkout to refunds and disputes
(donations.py), and what the payment processor is asked and reports (payments.py)."""
