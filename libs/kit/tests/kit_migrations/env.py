"""Alembic environment of the kit's test-only migration folder."""

from vigil_kit.migrations import run_env

run_env()
