"""Alembic environment of the sharing's database; the service runs it at start (vigil_kit.migrations.upgrade)."""

from vigil_kit.migrations import run_env

run_env()
