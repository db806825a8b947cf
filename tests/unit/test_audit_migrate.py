"""The audit migrations as files, and the URL yoyo is given (no server)."""

from __future__ import annotations

import itertools
import re

import pytest

from services.audit.migrate import MIGRATIONS_DIR, yoyo_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        (
            "postgresql://u:p%40ss@h/db?sslmode=verify-full",
            "postgresql+psycopg://u:p%40ss@h/db?sslmode=verify-full",
        ),
    ],
)
def test_yoyo_is_given_a_psycopg3_url_with_everything_else_kept(url: str, expected: str) -> None:
    assert yoyo_url(url) == expected


def test_a_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        yoyo_url("mysql://u@h/db")


def test_every_rollback_belongs_to_a_migration_and_ids_sort_in_dependency_order() -> None:
    files = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    applies = [name for name in files if not name.endswith(".rollback.sql")]
    rollbacks = [name for name in files if name.endswith(".rollback.sql")]

    assert all(re.fullmatch(r"audit_\d{4}_[a-z_]+\.sql", name) for name in applies)
    assert {name.replace(".rollback", "") for name in rollbacks} <= set(applies)
    for previous, current in itertools.pairwise(applies):
        depends = re.search(r"^-- depends: (\S+)$", (MIGRATIONS_DIR / current).read_text(), re.M)
        assert depends is not None, current
        assert depends.group(1) == previous.removesuffix(".sql")
