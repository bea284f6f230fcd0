"""initial ledger schema: campaigns projection, append-only journal, campaign totals,
outbox and processed events

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:52:38.771724

Generated with autogenerate against SQLite, then reviewed to run on SQLite and PostgreSQL:
indexes are created with plain op.create_index (no table rebuild needed), the partial unique
index carries its WHERE clause for both dialects.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# BIGSERIAL on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('campaigns',
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('slug', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('meal_price', sa.BigInteger(), nullable=False),
    sa.Column('goal_meals', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('meal_price > 0', name=op.f('ck_campaigns_meal_price_positive')),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('slug', name=op.f('uq_campaigns_slug'))
    )
    op.create_table('journal_entries',
    sa.Column('id', _Id, autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('campaign_id', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('donation_id', sa.Text(), nullable=True),
    sa.Column('stripe_reference', sa.Text(), nullable=True),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries'))
    )
    op.create_index(op.f('ix_journal_entries_campaign_id'), 'journal_entries', ['campaign_id'])
    op.create_index(op.f('ix_journal_entries_event_id'), 'journal_entries', ['event_id'])
    # A gift is booked once per donation, whatever event ids its confirmations carry.
    op.create_index('uq_journal_entries_donation_gift', 'journal_entries', ['donation_id'],
                    unique=True,
                    postgresql_where=sa.text("kind = 'donation'"),
                    sqlite_where=sa.text("kind = 'donation'"))

    op.create_table('journal_lines',
    sa.Column('id', _Id, autoincrement=True, nullable=False),
    sa.Column('entry_id', _Id, nullable=False),
    sa.Column('account', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_journal_lines_amount_not_zero')),
    sa.ForeignKeyConstraint(['entry_id'], ['journal_entries.id'], name=op.f('fk_journal_lines_entry_id_journal_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_lines'))
    )
    op.create_index(op.f('ix_journal_lines_account'), 'journal_lines', ['account'])
    op.create_index(op.f('ix_journal_lines_entry_id'), 'journal_lines', ['entry_id'])

    op.create_table('campaign_totals',
    sa.Column('campaign_id', sa.Text(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('donated', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('refunded', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('donations', sa.Integer(), server_default='0', nullable=False),
    sa.Column('meals_funded', sa.Integer(), server_default='0', nullable=False),
    sa.Column('remainder', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'], name=op.f('fk_campaign_totals_campaign_id_campaigns')),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_campaign_totals'))
    )

    op.create_table('outbox',
    sa.Column('seq', _Id, autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id'))
    )
    op.create_index('ix_outbox_unpublished', 'outbox', ['seq'],
                    postgresql_where=sa.text('published_at IS NULL'),
                    sqlite_where=sa.text('published_at IS NULL'))

    op.create_table('processed_events',
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_processed_events'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('processed_events')
    op.drop_index('ix_outbox_unpublished', table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('campaign_totals')
    op.drop_index(op.f('ix_journal_lines_entry_id'), table_name='journal_lines')
    op.drop_index(op.f('ix_journal_lines_account'), table_name='journal_lines')
    op.drop_table('journal_lines')
    op.drop_index('uq_journal_entries_donation_gift', table_name='journal_entries')
    op.drop_index(op.f('ix_journal_entries_event_id'), table_name='journal_entries')
    op.drop_index(op.f('ix_journal_entries_campaign_id'), table_name='journal_entries')
    op.drop_table('journal_entries')
    op.drop_table('campaigns')
