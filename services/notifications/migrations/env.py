"""Alembic environment of the notifications database."""

from services.notifications.store import metadata
from services.shared.migrations_env import run_migrations

run_migrations(metadata)
