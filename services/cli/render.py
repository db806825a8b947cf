"""Readable renderings of trails, dead letters and summaries for a terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from services.audit.repository import DeadLetterEntry, PipelineSummary


def _when(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(payload["occurred_at"]))


def _excerpt(text: str, size: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[: size - 1] + "…"


def _details(event: dict[str, Any]) -> list[str]:
    kind = event["event_type"]
    if kind == "ticket.received":
        customer = event.get("customer") or {}
        return [
            f"from {event.get('source')} via {event.get('channel')}, customer "
            f"{customer.get('id') or '?'} ({customer.get('tier')})",
            f"{event.get('subject') or '(no subject)'!r}: {_excerpt(str(event.get('body', '')))}",
        ]
    if kind == "ticket.classified":
        alternatives = ", ".join(
            f"{a['category']} {a['confidence']:.2f}" for a in event.get("alternatives", [])
        )
        signals = event.get("signals", {})
        flags = [
            name
            for name, on in (
                ("pii " + "/".join(signals.get("pii_kinds", [])), signals.get("pii_detected")),
                ("injection suspected", signals.get("injection_suspected")),
                ("out of scope", signals.get("out_of_scope")),
                (f"degraded: {event.get('degraded_reason')}", event.get("degraded")),
            )
            if on
        ]
        model = event["model"]
        return [
            f"{event['category']} {event['confidence']:.2f} (then {alternatives or 'nothing'})",
            f"language {event['language']}, sentiment {event['sentiment']}, "
            f"urgency {event['urgency']}" + (f"; {'; '.join(flags)}" if flags else ""),
            f"model {model['name']} {model['version']} ({model['backend']}), "
            f"{event['latency_ms']:.1f} ms",
        ]
    if kind == "ticket.decided":
        policy = event["policy"]
        lines = [
            f"{event['mode'].upper()} by policy {policy['name']} v{policy['version']} "
            f"({policy['content_hash'][:12]}), approved by {policy['approved_by']}; "
            f"accountable team {event['owner_team']}"
        ]
        lines += [
            f"rule {r['rule_id']}: {r['reason']} (at most {r['cap']})"
            for r in event.get("rules_fired", [])
        ]
        if event.get("shadow"):
            lines.append(f"shadow policy would say {event['shadow']['mode']}")
        return lines
    if kind == "ticket.routed":
        return [
            f"queue {event['queue']} (topic {event['topic']}), priority {event['priority']}, "
            f"SLA due {event['sla_due_at']}",
            f"mode {event['mode']}, human handling {'yes' if event['human_handling'] else 'no'}, "
            f"routing {event['routing_version']}",
        ]
    if kind == "ticket.dead_lettered":
        return [
            f"stage {event['stage']} gave up: {event['reason']}: {event['error_message']}",
            f"original {event['original_topic']}[{event['original_partition']}]"
            f"@{event['original_offset']}",
        ]
    if kind == "ticket.feedback":
        fields = [
            f"{k}={event[k]}"
            for k in ("correct_category", "correct_queue", "resolved", "csat", "negative_reply")
            if event.get(k) is not None
        ]
        return [f"{event['kind']} by {event['actor']}: {', '.join(fields)}"]
    return []


def trail_table(ticket_id: str, events: list[dict[str, Any]]) -> Table:
    """Return a ticket's trail as a table: time since arrival, hop time, event, details."""
    table = Table(title=f"Trail of {ticket_id}", show_lines=True, expand=False)
    table.add_column("+ms", justify="right")
    table.add_column("hop ms", justify="right")
    table.add_column("event")
    table.add_column("what happened")
    start = _when(events[0])
    by_id = {e["event_id"]: e for e in events}
    for event in events:
        cause = by_id.get(event.get("causation_id") or "")
        hop = (_when(event) - _when(cause)).total_seconds() * 1000 if cause else None
        table.add_row(
            f"{(_when(event) - start).total_seconds() * 1000:.0f}",
            f"{hop:.0f}" if hop is not None else "",
            Text(f"{event['event_type']}\n{event['producer']['service']}"),
            Text("\n".join(_details(event))),
        )
    return table


def dead_letter_table(entries: list[DeadLetterEntry]) -> Table:
    """Return recorded dead letters as a table."""
    table = Table(title="Dead letters (newest first)")
    table.add_column("seq")
    # Whole, never cut: it is what `dlq show` and `dlq replay` take.
    table.add_column("event id", no_wrap=True, min_width=36)
    for column in ("ticket", "stage", "reason", "error"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            str(entry.seq),
            entry.event_id,
            entry.ticket_id,
            entry.stage or "",
            entry.reason or "",
            Text((entry.error_message or "")[:80]),
        )
    return table


def _counts(title: str, counts: dict[str, int], total: int | None = None) -> Table:
    table = Table(title=title)
    table.add_column(title.split()[-1])
    table.add_column("tickets", justify="right")
    table.add_column("share", justify="right")
    denominator = total or sum(counts.values()) or 1
    for key, count in counts.items():
        table.add_row(key, str(count), f"{count / denominator:.0%}")
    return table


def summary_tables(summary: PipelineSummary) -> list[Table]:
    """Return the demo summary: modes, queues, dead letters, slowest hops."""
    hops = Table(title="Time per hop (cause → event)")
    for column in ("event", "count", "p50 ms", "p95 ms", "max ms"):
        hops.add_column(column, justify="right" if column != "event" else "left")
    for hop in sorted(summary.hops, key=lambda h: -h.p95_ms):
        hops.add_row(
            hop.event_type,
            str(hop.count),
            f"{hop.p50_ms:.0f}",
            f"{hop.p95_ms:.0f}",
            f"{hop.max_ms:.0f}",
        )
    return [
        _counts("Decisions by mode", summary.modes),
        _counts("Routed by queue", summary.queues),
        _counts("Dead letters by reason", summary.dead_letter_reasons),
        hops,
    ]
