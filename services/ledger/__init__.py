"""The ledger service: a double-entry journal in integer minor units that turns every
confirmed gift into funded meals, per campaign, to the cent.

It consumes donation and campaign events, keeps its own projection of campaigns, and
publishes what each gift did, the meals funded and the milestones reached
(`difts.ledger.donation_booked.v1`, `meals_funded.v1`, `milestone_reached.v1`) through its
outbox. Finance staff read it, close periods and reconcile it against Stripe over HTTP and the
command line.
"""
