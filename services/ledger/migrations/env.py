"""Alembic environment of the ledger: its tables, migrated online by the shared runner."""

from services.ledger.store import metadata
from services.shared.migrations_env import run_migrations

run_migrations(metadata)
