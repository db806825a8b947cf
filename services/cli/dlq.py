"""`triageflow dlq list|show|replay`: inspect dead letters and put them back on their topic.

A replay re-validates the dead letter's original bytes (or an operator's corrected message)
against the contract of its original topic, refuses what is still invalid, republishes the
rest to that topic with the original key and an `x-triageflow-replay-of` header, and then
records a `ticket.dead_letter_replayed` event on the dead-letter topic (the audit trail).

Idempotent: a dead letter with a recorded replay is refused unless `--force`; and the same
bytes decode to the same event id (upstream tickets derive it from their content), so
even a forced replay repeats ids that the audit store and downstream consumers already
de-duplicate. A corrected message is a new event with a new id: its replay record keeps it.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.text import Text

from services.cli.settings import CliSettings
from shared.codec import InvalidMessage, decode, encode
from shared.contracts import (
    DeadLetterReplayed,
    FeedbackGiven,
    ProducerInfo,
    TicketClassified,
    TicketDeadLettered,
    TicketDecided,
    TicketReceived,
    TicketRouted,
)
from shared.ids import derived_event_id
from shared.settings import KafkaSettings
from shared.topics import Topics

if TYPE_CHECKING:
    from services.audit.repository import DeadLetterEntry, PostgresAuditRepository

REPLAY_HEADER = "x-triageflow-replay-of"

dlq_app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


# ------------------------------------------------------------------ replay planning


@dataclass(frozen=True)
class ReplayPlan:
    """A dead letter that may be replayed, and exactly what would be published."""

    letter: TicketDeadLettered
    topic: str
    key: bytes | None
    value: bytes
    event_id: str
    corrected: bool
    replay_number: int
    forced: bool


@dataclass(frozen=True)
class Refusal:
    """A dead letter that is not replayed, and why."""

    dead_letter_id: str
    reason: str
    detail: str


def contract_for_topic(topic: str, topics: Topics) -> type[BaseModel] | None:
    """Return the event model a topic carries, or None for a topic that is not replayable."""
    contracts: dict[str, type[BaseModel]] = {
        topics.inbound: TicketReceived,
        topics.classified: TicketClassified,
        topics.decided: TicketDecided,
        topics.routed: TicketRouted,
        topics.feedback: FeedbackGiven,
    }
    return contracts.get(topic)


def plan_replay(
    letter: TicketDeadLettered,
    *,
    topics: Topics,
    previous_replays: int,
    force: bool = False,
    corrected_body: bytes | None = None,
) -> ReplayPlan | Refusal:
    """Decide whether a dead letter can be replayed: not yet replayed, valid for its topic."""
    if previous_replays and not force:
        return Refusal(
            letter.event_id,
            "already_replayed",
            f"replayed {previous_replays} time(s) before; --force replays it again",
        )
    model = contract_for_topic(letter.original_topic, topics)
    if model is None:
        return Refusal(
            letter.event_id,
            "unknown_topic",
            f"{letter.original_topic!r} is not a pipeline topic under prefix "
            f"{topics.prefix!r} (set TRIAGEFLOW_KAFKA_TOPIC_PREFIX)",
        )
    if letter.original_truncated and corrected_body is None:
        return Refusal(
            letter.event_id,
            "truncated",
            f"only the first bytes of the {letter.original_size}-byte message were kept; "
            f"fetch it from {letter.original_topic}[{letter.original_partition}]"
            f"@{letter.original_offset} and replay it with --body-file",
        )
    value = corrected_body if corrected_body is not None else original_bytes(letter)
    try:
        event = decode(value, model)
    except InvalidMessage as error:
        which = "the corrected message" if corrected_body is not None else "the original bytes"
        return Refusal(
            letter.event_id,
            f"still_invalid:{error.reason}",
            f"{which} are not a valid {model.__name__}: {error.detail}",
        )
    key = letter.original_key.encode("utf-8") if letter.original_key is not None else None
    ticket_id = getattr(event, "ticket_id", None)
    return ReplayPlan(
        letter=letter,
        topic=letter.original_topic,
        # A record without a key lands on any partition; the ticket id keeps it in order.
        key=key if key is not None else (ticket_id.encode("utf-8") if ticket_id else None),
        value=value,
        event_id=str(getattr(event, "event_id", "")),
        corrected=corrected_body is not None and corrected_body != original_bytes(letter),
        replay_number=previous_replays + 1,
        forced=previous_replays > 0,
    )


def original_bytes(letter: TicketDeadLettered) -> bytes:
    """Return the message a dead letter kept, as it was on the wire."""
    return base64.b64decode(letter.original_bytes_b64)


def replay_record(
    plan: ReplayPlan,
    *,
    partition: int,
    offset: int,
    actor: str,
    producer: ProducerInfo,
    note: str | None = None,
) -> DeadLetterReplayed:
    """Return the audit event of a replay whose record landed at partition/offset."""
    letter = plan.letter
    return DeadLetterReplayed(
        # One id per replay of this dead letter: two operators replaying it at the same
        # time produce the same record, which the audit store keeps once.
        event_id=derived_event_id(letter.event_id, f"replay:{plan.replay_number}"),
        ticket_id=letter.ticket_id,
        trace_id=letter.trace_id,
        causation_id=letter.event_id,
        producer=producer,
        actor=actor,
        outcome="republished_corrected" if plan.corrected else "republished",
        forced=plan.forced,
        replay_number=plan.replay_number,
        dead_letter_stage=letter.stage,
        dead_letter_reason=letter.reason,
        topic=plan.topic,
        partition=partition,
        offset=offset,
        key=plan.key.decode("utf-8", "replace") if plan.key is not None else None,
        replayed_event_id=plan.event_id,
        corrected_bytes_b64=base64.b64encode(plan.value).decode("ascii")
        if plan.corrected
        else None,
        note=note,
    )


# ------------------------------------------------------------------------ I/O


async def _letter(store: PostgresAuditRepository, event_id: str) -> TicketDeadLettered | Refusal:
    payload = await store.event(event_id)
    if payload is None or payload.get("event_type") != "ticket.dead_lettered":
        return Refusal(event_id, "not_a_dead_letter", "no dead letter with this id is recorded")
    try:
        return TicketDeadLettered.model_validate(payload)
    except ValidationError as error:
        return Refusal(event_id, "unreadable", f"the recorded dead letter is not valid: {error}")


async def _publish(
    kafka: KafkaSettings,
    plans: list[ReplayPlan],
    *,
    actor: str,
    note: str | None,
    deadletter_topic: str,
) -> list[DeadLetterReplayed]:
    """Republish each plan, then record its replay; return the records, in order."""
    from aiokafka import AIOKafkaProducer

    from shared.kafka import producer_kwargs
    from shared.service import triageflow_version

    producer_info = ProducerInfo(
        service="cli", version=triageflow_version(), instance=socket.gethostname()
    )
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    records = []
    try:
        for plan in plans:
            # The record first, then its audit event: a crash in between leaves a replay
            # that is not recorded (and may be repeated: same ids), never a recorded
            # replay that did not happen.
            landed = await producer.send_and_wait(
                plan.topic,
                value=plan.value,
                key=plan.key,
                headers=[(REPLAY_HEADER, plan.letter.event_id.encode("utf-8"))],
            )
            record = replay_record(
                plan,
                partition=landed.partition,
                offset=landed.offset,
                actor=actor,
                producer=producer_info,
                note=note,
            )
            await producer.send_and_wait(
                deadletter_topic,
                value=encode(record),
                key=record.ticket_id.encode("utf-8"),
                headers=[
                    ("content-type", b"application/json"),
                    ("trace_id", record.trace_id.encode("utf-8")),
                ],
            )
            records.append(record)
    finally:
        await producer.stop()
    return records


# ------------------------------------------------------------------------ commands


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    ticket_prefix: Annotated[str, typer.Option(help="Only tickets with this id prefix.")] = "",
) -> None:
    """List recorded dead letters with their stage and reason."""
    from services.cli.main import audit_store
    from services.cli.render import dead_letter_table

    async def fetch() -> list[DeadLetterEntry]:
        async with audit_store() as store:
            return await store.dead_letters(ticket_prefix=ticket_prefix, limit=limit)

    out.print(dead_letter_table(asyncio.run(fetch())))


def describe_bytes(raw: bytes, *, limit: int) -> str:
    """Return a message for a terminal: pretty JSON, else UTF-8 text, else escaped bytes."""
    shown = raw[:limit]
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        text = shown.decode("utf-8", "backslashreplace")
        kind = "not UTF-8; undecodable bytes as \\x.."
    else:
        kind = "UTF-8"
        if len(raw) <= limit:
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                kind = "JSON"
            except (ValueError, RecursionError):
                pass
    cut = f", first {limit} shown" if len(raw) > limit else ""
    return f"{len(raw)} bytes ({kind}{cut}):\n{text}"


@dlq_app.command("show")
def dlq_show(
    event_id: Annotated[str, typer.Argument(help="The dead letter's event id.")],
    max_bytes: Annotated[int, typer.Option(min=1, help="Show at most this many bytes.")] = 8000,
    as_json: Annotated[bool, typer.Option("--json", help="The dead letter event as JSON.")] = False,
) -> None:
    """Show one dead letter: its reason, attempts, replays and original message."""
    from services.cli.main import audit_store

    async def fetch() -> tuple[TicketDeadLettered | Refusal, list[dict[str, Any]]]:
        async with audit_store() as store:
            return await _letter(store, event_id), await store.replays_of(event_id)

    letter, replays = asyncio.run(fetch())
    if isinstance(letter, Refusal):
        err.print(f"{letter.reason}: {letter.detail}", markup=False, highlight=False)
        raise typer.Exit(1)
    if as_json:
        out.print_json(letter.model_dump_json())
        return
    lines = [
        f"dead letter {letter.event_id}",
        f"  ticket     {letter.ticket_id}",
        f"  stage      {letter.stage.value}",
        f"  reason     {letter.reason} ({letter.error_type})",
        f"  error      {letter.error_message}",
        f"  from       {letter.original_topic}[{letter.original_partition}]"
        f"@{letter.original_offset}, key {letter.original_key!r}",
        f"  at         {letter.occurred_at.isoformat()} by {letter.producer.service}",
    ]
    lines += [
        f"  attempt {a.attempt}  {a.at.isoformat()} {a.error_type}: {a.error_message}"
        for a in letter.attempts
    ]
    lines += [
        f"  replay {r.get('replay_number')}   {r.get('occurred_at')} by {r.get('actor')}: "
        f"{r.get('outcome')} to {r.get('topic')}[{r.get('partition')}]@{r.get('offset')} "
        f"as event {r.get('replayed_event_id')}"
        for r in replays
    ] or ["  replays    none"]
    lines.append("  message    " + describe_bytes(original_bytes(letter), limit=max_bytes))
    out.print(Text("\n".join(lines)))


@dlq_app.command("replay")
def dlq_replay(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Dead letter event ids (or use --reason/--stage).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Every dead letter with this reason.")] = None,
    stage: Annotated[str | None, typer.Option(help="Every dead letter of this stage.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (with a filter).")] = 1000,
    body_file: Annotated[
        Path | None,
        typer.Option(
            help="A corrected message to publish instead (one dead letter only).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Check and report; publish nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Replay even if already replayed.")] = False,
    actor: Annotated[
        str | None, typer.Option(help="Who replays (default: TRIAGEFLOW_CLI_ACTOR or login).")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A comment kept with the replay.")] = None,
) -> None:
    """Re-validate dead letters and republish them to their original topic, audited."""
    from services.cli.main import audit_store

    ids = list(event_ids or [])
    if bool(ids) == (reason is not None or stage is not None):
        err.print("give dead letter ids, or --reason and/or --stage (not both)")
        raise typer.Exit(2)
    if body_file is not None and len(ids) != 1:
        err.print("--body-file replays exactly one dead letter id")
        raise typer.Exit(2)
    corrected = body_file.read_bytes() if body_file is not None else None
    kafka = KafkaSettings()
    topics = Topics(kafka.topic_prefix)
    who = actor or CliSettings().actor or getpass.getuser()

    async def plan() -> list[ReplayPlan | Refusal]:
        async with audit_store() as store:
            if ids:
                letters = [await _letter(store, event_id) for event_id in ids]
            else:
                payloads = await store.dead_letters_matching(
                    reason=reason, stage=stage, limit=limit
                )
                letters = [TicketDeadLettered.model_validate(p) for p in payloads]
            plans: list[ReplayPlan | Refusal] = []
            for letter in letters:
                if isinstance(letter, Refusal):
                    plans.append(letter)
                    continue
                previous = await store.replays_of(letter.event_id)
                plans.append(
                    plan_replay(
                        letter,
                        topics=topics,
                        previous_replays=len(previous),
                        force=force,
                        corrected_body=corrected,
                    )
                )
            return plans

    plans = asyncio.run(plan())
    ready = [p for p in plans if isinstance(p, ReplayPlan)]
    refused = [p for p in plans if isinstance(p, Refusal)]
    for refusal in refused:
        err.print(
            f"refused {refusal.dead_letter_id}: {refusal.reason}: {refusal.detail}",
            markup=False,
            highlight=False,
        )
    if dry_run:
        for ready_plan in ready:
            out.print(
                f"would replay {ready_plan.letter.event_id} to {ready_plan.topic} as event "
                f"{ready_plan.event_id} (replay {ready_plan.replay_number})",
                markup=False,
                highlight=False,
            )
    else:
        records = asyncio.run(
            _publish(kafka, ready, actor=who, note=note, deadletter_topic=topics.deadletter)
        )
        for record in records:
            out.print(
                f"replayed {record.causation_id} to {record.topic}[{record.partition}]"
                f"@{record.offset} as event {record.replayed_event_id} "
                f"(replay {record.replay_number}, {record.outcome}, by {record.actor}; "
                f"recorded as {record.event_id})",
                markup=False,
                highlight=False,
            )
    verb = "would replay" if dry_run else "replayed"
    out.print(f"{verb} {len(ready)}, refused {len(refused)}", highlight=False)
    if refused:
        raise typer.Exit(1)
