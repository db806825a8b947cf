"""Retries, bisection and dead letters of the stage loop, on fake processes (no Kafka)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaConnectionError

from shared.codec import InvalidMessage
from shared.contracts import ProducerInfo, Stage, TicketDeadLettered
from shared.stage import (
    DeadLetterTarget,
    Incoming,
    Outgoing,
    RetryPolicy,
    TransientError,
    dead_letter,
    process_with_retries,
)
from tests.factories import received

TARGET = DeadLetterTarget(
    stage=Stage.POLICY,
    producer=ProducerInfo(service="policy", version="test", instance="t-1"),
    topic="tickets.deadletter",
)
POLICY = RetryPolicy(max_attempts=3, backoff_initial_s=0.1, backoff_max_s=0.3)


def records(count: int) -> list[Incoming]:
    return [
        Incoming("tickets.decided", 0, offset, f"T-{offset}".encode(), b'{"ticket_id": "x"}')
        for offset in range(count)
    ]


class FakeStage:
    """Echoes each record as one outgoing message; raises on the offsets it is told to."""

    def __init__(self, *, poison: frozenset[int] = frozenset(), fail_first: int = 0) -> None:
        self.poison = poison
        self.fail_first = fail_first
        self.calls: list[list[int]] = []

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        self.calls.append([r.offset for r in batch])
        if len(self.calls) <= self.fail_first:
            raise ValueError("flaky")
        bad = [r.offset for r in batch if r.offset in self.poison]
        if bad:
            raise ValueError(f"cannot process offset {bad[0]}")
        return [
            Outgoing("out", r.key.decode() if r.key else "", received(), cause=r) for r in batch
        ]


class FakePublisher:
    def __init__(self, errors: Sequence[Exception] = ()) -> None:
        self.errors = list(errors)
        self.published: list[Outgoing] = []

    async def __call__(self, messages: Sequence[Outgoing]) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.published.extend(messages)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def dead_letters(messages: Sequence[Outgoing]) -> list[TicketDeadLettered]:
    return [m.event for m in messages if isinstance(m.event, TicketDeadLettered)]


async def test_a_healthy_batch_is_processed_once_without_waiting() -> None:
    stage, publish, sleep = FakeStage(), FakePublisher(), Sleeps()

    out = await process_with_retries(
        records(5), stage, publish, policy=POLICY, target=TARGET, sleep=sleep
    )

    assert len(out) == 5
    assert publish.published == out
    assert stage.calls == [[0, 1, 2, 3, 4]]
    assert sleep.waits == []


async def test_a_flaky_batch_succeeds_on_a_later_attempt_after_backing_off() -> None:
    stage, publish, sleep = FakeStage(fail_first=2), FakePublisher(), Sleeps()

    out = await process_with_retries(
        records(4), stage, publish, policy=POLICY, target=TARGET, sleep=sleep
    )

    assert len(out) == 4
    assert dead_letters(out) == []
    assert sleep.waits == [0.1, 0.2]


async def test_a_poison_record_is_dead_lettered_with_every_attempt_and_the_rest_published() -> None:
    stage, publish, sleep = FakeStage(poison=frozenset({5})), FakePublisher(), Sleeps()

    out = await process_with_retries(
        records(8), stage, publish, policy=POLICY, target=TARGET, sleep=sleep
    )

    letters = dead_letters(out)
    assert [letter.original_offset for letter in letters] == [5]
    assert letters[0].stage is Stage.POLICY
    # Three attempts of the whole batch, then three of the record on its own.
    assert [a.attempt for a in letters[0].attempts] == [1, 2, 3, 4, 5, 6]
    assert all("offset 5" in a.error_message for a in letters[0].attempts)
    published_offsets = sorted(m.cause.offset for m in publish.published if m.cause)
    assert published_offsets == list(range(8))
    assert len(publish.published) == 8  # seven events and one dead letter, once each


async def test_the_backoff_is_capped() -> None:
    assert [POLICY.backoff(n) for n in (1, 2, 3, 4, 10)] == [0.1, 0.2, 0.3, 0.3, 0.3]


async def test_bisection_needs_far_fewer_calls_than_one_per_record() -> None:
    stage, publish, sleep = FakeStage(poison=frozenset({3, 60})), FakePublisher(), Sleeps()

    out = await process_with_retries(
        records(64), stage, publish, policy=POLICY, target=TARGET, sleep=sleep
    )

    assert sorted(letter.original_offset for letter in dead_letters(out)) == [3, 60]
    # 3 batch attempts, about 2 calls per level of halving per poison record, 2 solo retries.
    assert len(stage.calls) < 40
    assert len(publish.published) == 64


async def test_dead_letter_ids_are_the_same_when_the_batch_is_replayed() -> None:
    first = await process_with_retries(
        records(4),
        FakeStage(poison=frozenset({2})),
        FakePublisher(),
        policy=POLICY,
        target=TARGET,
        sleep=Sleeps(),
    )
    second = await process_with_retries(
        records(4),
        FakeStage(poison=frozenset({2})),
        FakePublisher(),
        policy=POLICY,
        target=TARGET,
        sleep=Sleeps(),
    )

    assert [d.event_id for d in dead_letters(first)] == [d.event_id for d in dead_letters(second)]


def test_a_new_record_at_a_recreated_topics_old_offset_gets_its_own_dead_letter_id() -> None:
    # A recreated topic restarts at offset 0: the same coordinates name another record.
    before = Incoming("tickets.inbound", 5, 64, b"T-1", b'{"broken', timestamp_ms=1_000)
    after = Incoming("tickets.inbound", 5, 64, b"T-2", b'{"broken', timestamp_ms=9_000)
    same_bytes_later = dataclasses.replace(before, timestamp_ms=9_000)
    redelivered = dataclasses.replace(before)

    def letter_id(record: Incoming) -> str:
        error = InvalidMessage("invalid_json", "Unterminated string")
        letter = dead_letter(record, stage=Stage.CLASSIFIER, error=error, producer=TARGET.producer)
        return letter.event_id

    ids = [letter_id(r) for r in (before, after, same_bytes_later)]
    assert len(set(ids)) == 3
    assert letter_id(redelivered) == ids[0]


@pytest.mark.parametrize(
    "error", [KafkaConnectionError("broker down"), TransientError("database down")]
)
async def test_transient_errors_are_never_dead_lettered_but_raised_for_redelivery(
    error: Exception,
) -> None:
    class Down(FakeStage):
        async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
            self.calls.append([r.offset for r in batch])
            raise error

    stage, publish = Down(), FakePublisher()

    with pytest.raises(type(error)):
        await process_with_retries(
            records(3), stage, publish, policy=POLICY, target=TARGET, sleep=Sleeps()
        )

    assert len(stage.calls) == 1
    assert publish.published == []


async def test_a_failed_publish_of_the_kafka_kind_is_redelivered_not_dead_lettered() -> None:
    publish = FakePublisher(errors=[KafkaConnectionError("broker down")])

    with pytest.raises(KafkaConnectionError):
        await process_with_retries(
            records(2), FakeStage(), publish, policy=POLICY, target=TARGET, sleep=Sleeps()
        )

    assert publish.published == []


async def test_without_a_target_a_failing_batch_raises_after_the_last_attempt() -> None:
    stage = FakeStage(poison=frozenset({1}))

    with pytest.raises(ValueError, match="offset 1"):
        await process_with_retries(
            records(3), stage, FakePublisher(), policy=POLICY, target=None, sleep=Sleeps()
        )

    assert len(stage.calls) == 3
