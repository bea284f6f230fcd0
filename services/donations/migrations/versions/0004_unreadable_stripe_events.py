"""unreadable stripe events: what was wrong with a signed body we could not apply

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A kept Stripe event says why it could not be applied, for the person who looks."""
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('problem', sa.Text(), nullable=True))


def downgrade() -> None:
    """Forget the reasons."""
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_column('problem')
