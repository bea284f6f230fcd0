"""The chart of accounts: what each account of the journal holds, in finance staff's words.

Account names are "<type>:<name>[:<id>]" so reports can group by type with a prefix. Assets
and expenses grow with debits; funds and income with credits.
"""

from __future__ import annotations

STRIPE_CLEARING = "assets:stripe-clearing"
"""Money Stripe has collected for us and not yet paid out to the bank."""

BANK = "assets:bank"
"""Money Stripe has paid out to our bank account."""

DISPUTED_FUNDS = "assets:disputed-funds"
"""Gifts Stripe withdrew when a donor's bank opened a dispute, until the dispute ends."""

PROCESSING_FEES = "expenses:processing-fees"
"""What Stripe keeps of each charge (less what it gives back on a refund)."""

DISPUTE_FEES = "expenses:dispute-fees"
"""What Stripe charges for each dispute (given back when Stripe says so on a won dispute)."""

DONOR_COVERED_FEES = "income:donor-covered-fees"
"""The part of a gift the donor added to cover the processing fee."""

FEES_CHARGED_TO_CAMPAIGNS = "income:fees-charged-to-campaigns"
"""Processing fees recovered from campaign funds whose fee policy is "fees reduce the fund"."""

SPONSOR_CREDITS = "liabilities:sponsor-credits"
"""Money of programme funds credited back to their sponsors and owed to them until it is paid
(the credit says the money is the sponsor's again, not how it leaves: a bank transfer or a
Stripe refund, booked against this account when it does)."""

ACCOUNTS: dict[str, str] = {
    STRIPE_CLEARING: "Cash at Stripe (clearing)",
    BANK: "Bank",
    DISPUTED_FUNDS: "Funds withdrawn by Stripe for open disputes",
    PROCESSING_FEES: "Processing-fee expense",
    DISPUTE_FEES: "Dispute-fee expense",
    DONOR_COVERED_FEES: "Donor-covered fee income",
    FEES_CHARGED_TO_CAMPAIGNS: "Processing fees charged to campaign funds",
    SPONSOR_CREDITS: "Owed back to sponsors",
}
"""The fixed accounts and their names in finance staff's words (plus one fund per campaign and
one per programme of difts)."""

CAMPAIGN_FUND_PREFIX = "funds:campaign:"
PROGRAMME_FUND_PREFIX = "funds:programme:"


def campaign_fund(campaign_id: str) -> str:
    """The restricted fund of one campaign: what donors gave to it and only it may spend."""
    if not campaign_id or ":" in campaign_id:
        raise ValueError(f"not a usable campaign id for an account name: {campaign_id!r}")
    return f"{CAMPAIGN_FUND_PREFIX}{campaign_id}"


def programme_fund(programme_id: str) -> str:
    """The fund of one programme of difts: money a company paid for its recipients' choices,
    held until each dift is directed (or given by the fallback rule) or credited back."""
    if not programme_id or ":" in programme_id:
        raise ValueError(f"not a usable programme id for an account name: {programme_id!r}")
    return f"{PROGRAMME_FUND_PREFIX}{programme_id}"


def account_name(account: str) -> str:
    """An account's name in finance staff's words."""
    if account.startswith(CAMPAIGN_FUND_PREFIX):
        return f"Restricted fund of campaign {account.removeprefix(CAMPAIGN_FUND_PREFIX)}"
    if account.startswith(PROGRAMME_FUND_PREFIX):
        programme = account.removeprefix(PROGRAMME_FUND_PREFIX)
        return f"Held for recipients' choices: programme {programme}"
    return ACCOUNTS.get(account, account)
