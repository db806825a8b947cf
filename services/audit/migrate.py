"""Apply the audit store's SQL migrations (services/audit/migrations/) with yoyo.

Migrations are plain SQL files; yoyo records what it applied in its own tables
(`_yoyo_migration`, ...) in the database's default schema, so applying twice is a no-op.
yoyo is synchronous: from async code call it through `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from loguru import logger
from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def yoyo_url(database_url: str) -> str:
    """Return `database_url` with the scheme yoyo needs to use psycopg 3."""
    parts = urlsplit(database_url)
    base, _, _driver = parts.scheme.partition("+")
    if base not in _POSTGRES_SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: scheme {parts.scheme!r}")
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending audit migration; return the ids applied (empty when up to date)."""
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        # The lock serialises concurrent starts of several audit consumers.
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    applied = [migration.id for migration in pending]
    logger.info("audit migrations applied: {}", applied or "none pending")
    return applied
