"""back-office accounts (argon2id password hashes, roles, a sponsor for a sponsor's contact),
their signed-in sessions (by token digest) and the failed sign-ins counted per email and per
address

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:40:00

Tables only: SQLite and PostgreSQL alike.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """The back office's tables."""
    op.create_table(
        'backoffice_accounts',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('roles', sa.String(length=100), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('sponsor_id', sa.String(length=36), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['sponsor_id'], ['sponsors.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email'),
    )
    op.create_table(
        'backoffice_sessions',
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['backoffice_accounts.id']),
        sa.PrimaryKeyConstraint('digest'),
    )
    with op.batch_alter_table('backoffice_sessions', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_backoffice_sessions_account_id'), ['account_id'], unique=False
        )
    op.create_table(
        'sign_in_failures',
        sa.Column('key', sa.String(length=100), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('first_failure_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    """Drop the back office's tables."""
    with op.batch_alter_table('backoffice_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backoffice_sessions_account_id'))
    op.drop_table('backoffice_sessions')
    op.drop_table('sign_in_failures')
    op.drop_table('backoffice_accounts')
