"""The fault-injection harness as tests: no ticket lost, no audit row twice, whole trails.

Each test starts its own Kafka and PostgreSQL (see tests/chaos/harness.py), so it needs
Java and PostgreSQL's server binaries (as `make test` provides) but no running infra.
"""

from __future__ import annotations

from typing import Literal

import pytest
from loguru import logger

from tests.chaos.harness import ChaosResult, ChaosRun, ChaosSettings, write_result

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]


async def run_chaos(brokers: Literal[1, 3]) -> ChaosResult:
    settings = ChaosSettings()
    run = ChaosRun(settings, brokers=brokers)
    try:
        result = await run.execute()
    finally:
        await run.cleanup()
    path = write_result(result, settings.out_dir)
    logger.info("chaos result in {}: {}", path, result.to_json())
    return result


def assert_nothing_lost(result: ChaosResult) -> None:
    assert result.published >= ChaosSettings().tickets, result  # its faults say what failed
    assert result.lost == 0, result
    assert result.duplicate_audit_rows == 0, result
    assert result.incomplete_trails == 0, result
    assert result.routed + result.dead_lettered >= result.published


async def test_no_ticket_is_lost_while_services_postgres_and_the_broker_restart() -> None:
    result = await run_chaos(brokers=1)

    assert_nothing_lost(result)
    kinds = {(f.kind, f.target) for f in result.faults if f.ok}
    assert ("restart", "postgres") in kinds
    assert ("crash-restart", "kafka") in kinds
    assert result.faults_injected == len(result.faults)


async def test_no_ticket_is_lost_when_one_of_three_brokers_dies_for_good() -> None:
    result = await run_chaos(brokers=3)

    assert_nothing_lost(result)
    assert ("kill-node", "2") in {(f.kind, f.target) for f in result.faults if f.ok}
    assert result.faults_injected == len(result.faults)
