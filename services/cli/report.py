"""`triageflow report`: outcome metrics of a time window, as tables, JSON or an HTML page.

The figures come from the audit store's views (`audit.outcome_metrics`, migration
audit_0005_outcomes; definitions in docs/outcomes.md). This module parses the window,
asks the store, and renders; it computes no metric of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.audit.repository import (
        ActiveCap,
        ControlSnapshot,
        MinutesPerTicket,
        ModelInForce,
        ModeOutcome,
        OutcomeGroup,
        OutcomeReport,
    )

MODES = ("autonomous", "assist", "human")
# Same origin as audit.outcome_metrics: buckets start at midnight UTC, weeks on Monday.
BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The bucket the report picks for a window no longer than each span: a day by the hour,
# a week or a month by the day.
_AUTO_BUCKETS = (
    (timedelta(days=1), timedelta(hours=1)),
    (timedelta(days=3), timedelta(hours=6)),
    (timedelta(days=62), timedelta(days=1)),
)


class ReportSettings(BaseSettings):
    """Defaults of `triageflow report` (env prefix `TRIAGEFLOW_REPORT_`)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_REPORT_", frozen=True, extra="ignore")

    since: str = Field(default="7d", description="Default start of the window (7d, ISO date).")
    minutes_human: float = Field(
        default=8.0, ge=0, description="Agent minutes a ticket takes when a human handles it."
    )
    minutes_assist: float = Field(
        default=5.0, ge=0, description="Agent minutes a ticket takes with an AI suggestion."
    )
    minutes_autonomous: float = Field(
        default=0.5, ge=0, description="Agent minutes an autonomous ticket still takes (review)."
    )


class GroupBy(enum.StrEnum):
    """What the report's table is broken down by."""

    CATEGORY = "category"
    MODEL = "model"
    POLICY = "policy"


# ------------------------------------------------------------------------ parsing


def parse_duration(text: str) -> timedelta:
    """Return the duration of `30m`, `12h`, `7d` or `2w`; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration like 30m, 12h, 7d or 2w: {text!r}")
    amount, unit = float(match.group(1)), match.group(2)
    duration = timedelta(**{_UNITS[unit]: amount})
    if duration <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return duration


def parse_moment(text: str, now: datetime) -> datetime:
    """Return the moment `text` names: `now`, a duration back from now, or an ISO date/time.

    A date means its midnight, and a time without a zone is UTC.
    """
    text = text.strip()
    if text == "now":
        return now
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)  # a bare date gives its midnight
    except ValueError:
        raise ValueError(f"not a duration (7d) or an ISO date/time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def auto_bucket(since: datetime, until: datetime) -> timedelta:
    """Return a bucket that gives a chart of the window a few dozen bars at most."""
    for longest, bucket in _AUTO_BUCKETS:
        if until - since <= longest:
            return bucket
    return timedelta(weeks=1)


def bucket_starts(since: datetime, until: datetime, bucket: timedelta) -> list[datetime]:
    """Return the start of every bucket that overlaps [since, until), as the SQL bins them."""
    start = BUCKET_ORIGIN + ((since - BUCKET_ORIGIN) // bucket) * bucket
    starts = []
    while start < until:
        starts.append(start)
        start += bucket
    return starts


def bucket_label(start: datetime, bucket: timedelta) -> str:
    """Return a short label for a bucket: `24 Nov`, or `24 Nov 06:00` below a day."""
    start = start.astimezone(UTC)
    if bucket < timedelta(days=1):
        return start.strftime("%d %b %H:%M").lstrip("0")
    return start.strftime("%d %b").lstrip("0")


def duration_text(duration: timedelta) -> str:
    """Return `day`, `6 hours`, `week` for a bucket size (as in `per day`)."""
    seconds = int(duration.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"


# --------------------------------------------------------------------- formatting


def percent(value: float | None) -> str:
    """Return a rate as a percentage (one decimal under 10%), or `–` when there is no data."""
    if value is None:
        return "–"
    if 0 < value < 0.1:
        return f"{value:.1%}"
    return f"{value:.0%}"


def fraction(numerator: int, denominator: int) -> str:
    """Return `2/5`, or an empty string when nothing was counted."""
    return f"{numerator}/{denominator}" if denominator else ""


def minutes_text(minutes: float) -> str:
    """Return agent time as minutes, or hours from two hours up."""
    if abs(minutes) >= 120:
        return f"{minutes / 60:,.1f} h"
    return f"{minutes:,.1f} min".replace(".0 min", " min")


def csat_text(outcome: ModeOutcome) -> str:
    """Return the mean CSAT with one decimal, or `–`."""
    return "–" if outcome.csat_mean is None else f"{outcome.csat_mean:.1f}"


def window_text(report: OutcomeReport) -> str:
    """Return the window as `2026-11-18 09:00 → 2026-11-25 09:00 UTC`."""
    since = report.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    until = report.until.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return f"{since} → {until} UTC"


# ------------------------------------------------------------------------ terminal


def summary_table(report: OutcomeReport) -> Table:
    """Return the headline figures of the window as a two-column table."""
    total, auto = report.total.total, report.total.mode("autonomous")
    dead, minutes = report.dead_letters, report.minutes
    table = Table(title=f"Outcomes {window_text(report)}", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value")
    mix = " · ".join(f"{m} {percent(report.total.mode(m).share)}" for m in MODES)
    stages = ", ".join(f"{stage} {count}" for stage, count in dead.by_stage.items())
    rows = [
        ("Decisions", f"{total.decisions:,}"),
        ("Mode mix", mix),
        (
            "Autonomous precision",
            f"{percent(auto.judged_precision)} ({auto.judged_correct} of {auto.judged} judged)",
        ),
        (
            "Override rate",
            f"{percent(total.override_rate)} of judged ({fraction(total.overridden, total.judged)})"
            f" · {percent(total.override_rate_all)} of all",
        ),
        (
            "Negative customer reactions",
            f"{total.negative_reactions} ({total.escalated} re-routed to a human)",
        ),
        (
            "Resolution rate",
            f"{percent(total.resolution_rate)} "
            f"({fraction(total.resolved, total.resolution_reported)} reported)",
        ),
        (
            "Reopen rate",
            f"{percent(total.reopen_rate)} ({fraction(total.reopened, total.reopen_base)})",
        ),
        ("CSAT", f"{csat_text(total)} ({total.csat_responses} responses)"),
        (
            "Agent time saved",
            f"{minutes_text(total.minutes_saved)} (minutes per ticket: human "
            f"{minutes.human:g}, assist {minutes.assist:g}, autonomous {minutes.autonomous:g})",
        ),
        (
            "Dead-letter rate",
            f"{percent(dead.rate)} ({dead.dead_letters} of {dead.inbound_messages} inbound"
            + (f"; {stages}" if stages else "")
            + ")",
        ),
    ]
    if report.unmatched_feedback:
        rows.append(("Feedback on unrecorded decisions", str(report.unmatched_feedback)))
    for name, value in rows:
        table.add_row(name, value)
    return table


def modes_table(group: OutcomeGroup, title: str = "By mode") -> Table:
    """Return one row per mode: share, judged correct, overrides, resolution, CSAT, time."""
    table = Table(title=title, title_justify="left")
    for column in (
        "mode", "decisions", "share", "judged correct", "override rate", "resolved",
        "reopened", "CSAT", "handle time", "time saved",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode in (*MODES, "all"):
        row = group.mode(mode)
        handle = row.handle_time_mean_seconds
        table.add_row(
            mode,
            f"{row.decisions:,}",
            percent(row.share),
            f"{percent(row.judged_precision)} {fraction(row.judged_correct, row.judged)}",
            f"{percent(row.override_rate)} {fraction(row.overridden, row.judged)}",
            f"{percent(row.resolution_rate)} {fraction(row.resolved, row.resolution_reported)}",
            f"{percent(row.reopen_rate)} {fraction(row.reopened, row.reopen_base)}",
            csat_text(row),
            "–" if handle is None else f"{handle / 60:.1f} min",
            minutes_text(row.minutes_saved),
            style="bold" if mode == "all" else None,
        )
    return table


def groups_table(groups: list[OutcomeGroup], by: str) -> Table:
    """Return one row per category, model or policy version."""
    table = Table(title=f"By {by}", title_justify="left")
    for column in (
        by, "decisions", "auto", "assist", "human", "auto precision", "override rate",
        "negative", "resolved", "reopened", "CSAT", "time saved",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == by else "right")
    for group in groups:
        total, auto = group.total, group.mode("autonomous")
        table.add_row(
            group.key,
            f"{total.decisions:,}",
            *(percent(group.mode(m).share) for m in MODES),
            f"{percent(auto.judged_precision)} {fraction(auto.judged_correct, auto.judged)}",
            f"{percent(total.override_rate)} {fraction(total.overridden, total.judged)}",
            str(total.negative_reactions),
            percent(total.resolution_rate),
            percent(total.reopen_rate),
            csat_text(total),
            minutes_text(total.minutes_saved),
        )
    return table


def versions_table(report: OutcomeReport) -> Table:
    """Return the model and policy versions that decided in the window."""
    table = Table(title="Versions in the window", title_justify="left")
    for column in ("kind", "version", "detail", "decisions", "first", "last"):
        table.add_column(column, justify="right" if column == "decisions" else "left")
    for seen in report.versions:
        table.add_row(
            seen.kind,
            seen.key,
            seen.detail,
            f"{seen.decisions:,}",
            seen.first_decided_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            seen.last_decided_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        )
    return table


def model_text(model: ModelInForce | None, *, configured: str) -> str:
    """Return what a model control says: version, since when, by whom (and if forced)."""
    if model is None:
        return configured
    version = model.version or "the configured model"
    verb = {"model.rolled_back": "rolled back to"}.get(model.event_type, "")
    forced = " (forced)" if model.forced else ""
    return (
        f"{verb + ' ' if verb else ''}{version}{forced} since "
        f"{model.since.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} by {model.actor}"
    )


def cap_evidence_text(cap: ActiveCap) -> str:
    """Return the figures that tripped the drift guard for one capped category."""
    parts = [f"{cap.autonomous_correct}/{cap.autonomous_judged} autonomous correct"]
    if cap.precision_upper is not None:
        parts.append(f"precision ≤ {cap.precision_upper:.3f} < target {cap.target:.3f}")
    if cap.override_rate is not None and cap.baseline_override_rate is not None:
        parts.append(
            f"override rate {percent(cap.override_rate)} vs {percent(cap.baseline_override_rate)}"
        )
    if cap.triggers:
        parts.append("triggers: " + ", ".join(cap.triggers))
    return "; ".join(parts)


def controls_table(controls: ControlSnapshot) -> Table:
    """Return the models in force and the categories the drift guard holds back."""
    when = controls.as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    table = Table(
        title=f"Continuous improvement (control state at {when} UTC)", title_justify="left"
    )
    table.add_column("what")
    table.add_column("state")
    table.add_row(
        "live model",
        model_text(controls.live_model, configured="configured model (no promotion recorded)"),
    )
    table.add_row("shadow candidate", model_text(controls.candidate, configured="none"))
    if not controls.caps:
        table.add_row("drift caps", "none active")
    for cap in controls.caps:
        since = cap.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            f"capped: {cap.category}",
            f"at most {cap.cap} since {since} by {cap.actor} — {cap_evidence_text(cap)}",
        )
    return table


def report_tables(
    report: OutcomeReport, by: str, controls: ControlSnapshot | None = None
) -> list[Table]:
    """Return every table of the terminal report."""
    return [
        summary_table(report),
        modes_table(report.total),
        groups_table(list(report.groups.get(by, [])), by),
        versions_table(report),
        *([controls_table(controls)] if controls is not None else []),
    ]


# ---------------------------------------------------------------------------- JSON


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def report_json(report: OutcomeReport, controls: ControlSnapshot | None = None) -> str:
    """Return the report as JSON: every figure, per mode, per group (and per bucket)."""
    data = dataclasses.asdict(report)
    data["bucket_seconds"] = data.pop("bucket")
    data["minutes_per_ticket"] = data.pop("minutes")
    if controls is not None:
        data["controls"] = dataclasses.asdict(controls)
    return json.dumps(data, default=_jsonable, indent=2)


# ---------------------------------------------------------------------------- command


def minutes_per_ticket(
    settings: ReportSettings,
    human: float | None = None,
    assist: float | None = None,
    autonomous: float | None = None,
) -> MinutesPerTicket:
    """Return the minutes per ticket: command-line flags over settings over defaults."""
    from services.audit.repository import MinutesPerTicket

    return MinutesPerTicket(
        human=settings.minutes_human if human is None else human,
        assist=settings.minutes_assist if assist is None else assist,
        autonomous=settings.minutes_autonomous if autonomous is None else autonomous,
    )


async def fetch_report(
    database_url: str,
    since: datetime,
    until: datetime,
    *,
    groupings: tuple[str, ...],
    bucket: timedelta | None,
    minutes: MinutesPerTicket,
) -> OutcomeReport:
    """Read the report from the audit store at `database_url`."""
    from services.audit.repository import PostgresOutcomeStore, connect_pool

    pool = await connect_pool(database_url, min_size=1, max_size=1)
    try:
        store = PostgresOutcomeStore(pool)
        return await store.report(since, until, groupings=groupings, bucket=bucket, minutes=minutes)
    finally:
        await pool.close()


async def fetch_controls(database_url: str, as_of: datetime) -> ControlSnapshot:
    """Read the models in force and the active drift caps at `as_of` from the audit store."""
    from services.audit.repository import connect_pool, control_snapshot

    pool = await connect_pool(database_url, min_size=1, max_size=1)
    try:
        return await control_snapshot(pool, as_of)
    finally:
        await pool.close()


def _moment(text: str, now: datetime, option: str) -> datetime:
    try:
        return parse_moment(text, now)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


def report(
    since: Annotated[
        str | None,
        typer.Option(
            help="Start: a duration back from now (30m, 12h, 7d, 2w) or an ISO date/time "
            "(UTC unless it has a zone). Default: TRIAGEFLOW_REPORT_SINCE, else 7d."
        ),
    ] = None,
    until: Annotated[
        str, typer.Option(help="End (exclusive), in the same forms; default now.")
    ] = "now",
    by: Annotated[GroupBy, typer.Option(help="Break the table down by this.")] = GroupBy.CATEGORY,
    as_json: Annotated[bool, typer.Option("--json", help="Every figure as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Write a self-contained HTML page with charts to this file.", dir_okay=False
        ),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(help="Timeline bucket (1h, 6h, 1d, 1w); default: fits the window."),
    ] = None,
    minutes_human: Annotated[
        float | None, typer.Option(min=0, help="Agent minutes per human-handled ticket.")
    ] = None,
    minutes_assist: Annotated[
        float | None, typer.Option(min=0, help="Agent minutes per assisted ticket.")
    ] = None,
    minutes_autonomous: Annotated[
        float | None, typer.Option(min=0, help="Agent minutes per autonomous ticket.")
    ] = None,
) -> None:
    """Outcome metrics of the decisions in a time window, by category, model or policy.

    Mode mix, autonomous precision, overrides, resolutions, CSAT, time saved, dead letters;
    and the models and drift caps in force at the end of the window.
    """
    from shared.settings import DatabaseSettings

    settings = ReportSettings()
    now = datetime.now(UTC)
    start = _moment(since or settings.since, now, "--since")
    end = _moment(until, now, "--until")
    if start >= end:
        raise typer.BadParameter(f"--since ({start}) is not before --until ({end})")
    try:
        step = parse_duration(bucket) if bucket else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--bucket") from None
    if html is not None or as_json:
        groupings: tuple[str, ...] = tuple(g.value for g in GroupBy)
        step = step or auto_bucket(start, end)
    else:
        groupings = (by.value,)
    minutes = minutes_per_ticket(settings, minutes_human, minutes_assist, minutes_autonomous)
    result = asyncio.run(
        fetch_report(
            DatabaseSettings().dsn(),
            start,
            end,
            groupings=groupings,
            bucket=step,
            minutes=minutes,
        )
    )
    controls = asyncio.run(fetch_controls(DatabaseSettings().dsn(), min(end, now)))
    out = Console(soft_wrap=True)
    if html is not None:
        from services.cli.report_html import render_html

        html.write_text(render_html(result, generated_at=now, controls=controls), encoding="utf-8")
        Console(stderr=True).print(f"wrote {html} ({window_text(result)})")
    if as_json:
        out.out(report_json(result, controls), highlight=False)
    elif html is None:
        for table in report_tables(result, by.value, controls):
            out.print(table)
