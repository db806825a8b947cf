"""The operator commands that read the trail: `triageflow trail` and `triageflow dlq list`."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from services.audit.migrate import apply_migrations
from services.audit.repository import PostgresAuditRepository, connect_pool, to_row
from services.cli.main import app
from tests.factories import sample_events

pytestmark = pytest.mark.integration


async def _record_samples(url: str) -> None:
    pool = await connect_pool(url)
    try:
        rows = [to_row(event, "tickets.test", 0, n) for n, event in enumerate(sample_events())]
        await PostgresAuditRepository(pool).insert(rows)
    finally:
        await pool.close()


@pytest.fixture
def recorded_database(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated database holding the sample chain, configured for the CLI."""
    apply_migrations(fresh_database)
    asyncio.run(_record_samples(fresh_database))
    monkeypatch.setenv("TRIAGEFLOW_DATABASE_URL", fresh_database)
    return fresh_database


def test_trail_json_prints_the_ticket_events_in_causal_order(recorded_database: str) -> None:
    result = CliRunner().invoke(app, ["trail", "T-1", "--json"])

    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert [e["event_type"] for e in events] == [
        "ticket.received",
        "ticket.classified",
        "ticket.decided",
        "ticket.routed",
        "ticket.feedback",
    ]
    for event in events:
        assert {"event_type", "event_id", "causation_id", "occurred_at"} <= set(event)
    assert events[2]["rules_fired"][0]["rule_id"] == "vip-cap"
    assert events[1]["causation_id"] == events[0]["event_id"]


def test_trail_reads_as_a_story_for_a_person(recorded_database: str) -> None:
    result = CliRunner().invoke(app, ["trail", "T-1"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    for fragment in ("billing 0.97", "ASSIST by policy default v1", "vip-cap", "queue billing"):
        assert fragment in result.stdout


def test_trail_of_an_unknown_ticket_says_so_and_fails(recorded_database: str) -> None:
    result = CliRunner().invoke(app, ["trail", "nope"])

    assert result.exit_code == 1
    assert "no recorded events" in result.output


def test_dlq_list_shows_stage_and_reason(recorded_database: str) -> None:
    result = CliRunner().invoke(app, ["dlq", "list"], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "T-bad" in result.stdout
    assert "invalid_json" in result.stdout
