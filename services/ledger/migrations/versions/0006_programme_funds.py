"""programme funds: each company programme's fund (its running summary), the fundings, difts
and credits back booked on it (each once), each dift's allocations to campaigns, and what
difts brought to each campaign apart from gifts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:00:00

Written by hand and run on SQLite and PostgreSQL; existing campaigns received no dift yet.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The three tables and the campaigns' dift columns."""
    with op.batch_alter_table('campaign_totals') as batch:
        batch.add_column(sa.Column('difts_amount', sa.BigInteger(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('difts_received', sa.Integer(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('dift_meals', sa.Integer(), server_default='0',
                                   nullable=False))
    op.create_table(
        'programmes',
        sa.Column('programme_id', sa.Text(), nullable=False),
        sa.Column('sponsor_id', sa.Text(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('funded', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('fees', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('directed', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('expired_given', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('credited_back', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('difts_directed', sa.Integer(), server_default='0', nullable=False),
        sa.Column('difts_expired', sa.Integer(), server_default='0', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('funded - directed - expired_given - credited_back >= 0',
                           name=op.f('ck_programmes_fund_not_negative')),
        sa.PrimaryKeyConstraint('programme_id', name=op.f('pk_programmes')),
    )
    op.create_table(
        'programme_movements',
        sa.Column('movement', sa.String(length=20), nullable=False),
        sa.Column('reference', sa.Text(), nullable=False),
        sa.Column('programme_id', sa.Text(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('movement', 'reference', name=op.f('pk_programme_movements')),
    )
    op.create_index(op.f('ix_programme_movements_programme_id'), 'programme_movements',
                    ['programme_id'])
    op.create_table(
        'dift_allocations',
        sa.Column('dift_id', sa.Text(), nullable=False),
        sa.Column('campaign_id', sa.Text(), nullable=False),
        sa.Column('programme_id', sa.Text(), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('meals', sa.Integer(), nullable=False),
        sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('amount > 0', name=op.f('ck_dift_allocations_amount_positive')),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.campaign_id'],
                                name=op.f('fk_dift_allocations_campaign_id_campaigns')),
        sa.PrimaryKeyConstraint('dift_id', 'campaign_id', name=op.f('pk_dift_allocations')),
    )
    op.create_index(op.f('ix_dift_allocations_programme_id'), 'dift_allocations',
                    ['programme_id'])
    op.create_index('ix_dift_allocations_campaign_period', 'dift_allocations',
                    ['campaign_id', 'period_starts_at'])


def downgrade() -> None:
    """Drop them."""
    op.drop_table('dift_allocations')
    op.drop_table('programme_movements')
    op.drop_table('programmes')
    with op.batch_alter_table('campaign_totals') as batch:
        batch.drop_column('dift_meals')
        batch.drop_column('difts_received')
        batch.drop_column('difts_amount')
