"""the books: Stripe ids and original dates on entries, fee policy per campaign, gifts, meal
price periods, payout items and closed periods

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:20:00

Written by hand and run on SQLite and PostgreSQL. Existing ledgers are carried over: each
campaign gets one price period (from the epoch, at its current price) holding what its gifts
kept, and each booked gift a row, from the journal's donation entries.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

EPOCH = "1970-01-01 00:00:00"


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('campaigns') as batch:
        batch.add_column(sa.Column('fee_policy', sa.String(length=20), server_default='platform',
                                   nullable=False))
    with op.batch_alter_table('journal_entries') as batch:
        batch.add_column(sa.Column('stripe_object_id', sa.Text(), nullable=True))
        batch.add_column(sa.Column('charge_id', sa.Text(), nullable=True))
        batch.add_column(sa.Column('balance_transaction_id', sa.Text(), nullable=True))
        batch.add_column(sa.Column('original_effective_at', sa.DateTime(timezone=True),
                                   nullable=True))
    op.create_index(op.f('ix_journal_entries_stripe_object_id'), 'journal_entries',
                    ['stripe_object_id'])
    op.create_index(op.f('ix_journal_entries_charge_id'), 'journal_entries', ['charge_id'])
    op.create_index(op.f('ix_journal_entries_balance_transaction_id'), 'journal_entries',
                    ['balance_transaction_id'])
    op.create_index('ix_journal_entries_effective_at', 'journal_entries', ['effective_at'])
    op.create_index('uq_journal_entries_kind_stripe_object', 'journal_entries',
                    ['kind', 'stripe_object_id'], unique=True,
                    postgresql_where=sa.text('stripe_object_id IS NOT NULL'),
                    sqlite_where=sa.text('stripe_object_id IS NOT NULL'))

    op.create_table('gifts',
    sa.Column('donation_id', sa.Text(), nullable=False),
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee_covered', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=True),
    sa.Column('fee_policy', sa.String(length=20), nullable=False),
    sa.Column('charge_id', sa.Text(), nullable=True),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('returned', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('fee_back_to_fund', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('fund_balance', sa.BigInteger(), nullable=False),
    sa.Column('meals', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_gifts_amount_positive')),
    sa.CheckConstraint('returned >= 0 AND returned <= amount',
                       name=op.f('ck_gifts_returned_within_gift')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'],
                            name=op.f('fk_gifts_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('donation_id', name=op.f('pk_gifts'))
    )
    op.create_index(op.f('ix_gifts_campaign_id'), 'gifts', ['campaign_id'])
    op.create_index(op.f('ix_gifts_charge_id'), 'gifts', ['charge_id'])

    op.create_table('meal_periods',
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('meal_price', sa.BigInteger(), nullable=False),
    sa.Column('eligible', sa.BigInteger(), server_default='0', nullable=False),
    sa.CheckConstraint('meal_price > 0', name=op.f('ck_meal_periods_meal_price_positive')),
    sa.CheckConstraint('eligible >= 0', name=op.f('ck_meal_periods_eligible_not_negative')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'],
                            name=op.f('fk_meal_periods_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('campaign_id', 'starts_at', name=op.f('pk_meal_periods'))
    )
    op.create_table('payout_items',
    sa.Column('payout_id', sa.Text(), nullable=False),
    sa.Column('balance_transaction_id', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('payout_id', 'balance_transaction_id', name=op.f('pk_payout_items'))
    )
    op.create_table('closed_periods',
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_closed_periods'))
    )

    # Carry an existing ledger over (the 0001 books knew gross gifts only, all at one price).
    epoch = "TIMESTAMP WITH TIME ZONE '1970-01-01 00:00:00+00'" \
        if op.get_bind().dialect.name == 'postgresql' else f"'{EPOCH}.000000'"
    op.execute(
        "INSERT INTO meal_periods (campaign_id, starts_at, meal_price, eligible) "
        f"SELECT c.campaign_id, {epoch}, c.meal_price, t.donated - t.refunded "
        "FROM campaigns c JOIN campaign_totals t ON t.campaign_id = c.campaign_id"
    )
    op.execute(
        "INSERT INTO gifts (donation_id, campaign_id, currency, amount, fee_covered, fee, "
        "fee_policy, charge_id, effective_at, period_starts_at, returned, fee_back_to_fund, "
        "fund_balance, meals) "
        f"SELECT e.donation_id, e.campaign_id, l.currency, l.amount, 0, NULL, 'platform', NULL, "
        f"e.effective_at, {epoch}, 0, 0, l.amount, 0 "
        "FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id "
        "WHERE e.kind = 'donation' AND l.account = 'assets:stripe-clearing'"
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('closed_periods')
    op.drop_table('payout_items')
    op.drop_table('meal_periods')
    op.drop_index(op.f('ix_gifts_charge_id'), table_name='gifts')
    op.drop_index(op.f('ix_gifts_campaign_id'), table_name='gifts')
    op.drop_table('gifts')
    op.drop_index('uq_journal_entries_kind_stripe_object', table_name='journal_entries')
    op.drop_index('ix_journal_entries_effective_at', table_name='journal_entries')
    op.drop_index(op.f('ix_journal_entries_balance_transaction_id'), table_name='journal_entries')
    op.drop_index(op.f('ix_journal_entries_charge_id'), table_name='journal_entries')
    op.drop_index(op.f('ix_journal_entries_stripe_object_id'), table_name='journal_entries')
    with op.batch_alter_table('journal_entries') as batch:
        batch.drop_column('original_effective_at')
        batch.drop_column('balance_transaction_id')
        batch.drop_column('charge_id')
        batch.drop_column('stripe_object_id')
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_column('fee_policy')
