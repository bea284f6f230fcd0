"""a campaign's texts per language of the donor pages (title, summary, story, what the money
is used for), each left empty reading the campaign's own

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 09:30:00

Tables only: SQLite and PostgreSQL alike.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The campaign texts' table."""
    op.create_table(
        'campaign_texts',
        sa.Column('campaign_id', sa.String(length=36), nullable=False),
        sa.Column('locale', sa.String(length=10), nullable=False),
        sa.Column('title', sa.String(length=300), server_default='', nullable=False),
        sa.Column('summary', sa.Text(), server_default='', nullable=False),
        sa.Column('story_markdown', sa.Text(), server_default='', nullable=False),
        sa.Column('money_uses', sa.Text(), server_default='[]', nullable=False),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id']),
        sa.PrimaryKeyConstraint('campaign_id', 'locale'),
    )


def downgrade() -> None:
    """Drop the campaign texts' table."""
    op.drop_table('campaign_texts')
