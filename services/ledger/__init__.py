"""The ledger service: a double-entry journal in integer minor units that turns every
confirmed gift into funded meals, per campaign, to the cent.

It consumes donation and campaign events, keeps its own projection of campaigns, and
publishes `difts.ledger.meals_funded.v1` through its outbox. Finance staff read it over HTTP.
"""
