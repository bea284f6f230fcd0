"""the database guards the journal: entries and lines are append-only (both databases), and
on PostgreSQL every entry's lines must sum to zero per currency when the transaction commits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:50:00

Written by hand. The code already refuses an unbalanced entry and never updates or deletes
one; these triggers make the database refuse it too, whoever writes. SQLite has no deferred
triggers, so there the balance is checked by the code and the tests' scan only.
"""
from typing import Sequence, Union

from alembic import op


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ('journal_entries', 'journal_lines')


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'check_violation';
            END $$
        """)
        for table in TABLES:
            op.execute(f"""
                CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
            """)
        op.execute("""
            CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM journal_lines WHERE entry_id = NEW.entry_id
                           GROUP BY currency HAVING sum(amount) <> 0) THEN
                    RAISE EXCEPTION 'journal entry % does not balance', NEW.entry_id
                        USING ERRCODE = 'check_violation';
                END IF;
                RETURN NULL;
            END $$
        """)
        op.execute("""
            CREATE CONSTRAINT TRIGGER journal_lines_balanced AFTER INSERT ON journal_lines
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()
        """)
    else:
        for table in TABLES:
            for operation in ('UPDATE', 'DELETE'):
                op.execute(f"""
                    CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}
                    BEGIN
                        SELECT RAISE(ABORT, 'the journal is append-only: {operation} on {table} refused');
                    END
                """)


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER journal_lines_balanced ON journal_lines")
        op.execute("DROP FUNCTION ledger_check_entry_balanced()")
        for table in TABLES:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION ledger_refuse_change()")
    else:
        for table in TABLES:
            for operation in ('update', 'delete'):
                op.execute(f"DROP TRIGGER {table}_no_{operation}")
