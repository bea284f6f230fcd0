"""Alembic environment of the donations database."""

from services.donations.store import metadata
from services.shared.migrations_env import run_migrations

run_migrations(metadata)
