"""Every message triageflow puts on Kafka: one envelope, one model per event.

All events are frozen pydantic v2 models, JSON on the wire, with a schema version.
Derived events are strict (`extra="forbid"`); the inbound `TicketReceived` is the one
forgiving boundary, so that an upstream system can publish as little as
``{"ticket_id": "T-1", "body": "..."}``.

    Event (envelope)
    ├── TicketReceived      ticket.received       upstream   -> tickets.inbound
    ├── TicketClassified    ticket.classified     classifier -> tickets.classified
    ├── TicketDecided       ticket.decided        policy     -> tickets.decided
    ├── TicketRouted        ticket.routed         router     -> tickets.routed
    ├── TicketDeadLettered  ticket.dead_lettered  any stage  -> tickets.deadletter
    ├── DeadLetterReplayed  ticket.dead_letter_replayed  operator (dlq replay) -> tickets.deadletter
    └── FeedbackGiven       ticket.feedback       downstream -> tickets.feedback
    ControlEvent (own envelope, keyed by what it controls)    operator/jobs -> triageflow.control
    ├── ModelPromoted       model.promoted        key classifier.model
    ├── ModelRolledBack     model.rolled_back     key classifier.model
    ├── ModelCandidateSet   model.candidate_set   key classifier.candidate
    ├── CategoryCapped      category.capped       key policy.cap.<category>
    └── CategoryReenabled   category.reenabled    key policy.cap.<category>
    WorkItem (not an event: the unit of work a downstream queue receives)
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from shared.ids import content_event_id, trace_id_for

SCHEMA_VERSION = 1
MAX_BODY_CHARS = 20_000
MAX_SUBJECT_CHARS = 500
MAX_TICKET_ID_CHARS = 200
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1_000


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Mode(enum.StrEnum):
    """How much the AI may do on its own, from most to least."""

    AUTONOMOUS = "autonomous"
    ASSIST = "assist"
    HUMAN = "human"

    @property
    def rank(self) -> int:
        """Return 2 for autonomous, 1 for assist, 0 for human (higher = more AI)."""
        return {"autonomous": 2, "assist": 1, "human": 0}[self.value]

    @classmethod
    def lowest(cls, *modes: Mode) -> Mode:
        """Return the most restrictive of the given modes."""
        return min(modes, key=lambda m: m.rank)


class Stage(enum.StrEnum):
    """A processing stage that can produce or dead-letter an event."""

    INBOUND = "inbound"
    CLASSIFIER = "classifier"
    POLICY = "policy"
    ROUTER = "router"
    AUDIT = "audit"
    FEEDBACK = "feedback"
    REPLAY = "replay"


# No NaN or Infinity anywhere: JSON has no such numbers (Python's json module accepts them)
# and PostgreSQL's jsonb refuses them, so one would stop the audit trail.
_STRICT = ConfigDict(frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False)
# The largest schema version the audit store's integer column holds.
MAX_SCHEMA_VERSION = 2**31 - 1


def _utc_representable(value: datetime | None) -> datetime | None:
    """Refuse a time that has no UTC equivalent (year 1 at +14:00), which no store can hold."""
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError as error:
            raise ValueError("the time is outside the range of UTC timestamps") from error
    return value


class Contract(BaseModel):
    """Base of every strict, immutable message part."""

    model_config = _STRICT


class ProducerInfo(Contract):
    """Which program produced an event."""

    service: str = Field(description="Service name, e.g. `classifier`, or the upstream system.")
    version: str = Field(default="unknown", description="Version of the producing program.")
    instance: str = Field(default="unknown", description="Instance (host/pod) that produced it.")


class Event(Contract):
    """The envelope every event carries."""

    event_id: str = Field(description="Unique id; derived events get uuid5(cause id, stage).")
    event_type: str = Field(description="Dotted event name, e.g. `ticket.classified`.")
    schema_version: int = Field(
        default=SCHEMA_VERSION, ge=1, le=MAX_SCHEMA_VERSION, description="Contract version."
    )
    ticket_id: str = Field(
        min_length=1,
        max_length=MAX_TICKET_ID_CHARS,
        description="The ticket this event is about; also the Kafka key.",
    )
    trace_id: str = Field(description="Trace id shared by every event of one ticket's journey.")
    causation_id: str | None = Field(
        default=None, description="Id of the event that caused this one (None for upstream)."
    )
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now, description="When the event happened, UTC."
    )
    producer: ProducerInfo = Field(description="Program that produced the event.")

    @field_validator("occurred_at")
    @classmethod
    def _occurred_in_utc_range(cls, value: datetime) -> datetime:
        _utc_representable(value)
        return value


# --------------------------------------------------------------------------- inbound


class Customer(BaseModel):
    """The customer who raised a ticket, as far as upstream knows."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: StrictStr | None = Field(default=None, max_length=200, description="Customer id.")
    tier: StrictStr = Field(
        default="standard",
        max_length=50,
        description="Customer tier, e.g. `standard`, `premium`, `vip`. Default `standard`.",
    )
    language: StrictStr | None = Field(
        default=None, max_length=20, description="Preferred language if known (ISO 639-1)."
    )


MetadataValue = StrictStr | StrictInt | StrictFloat | StrictBool | None


class TicketReceived(BaseModel):
    """ticket.received: a new support ticket published by an upstream system.

    Forgiving: only `ticket_id` and `body` are required; unknown fields are ignored.
    A missing `event_id` is derived from the content, so a re-published duplicate keeps
    its id; a missing `trace_id` is derived from the event id.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    event_id: str = Field(
        default="", description="Unique id; derived from the content when absent."
    )
    event_type: Literal["ticket.received"] = Field(
        default="ticket.received", description="Always `ticket.received`."
    )
    schema_version: int = Field(
        default=SCHEMA_VERSION, ge=1, le=MAX_SCHEMA_VERSION, description="Contract version."
    )
    ticket_id: StrictStr = Field(
        min_length=1, max_length=MAX_TICKET_ID_CHARS, description="Upstream ticket id (the key)."
    )
    trace_id: str = Field(default="", description="Trace id; derived from event_id when absent.")
    causation_id: str | None = Field(default=None, description="Always None for upstream events.")
    occurred_at: AwareDatetime = Field(
        default_factory=utc_now, description="When upstream published it; default: now (UTC)."
    )
    producer: ProducerInfo = Field(
        default_factory=lambda: ProducerInfo(service="upstream"),
        description="Upstream program; default `upstream`.",
    )
    source: StrictStr = Field(
        default="unknown", max_length=100, description="Source system, e.g. `zendesk`."
    )
    channel: StrictStr = Field(
        default="unknown", max_length=50, description="Channel: email, chat, web, phone, ..."
    )
    subject: StrictStr = Field(
        default="", max_length=MAX_SUBJECT_CHARS, description="Subject line; may be empty."
    )
    body: StrictStr = Field(
        max_length=MAX_BODY_CHARS, description="The customer's message. Must not be blank."
    )
    customer: Customer = Field(default_factory=Customer, description="Who raised the ticket.")
    created_at: AwareDatetime | None = Field(
        default=None, description="When the ticket was created upstream, if known."
    )
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description=(
            f"Flat key/value metadata: at most {MAX_METADATA_KEYS} keys, scalar values only."
        ),
    )

    @field_validator("body")
    @classmethod
    def _body_not_blank(cls, body: str) -> str:
        if not body.strip():
            raise ValueError("body is empty or only whitespace")
        return body

    @field_validator("occurred_at", "created_at")
    @classmethod
    def _times_in_utc_range(cls, value: datetime | None) -> datetime | None:
        return _utc_representable(value)

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, metadata: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        if len(metadata) > MAX_METADATA_KEYS:
            raise ValueError(f"metadata has {len(metadata)} keys, at most {MAX_METADATA_KEYS}")
        for key, value in metadata.items():
            if len(key) > MAX_METADATA_KEY_CHARS:
                raise ValueError(f"metadata key longer than {MAX_METADATA_KEY_CHARS} chars")
            if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
                raise ValueError(
                    f"metadata value of {key!r} longer than {MAX_METADATA_VALUE_CHARS} chars"
                )
        return metadata

    @model_validator(mode="before")
    @classmethod
    def _derive_ids(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("event_id"):
            data = {**data, "event_id": content_event_id(data)}
        if not data.get("trace_id"):
            data = {**data, "trace_id": trace_id_for(str(data["event_id"]))}
        return data


class TicketSnapshot(Contract):
    """The validated ticket, carried along so every stage stays stateless."""

    ticket_id: str = Field(description="Upstream ticket id.")
    received_event_id: str = Field(description="Id of the ticket.received event.")
    source: str = Field(description="Source system.")
    channel: str = Field(description="Channel.")
    subject: str = Field(description="Subject line.")
    body: str = Field(description="The customer's message.")
    customer_id: str | None = Field(description="Customer id, if known.")
    customer_tier: str = Field(description="Customer tier.")
    customer_language: str | None = Field(description="Customer's declared language, if any.")
    created_at: AwareDatetime | None = Field(description="Creation time upstream, if known.")
    metadata: dict[str, MetadataValue] = Field(description="Upstream metadata.")

    @classmethod
    def of(cls, ticket: TicketReceived) -> TicketSnapshot:
        """Return the snapshot of an inbound ticket."""
        return cls(
            ticket_id=ticket.ticket_id,
            received_event_id=ticket.event_id,
            source=ticket.source,
            channel=ticket.channel,
            subject=ticket.subject,
            body=ticket.body,
            customer_id=ticket.customer.id,
            customer_tier=ticket.customer.tier,
            customer_language=ticket.customer.language,
            created_at=ticket.created_at,
            metadata=dict(ticket.metadata),
        )


# --------------------------------------------------------------------- classification


class CategoryScore(Contract):
    """One candidate category and its calibrated probability."""

    category: str = Field(description="Category name from the taxonomy.")
    confidence: float = Field(ge=0.0, le=1.0, description="Calibrated probability.")


class ModelInfo(Contract):
    """Which model produced a classification."""

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version (content hash of the artefact or tag).")
    backend: Literal["local", "llm", "cascade", "constant"] = Field(description="Backend kind.")


class Signals(Contract):
    """Facts about the ticket text beyond its category."""

    pii_detected: bool = Field(default=False, description="PII found in the text.")
    pii_kinds: tuple[str, ...] = Field(
        default=(), description="Kinds of PII found: email, phone, card, iban."
    )
    injection_suspected: bool = Field(default=False, description="Prompt injection suspected.")
    injection_reasons: tuple[str, ...] = Field(
        default=(), description="Why injection is suspected."
    )
    out_of_scope: bool = Field(
        default=False, description="The ticket fits none of the taxonomy's categories."
    )
    out_of_scope_score: float = Field(
        default=0.0, ge=0.0, le=1.0, description="How far from the known categories (0..1)."
    )
    unusual_input: tuple[str, ...] = Field(
        default=(),
        description=(
            "Why the input is unusual, as reason codes (e.g. control_characters, "
            "mixed_languages, code_like, decision_fields); empty when it is ordinary. "
            "The default policy sends such a ticket to a human."
        ),
    )


class ShadowClassification(Contract):
    """What a candidate model said about the same ticket (recorded, never acted on)."""

    category: str = Field(description="Candidate's most likely category.")
    confidence: float = Field(ge=0.0, le=1.0, description="Candidate's calibrated confidence.")
    alternatives: tuple[CategoryScore, ...] = Field(
        default=(), description="Candidate's next most likely categories, best first."
    )
    out_of_scope: bool = Field(default=False, description="Candidate finds it out of scope.")
    model: ModelInfo = Field(description="The candidate model.")


class TicketClassified(Event):
    """ticket.classified: what the model said about a ticket."""

    event_type: Literal["ticket.classified"] = Field(
        default="ticket.classified", description="Always `ticket.classified`."
    )
    ticket: TicketSnapshot = Field(description="The ticket that was classified.")
    category: str = Field(description="Most likely category.")
    confidence: float = Field(ge=0.0, le=1.0, description="Calibrated probability of `category`.")
    alternatives: tuple[CategoryScore, ...] = Field(
        default=(), description="Next most likely categories, best first."
    )
    language: str = Field(description="Detected language (ISO 639-1) or `unknown`.")
    sentiment: Literal["negative", "neutral", "positive"] = Field(description="Tone.")
    sentiment_score: float = Field(ge=-1.0, le=1.0, description="Tone score, -1..1.")
    urgency: Literal["low", "normal", "high", "critical"] = Field(description="Urgency.")
    signals: Signals = Field(description="PII, injection and out-of-scope signals.")
    model: ModelInfo = Field(description="Model that produced this.")
    degraded: bool = Field(default=False, description="A fallback path produced this.")
    degraded_reason: str | None = Field(default=None, description="Why it is degraded.")
    latency_ms: float = Field(ge=0.0, description="Time spent classifying, milliseconds.")
    shadow: ShadowClassification | None = Field(
        default=None, description="A candidate model's view (shadow mode), never acted on."
    )


# --------------------------------------------------------------------------- decision


class RuleFired(Contract):
    """A policy rule that constrained the decision."""

    rule_id: str = Field(description="Rule id from the policy file.")
    reason: str = Field(description="Human-readable reason.")
    cap: Mode = Field(description="The highest mode the rule allows.")


class Thresholds(Contract):
    """Thresholds the policy applied to this ticket's category."""

    autonomous: float = Field(ge=0.0, le=1.0, description="Min confidence for autonomous.")
    assist: float = Field(ge=0.0, le=1.0, description="Min confidence for assist.")
    ambiguity_margin: float = Field(ge=0.0, le=1.0, description="Min top-1 minus top-2 margin.")


class PolicyInfo(Contract):
    """Which policy decided, and who is accountable for it."""

    name: str = Field(description="Policy name.")
    version: str = Field(description="Policy version from the file.")
    content_hash: str = Field(description="sha256 of the policy file's content.")
    approved_by: str = Field(description="Who approved this policy version.")
    approved_at: str = Field(description="When it was approved.")


class ClassificationSummary(Contract):
    """The parts of a classification that later stages and queues need."""

    event_id: str = Field(description="Id of the ticket.classified event.")
    category: str = Field(description="Category.")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence.")
    alternatives: tuple[CategoryScore, ...] = Field(default=(), description="Alternatives.")
    language: str = Field(description="Language.")
    sentiment: str = Field(description="Sentiment.")
    urgency: str = Field(description="Urgency.")
    model: ModelInfo = Field(description="Model.")
    degraded: bool = Field(description="Degraded classification.")
    injection_suspected: bool = Field(description="Injection suspected.")
    out_of_scope: bool = Field(description="Out of scope.")
    pii_detected: bool = Field(description="PII found.")


class ShadowDecision(Contract):
    """What a candidate policy would have decided (recorded, never acted on)."""

    mode: Mode = Field(description="Candidate's mode.")
    policy: PolicyInfo = Field(description="Candidate policy.")
    rules_fired: tuple[RuleFired, ...] = Field(default=(), description="Candidate's rules.")
    category: str | None = Field(
        default=None, description="Category the shadow decision used, when a candidate model ran."
    )
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Candidate model's confidence in `category`."
    )
    model: ModelInfo | None = Field(
        default=None, description="Candidate model, when one ran in shadow; else None."
    )


class TicketDecided(Event):
    """ticket.decided: how much the AI may do with this ticket, and why."""

    event_type: Literal["ticket.decided"] = Field(
        default="ticket.decided", description="Always `ticket.decided`."
    )
    ticket: TicketSnapshot = Field(description="The ticket.")
    classification: ClassificationSummary = Field(description="What the model said.")
    mode: Mode = Field(description="autonomous, assist or human.")
    rules_fired: tuple[RuleFired, ...] = Field(default=(), description="Every rule that fired.")
    thresholds: Thresholds = Field(description="Thresholds applied.")
    policy: PolicyInfo = Field(description="Policy that decided.")
    owner_team: str = Field(description="Team accountable for this category's outcomes.")
    shadow: ShadowDecision | None = Field(default=None, description="Candidate policy's view.")


# ---------------------------------------------------------------------------- routing


class TicketRouted(Event):
    """ticket.routed: where the work went."""

    event_type: Literal["ticket.routed"] = Field(
        default="ticket.routed", description="Always `ticket.routed`."
    )
    queue: str = Field(description="Destination queue name.")
    topic: str = Field(description="Destination Kafka topic, `queue.<name>`.")
    priority: Literal["p1", "p2", "p3", "p4"] = Field(description="Priority, p1 highest.")
    sla_due_at: AwareDatetime = Field(description="When the first response is due.")
    mode: Mode = Field(description="Mode decided by the policy.")
    human_handling: bool = Field(description="A human must handle it.")
    category: str = Field(description="Category.")
    work_item_id: str = Field(description="Idempotency key of the work item published.")
    routing_version: str = Field(description="Routing table version and hash.")
    reason: Literal["decision", "negative_customer_reaction"] = Field(
        default="decision",
        description="Why it was routed: a policy decision, or an escalation after feedback.",
    )


class WorkItem(Contract):
    """What a downstream queue receives: everything needed to act on the ticket."""

    kind: Literal["ticket"] = Field(default="ticket", description="Always `ticket`.")
    ticket_id: str = Field(description="The ticket id (also the Kafka key).")
    idempotency_key: str = Field(description="Stable across replays; de-duplicate on it.")
    queue: str = Field(description="Queue name.")
    priority: Literal["p1", "p2", "p3", "p4"] = Field(description="Priority.")
    sla_due_at: AwareDatetime = Field(description="When the first response is due.")
    mode: Mode = Field(description="autonomous, assist or human.")
    human_handling: bool = Field(description="A human must handle it.")
    ticket: TicketSnapshot = Field(description="The ticket.")
    classification: ClassificationSummary = Field(description="What the model said.")
    decision: dict[str, Any] = Field(
        description="Decision summary: event_id, mode, rules, policy, owner team."
    )
    trail: dict[str, str] = Field(
        description="Trail reference: trace_id and the ids of the events that led here."
    )
    routed_at: AwareDatetime = Field(default_factory=utc_now, description="When routed.")


class Escalation(Contract):
    """What a human queue receives when a customer reacts badly to an AI answer."""

    kind: Literal["escalation"] = Field(default="escalation", description="Always `escalation`.")
    ticket_id: str = Field(description="The ticket id (also the Kafka key).")
    idempotency_key: str = Field(description="Stable across replays; de-duplicate on it.")
    queue: str = Field(description="Queue name.")
    priority: Literal["p1", "p2", "p3", "p4"] = Field(description="Priority.")
    sla_due_at: AwareDatetime = Field(description="When the first response is due.")
    human_handling: Literal[True] = Field(default=True, description="Always handled by a human.")
    reason: str = Field(description="Why: e.g. negative reply to an autonomous answer.")
    feedback_event_id: str = Field(description="The feedback that triggered the escalation.")
    decision_event_id: str = Field(description="The decision the customer reacted to.")
    trace_id: str = Field(description="The ticket's trace id.")
    routed_at: AwareDatetime = Field(default_factory=utc_now, description="When routed.")


# ------------------------------------------------------------------------ dead letters


class AttemptError(Contract):
    """One failed attempt at processing a message."""

    attempt: int = Field(ge=1, description="Attempt number.")
    error_type: str = Field(description="Exception type or error code.")
    error_message: str = Field(description="What went wrong.")
    at: AwareDatetime = Field(default_factory=utc_now, description="When.")


class TicketDeadLettered(Event):
    """ticket.dead_lettered: a message a stage could not process, kept whole."""

    event_type: Literal["ticket.dead_lettered"] = Field(
        default="ticket.dead_lettered", description="Always `ticket.dead_lettered`."
    )
    stage: Stage = Field(description="Stage that gave up.")
    reason: str = Field(description="Short machine-readable reason, e.g. `invalid_json`.")
    error_type: str = Field(description="Exception type or error code.")
    error_message: str = Field(description="Human-readable error, naming the bad field.")
    original_topic: str = Field(description="Topic the message came from.")
    original_partition: int = Field(ge=0, description="Its partition.")
    original_offset: int = Field(ge=0, description="Its offset.")
    original_key: str | None = Field(default=None, description="Its key, if any (UTF-8).")
    original_bytes_b64: str = Field(
        description="The message value, base64-encoded (its first 256 KiB if truncated)."
    )
    original_size: int | None = Field(
        default=None, ge=0, description="Size of the message value in bytes."
    )
    original_truncated: bool = Field(
        default=False,
        description="Only the first bytes are kept (the whole value would not fit in a "
        "Kafka message); the original is in its topic at its offset.",
    )
    attempts: tuple[AttemptError, ...] = Field(default=(), description="Every attempt's error.")


class DeadLetterReplayed(Event):
    """ticket.dead_letter_replayed: an operator re-published a dead letter to its topic."""

    event_type: Literal["ticket.dead_letter_replayed"] = Field(
        default="ticket.dead_letter_replayed", description="Always `ticket.dead_letter_replayed`."
    )
    causation_id: str = Field(description="Id of the dead letter that was replayed.")
    actor: str = Field(min_length=1, description="Who replayed it (operator name).")
    outcome: Literal["republished", "republished_corrected"] = Field(
        description="`republished`: the original bytes; `republished_corrected`: the "
        "operator's corrected message."
    )
    forced: bool = Field(
        default=False, description="Replayed although an earlier replay was recorded."
    )
    replay_number: int = Field(ge=1, description="1 for the first replay of this dead letter.")
    dead_letter_stage: Stage = Field(description="Stage that had dead-lettered the message.")
    dead_letter_reason: str = Field(description="Why it had been dead-lettered.")
    topic: str = Field(description="Topic it was re-published to: its original topic.")
    partition: int = Field(ge=0, description="Partition of the re-published record.")
    offset: int = Field(ge=0, description="Offset of the re-published record.")
    key: str | None = Field(default=None, description="Key it was re-published with.")
    replayed_event_id: str = Field(description="Id of the event the re-published message is.")
    corrected_bytes_b64: str | None = Field(
        default=None,
        description="The operator's corrected message, base64; None when the original "
        "bytes were replayed.",
    )
    note: str | None = Field(default=None, max_length=2000, description="Operator's comment.")


# ---------------------------------------------------------------------------- feedback


class FeedbackKind(enum.StrEnum):
    """What kind of judgement a feedback event carries."""

    OVERRIDE = "override"
    RESOLUTION = "resolution"
    CUSTOMER_REACTION = "customer_reaction"
    REOPENED = "reopened"


class FeedbackGiven(Event):
    """ticket.feedback: a later judgement on a decision, from an agent or customer."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_id: str = Field(default="", description="Unique id; derived from content if absent.")
    event_type: Literal["ticket.feedback"] = Field(
        default="ticket.feedback", description="Always `ticket.feedback`."
    )
    trace_id: str = Field(default="", description="Trace id; derived if absent.")
    producer: ProducerInfo = Field(
        default_factory=lambda: ProducerInfo(service="downstream"), description="Who sent it."
    )
    kind: FeedbackKind = Field(description="override, resolution, customer_reaction, reopened.")
    decision_event_id: str = Field(description="The ticket.decided event this judges.")
    decision_mode: Mode | None = Field(
        default=None, description="Mode of the decision judged, when the sender knows it."
    )
    actor: str = Field(description="Who gave the feedback (agent id, `customer`, system).")
    correct_category: str | None = Field(default=None, description="Override: right category.")
    correct_queue: str | None = Field(default=None, description="Override: right queue.")
    resolved: bool | None = Field(default=None, description="Resolution: was it resolved.")
    handle_time_seconds: float | None = Field(
        default=None, ge=0, description="Resolution: agent handle time."
    )
    csat: int | None = Field(default=None, ge=1, le=5, description="Customer reaction: CSAT 1-5.")
    negative_reply: bool | None = Field(
        default=None, description="Customer reaction: negative reply to an AI answer."
    )
    comment: str | None = Field(default=None, max_length=2000, description="Free text.")

    @model_validator(mode="before")
    @classmethod
    def _derive_ids(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if not data.get("event_id"):
            data = {**data, "event_id": content_event_id(data)}
        if not data.get("trace_id"):
            data = {**data, "trace_id": trace_id_for(str(data["event_id"]))}
        return data

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> FeedbackGiven:
        needed = {
            FeedbackKind.OVERRIDE: self.correct_category is not None
            or self.correct_queue is not None,
            FeedbackKind.RESOLUTION: self.resolved is not None,
            FeedbackKind.CUSTOMER_REACTION: self.csat is not None
            or self.negative_reply is not None,
            FeedbackKind.REOPENED: True,
        }
        if not needed[self.kind]:
            raise ValueError(f"feedback of kind {self.kind.value!r} lacks its fields")
        return self


# ------------------------------------------------------------------------- control

MODEL_KEY = "classifier.model"
CANDIDATE_KEY = "classifier.candidate"
CAP_KEY_PREFIX = "policy.cap."


def cap_key(category: str) -> str:
    """Return the control-topic key of category `category`'s drift cap."""
    return f"{CAP_KEY_PREFIX}{category}"


class ControlEvent(Contract):
    """The envelope of a control event: it changes how the pipeline runs, not one ticket.

    Published to the compacted control topic keyed by what it controls (`key`): the latest
    event of a key is the current state of that key.
    """

    event_id: str = Field(description="Unique id of this control event.")
    event_type: str = Field(description="Dotted event name, e.g. `model.promoted`.")
    schema_version: int = Field(
        default=SCHEMA_VERSION, ge=1, le=MAX_SCHEMA_VERSION, description="Contract version."
    )
    key: str = Field(
        min_length=1, max_length=200, description="What it controls; also the Kafka key."
    )
    occurred_at: AwareDatetime = Field(default_factory=utc_now, description="When, UTC.")
    producer: ProducerInfo = Field(description="Program that published it.")
    actor: str = Field(min_length=1, description="Who decided it: operator name or job.")
    reason: str = Field(default="", max_length=2000, description="Why, in words.")
    causation_id: str | None = Field(
        default=None, description="Id of the control event this one follows or undoes."
    )


class ModelEvidence(Contract):
    """Figures behind a model decision: live vs candidate on the same tickets."""

    tickets: int = Field(default=0, ge=0, description="Tickets both models saw.")
    agreement: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of tickets with the same category."
    )
    live_autonomous_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share the live model decided autonomously."
    )
    candidate_autonomous_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share the candidate would decide alone."
    )
    live_judged: int = Field(default=0, ge=0, description="Live autonomous decisions judged.")
    candidate_judged: int = Field(
        default=0, ge=0, description="Candidate autonomous decisions with a known truth."
    )
    live_effective_judged: float | None = Field(
        default=None, ge=0.0, description="Live judged decisions' effective sample size."
    )
    candidate_effective_judged: float | None = Field(
        default=None,
        ge=0.0,
        description="Candidate judged decisions' effective sample size (audit-weighted).",
    )
    live_precision: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Live autonomous precision (judged, weighted by inverse audit rate).",
    )
    candidate_precision: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Candidate autonomous precision (judged, weighted by inverse audit rate).",
    )
    live_precision_lower: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Lower 95 % bound of live precision."
    )
    candidate_precision_lower: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Lower 95 % bound of candidate precision."
    )
    held_out_accuracy_live: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Learner: live model's held-out accuracy."
    )
    held_out_accuracy_candidate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Learner: candidate's held-out accuracy."
    )


class ModelPromoted(ControlEvent):
    """model.promoted: every classifier copy now classifies with `version`."""

    event_type: Literal["model.promoted"] = Field(
        default="model.promoted", description="Always `model.promoted`."
    )
    key: Literal["classifier.model"] = Field(
        default="classifier.model", description="Always `classifier.model`."
    )
    version: str = Field(min_length=1, description="Registry version now live.")
    previous_version: str | None = Field(default=None, description="Version it replaces.")
    forced: bool = Field(default=False, description="Promoted although the gate refused.")
    evidence: ModelEvidence = Field(
        default_factory=ModelEvidence, description="Figures the gate judged."
    )


class ModelRolledBack(ControlEvent):
    """model.rolled_back: the live model goes back to `version`."""

    event_type: Literal["model.rolled_back"] = Field(
        default="model.rolled_back", description="Always `model.rolled_back`."
    )
    key: Literal["classifier.model"] = Field(
        default="classifier.model", description="Always `classifier.model`."
    )
    version: str | None = Field(
        description="Registry version now live; None: the configured (shipped) model."
    )
    rolled_back_version: str = Field(description="The version taken out of service.")


class ModelCandidateSet(ControlEvent):
    """model.candidate_set: classifiers run `version` in shadow beside the live model."""

    event_type: Literal["model.candidate_set"] = Field(
        default="model.candidate_set", description="Always `model.candidate_set`."
    )
    key: Literal["classifier.candidate"] = Field(
        default="classifier.candidate", description="Always `classifier.candidate`."
    )
    version: str | None = Field(description="Registry version to shadow; None: stop shadowing.")
    evidence: ModelEvidence = Field(
        default_factory=ModelEvidence, description="The learner's offline figures."
    )


class DriftEvidence(Contract):
    """Why the drift guard capped a category: recent feedback against the target."""

    target: float = Field(ge=0.0, le=1.0, description="Autonomous precision the policy promises.")
    window_start: AwareDatetime = Field(description="Start of the recent window.")
    window_end: AwareDatetime = Field(description="End of the recent window.")
    autonomous_judged: int = Field(ge=0, description="Judged autonomous decisions in the window.")
    autonomous_correct: int = Field(ge=0, description="Of which judged correct.")
    precision_upper: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Upper 95 % bound of that precision: below the target, the category "
        "is surely worse than promised.",
    )
    override_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Share of judged decisions overridden."
    )
    baseline_override_rate: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Override rate in the baseline window."
    )
    triggers: tuple[str, ...] = Field(
        default=(), description="Which checks failed: `precision`, `override_jump`."
    )


class CategoryCapped(ControlEvent):
    """category.capped: the drift guard limits a category to `cap` until re-enabled."""

    event_type: Literal["category.capped"] = Field(
        default="category.capped", description="Always `category.capped`."
    )
    category: str = Field(min_length=1, description="The capped category.")
    cap: Mode = Field(default=Mode.ASSIST, description="Highest mode allowed while capped.")
    evidence: DriftEvidence = Field(description="The figures that tripped the guard.")


class CategoryReenabled(ControlEvent):
    """category.reenabled: a human lifts a category's drift cap."""

    event_type: Literal["category.reenabled"] = Field(
        default="category.reenabled", description="Always `category.reenabled`."
    )
    category: str = Field(min_length=1, description="The category re-enabled.")


AnyControlEvent = Annotated[
    ModelPromoted | ModelRolledBack | ModelCandidateSet | CategoryCapped | CategoryReenabled,
    Field(discriminator="event_type"),
]

CONTROL_EVENT_TYPES: dict[str, type[ControlEvent]] = {
    "model.promoted": ModelPromoted,
    "model.rolled_back": ModelRolledBack,
    "model.candidate_set": ModelCandidateSet,
    "category.capped": CategoryCapped,
    "category.reenabled": CategoryReenabled,
}

AnyEvent = Annotated[
    TicketReceived
    | TicketClassified
    | TicketDecided
    | TicketRouted
    | TicketDeadLettered
    | DeadLetterReplayed
    | FeedbackGiven,
    Field(discriminator="event_type"),
]

EVENT_TYPES: dict[str, type[BaseModel]] = {
    "ticket.received": TicketReceived,
    "ticket.classified": TicketClassified,
    "ticket.decided": TicketDecided,
    "ticket.routed": TicketRouted,
    "ticket.dead_lettered": TicketDeadLettered,
    "ticket.dead_letter_replayed": DeadLetterReplayed,
    "ticket.feedback": FeedbackGiven,
}

__all__ = [
    "CANDIDATE_KEY",
    "CAP_KEY_PREFIX",
    "CONTROL_EVENT_TYPES",
    "EVENT_TYPES",
    "MODEL_KEY",
    "SCHEMA_VERSION",
    "AnyControlEvent",
    "AnyEvent",
    "AttemptError",
    "CategoryCapped",
    "CategoryReenabled",
    "CategoryScore",
    "ClassificationSummary",
    "ControlEvent",
    "Customer",
    "DeadLetterReplayed",
    "DriftEvidence",
    "Escalation",
    "Event",
    "FeedbackGiven",
    "FeedbackKind",
    "Mode",
    "ModelCandidateSet",
    "ModelEvidence",
    "ModelInfo",
    "ModelPromoted",
    "ModelRolledBack",
    "PolicyInfo",
    "ProducerInfo",
    "RuleFired",
    "ShadowClassification",
    "ShadowDecision",
    "Signals",
    "Stage",
    "Thresholds",
    "TicketClassified",
    "TicketDeadLettered",
    "TicketDecided",
    "TicketReceived",
    "TicketRouted",
    "TicketSnapshot",
    "WorkItem",
    "cap_key",
]
