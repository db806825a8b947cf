"""The outcome report as one self-contained HTML page: headline figures, charts, tables.

Inline CSS and inline SVG only (services.cli.charts): the file opens offline, can be
mailed or attached to a ticket, and renders the same in any browser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape

from services.audit.repository import ControlSnapshot, ModeOutcome, OutcomeGroup, OutcomeReport
from services.cli.charts import Series, line_chart, share_bar, stacked_bars
from services.cli.report import (
    MODES,
    bucket_label,
    bucket_starts,
    cap_evidence_text,
    csat_text,
    duration_text,
    fraction,
    minutes_text,
    model_text,
    percent,
    window_text,
)

MODE_COLORS = {"autonomous": "#2a9d8f", "assist": "#e9a23b", "human": "#5b6b8c"}
OVERALL_COLOR = "#1f2a44"
CATEGORY_COLORS = (
    "#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#f28e2b",
    "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f9;color:#1f2633;
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#1f2a44;color:#fff;padding:22px 32px 20px}
header h1{margin:0;font-size:22px;font-weight:650;letter-spacing:.01em}
header p{margin:6px 0 0;color:#c5cee0;font-size:13px}
main{padding:20px 32px 32px;max-width:1400px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.kpi,.card{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(20,30,60,.08)}
.kpi{padding:14px 16px;border-top:4px solid #c9d1e0}
.kpi .label{font-size:11px;color:#6b7385;text-transform:uppercase;letter-spacing:.06em;
  font-weight:600}
.kpi .value{font-size:30px;font-weight:680;margin-top:2px;font-variant-numeric:tabular-nums}
.kpi .value small{font-size:15px;font-weight:500;color:#6b7385}
.kpi .note{font-size:12px;color:#6b7385}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin-top:16px}
.wide{grid-column:1 / -1}
.card{padding:16px 18px}
.card h2{font-size:15px;margin:0 0 2px;font-weight:650}
.card .sub{font-size:12px;color:#6b7385;margin:0 0 10px}
.card svg.chart{width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:7px 8px;text-align:right;border-bottom:1px solid #edf0f5;white-space:nowrap}
th:first-child,td:first-child,th.l,td.l{text-align:left}
th{font-size:11px;color:#6b7385;font-weight:600;text-transform:uppercase;letter-spacing:.04em;
  white-space:normal;vertical-align:bottom}
tr.total td{font-weight:650;border-top:2px solid #dfe4ee}
tr.capped td{color:#b23b3b;font-weight:600}
td .n{color:#8a94a6;font-size:12px;margin-left:4px}
td.mix{text-align:left}
td.mix svg{vertical-align:middle;border-radius:3px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.empty{padding:40px;text-align:center;color:#6b7385;font-size:16px}
footer{color:#6b7385;font-size:12px;margin-top:18px;line-height:1.6}
code{font-size:12px;background:#eef1f6;padding:1px 4px;border-radius:3px}
"""


def _kpi(label: str, value: str, note: str, accent: str = "#c9d1e0") -> str:
    return (
        f'<div class="kpi" style="border-top-color:{accent}"><div class="label">{escape(label)}'
        f'</div><div class="value">{value}</div><div class="note">{escape(note)}</div></div>'
    )


def kpis(report: OutcomeReport) -> str:
    """Return the row of headline figures."""
    total, auto = report.total.total, report.total.mode("autonomous")
    dead, minutes = report.dead_letters, report.minutes
    mix = " · ".join(f"{report.total.mode(m).decisions:,} {m}" for m in MODES)
    return (
        '<section class="kpis">'
        + "".join(
            [
                _kpi("Decisions", f"{total.decisions:,}", mix),
                _kpi(
                    "Automation rate",
                    percent(auto.share),
                    f"autonomous; assist {percent(report.total.mode('assist').share)}, "
                    f"human {percent(report.total.mode('human').share)}",
                    MODE_COLORS["autonomous"],
                ),
                _kpi(
                    "Autonomous precision",
                    percent(auto.judged_precision),
                    f"{auto.judged_correct} of {auto.judged} judged autonomous decisions correct",
                    "#2f7d5b",
                ),
                _kpi(
                    "Override rate",
                    percent(total.override_rate),
                    f"{total.overridden} of {total.judged} judged decisions; "
                    f"{percent(total.override_rate_all)} of all",
                    "#c0392b",
                ),
                _kpi(
                    "Resolution rate",
                    percent(total.resolution_rate),
                    f"{fraction(total.resolved, total.resolution_reported) or 'none'} reported; "
                    f"reopened {percent(total.reopen_rate)} "
                    f"({fraction(total.reopened, total.reopen_base) or 'none'})",
                ),
                _kpi(
                    "Customer satisfaction",
                    csat_text(total)
                    + ("<small> / 5</small>" if total.csat_mean is not None else ""),
                    f"mean of {total.csat_responses} CSAT responses; "
                    f"{total.negative_reactions} negative reactions, "
                    f"{total.escalated} re-routed to a human",
                ),
                _kpi(
                    "Agent time saved",
                    escape(minutes_text(total.minutes_saved)),
                    f"at {minutes.human:g} / {minutes.assist:g} / {minutes.autonomous:g} min per "
                    "human / assist / autonomous ticket",
                    "#4e79a7",
                ),
                _kpi(
                    "Dead-letter rate",
                    percent(dead.rate),
                    f"{dead.dead_letters} dead letters per "
                    f"{dead.inbound_messages} inbound messages",
                    "#8a94a6",
                ),
            ]
        )
        + "</section>"
    )


def _timeline(
    report: OutcomeReport, groups: Sequence[OutcomeGroup]
) -> tuple[list[datetime], dict[datetime, OutcomeGroup]]:
    bucket = report.bucket or (report.until - report.since)
    starts = bucket_starts(report.since, report.until, bucket)
    return starts, {group.bucket_start: group for group in groups}


def _category_colors(report: OutcomeReport) -> dict[str, str]:
    names = sorted({group.key for group in report.timeline_by_category})
    names += sorted({g.key for g in report.groups.get("category", [])} - set(names))
    return {name: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, name in enumerate(names)}


def _rate_series(
    report: OutcomeReport, rate: Callable[[OutcomeGroup], float | None]
) -> tuple[list[str], list[Series]]:
    """Return labels and one series per category plus the overall one, of `rate` per bucket."""
    bucket = report.bucket or (report.until - report.since)
    starts, overall = _timeline(report, report.timeline)
    labels = [bucket_label(start, bucket) for start in starts]
    series = []
    for name, color in _category_colors(report).items():
        by_start = {g.bucket_start: g for g in report.timeline_by_category if g.key == name}
        values = [rate(by_start[s]) if s in by_start else None for s in starts]
        series.append(Series(name, values, color, width=1.6, opacity=0.8))
    values = [rate(overall[s]) if s in overall else None for s in starts]
    series.append(Series("all categories", values, OVERALL_COLOR, width=3.5, dashed=True))
    return labels, series


def version_markers(report: OutcomeReport) -> list[tuple[int, str]]:
    """Return (bucket index, text) for each model or policy version that began in the window."""
    bucket = report.bucket or (report.until - report.since)
    starts = bucket_starts(report.since, report.until, bucket)
    markers = []
    for seen in report.versions:
        index = sum(1 for start in starts if start <= seen.first_decided_at) - 1
        # A version deciding from the first bucket on did not change anything in view.
        if index > 0:
            markers.append((index, f"{seen.kind} {seen.key}"))
    return markers


def charts(report: OutcomeReport) -> str:
    """Return the three charts: mode mix, autonomous precision and override rate over time."""
    bucket = report.bucket or (report.until - report.since)
    starts, overall = _timeline(report, report.timeline)
    labels = [bucket_label(start, bucket) for start in starts]
    mix = stacked_bars(
        labels,
        [
            Series(
                mode,
                [float(overall[s].mode(mode).decisions) if s in overall else 0.0 for s in starts],
                MODE_COLORS[mode],
            )
            for mode in MODES
        ],
        title="Decisions per bucket by mode",
        width=1300,
        height=250,
    )
    precision_labels, precision = _rate_series(
        report, lambda g: g.mode("autonomous").judged_precision
    )
    override_labels, overrides = _rate_series(report, lambda g: g.total.override_rate)
    each = duration_text(bucket)
    return (
        '<section class="grid">'
        + _card(
            "Mode mix over time",
            f"decisions per {each}, stacked by mode",
            mix,
            wide=True,
        )
        + _card(
            "Autonomous precision over time",
            "share of judged autonomous decisions that feedback did not contradict, per category",
            line_chart(
                precision_labels,
                precision,
                title="Autonomous precision",
                width=640,
                markers=version_markers(report),
            ),
        )
        + _card(
            "Override rate over time",
            "share of judged decisions whose category or queue an agent corrected",
            line_chart(
                override_labels,
                overrides,
                title="Override rate",
                width=640,
                markers=version_markers(report),
            ),
        )
        + "</section>"
    )


def _card(title: str, subtitle: str, body: str, *, wide: bool = False) -> str:
    body = body.replace("<svg ", '<svg class="chart" ', 1)
    return (
        f'<div class="card{" wide" if wide else ""}"><h2>{escape(title)}</h2>'
        f'<p class="sub">{escape(subtitle)}</p>{body}</div>'
    )


def _rate_cell(rate: float | None, numerator: int, denominator: int) -> str:
    n = fraction(numerator, denominator)
    return f"<td>{percent(rate)}{f'<span class=n>{n}</span>' if n else ''}</td>"


def _negative_cell(outcome: ModeOutcome) -> str:
    rerouted = outcome.escalated
    note = f"<span class=n>{rerouted} re-routed</span>" if rerouted else ""
    return f"<td>{outcome.negative_reactions}{note}</td>"


def _mix_cell(group: OutcomeGroup) -> str:
    parts = [(group.mode(m).share or 0.0, MODE_COLORS[m], m) for m in MODES]
    text = " / ".join(percent(group.mode(m).share) for m in MODES)
    return f'<td class="mix">{share_bar(parts)} <span class="n">{text}</span></td>'


def groups_table(title: str, groups: Sequence[OutcomeGroup], colors: dict[str, str]) -> str:
    """Return a table with one row per group (category, model or policy version)."""
    head = (
        "<tr><th>{}</th><th>Decisions</th><th>Mode mix (auto / assist / human)</th>"
        "<th>Autonomous precision</th><th>Override rate</th><th>Negative reactions</th>"
        "<th>Resolved</th><th>Reopened</th><th>CSAT</th><th>Time saved</th></tr>"
    ).format(escape(title.removeprefix("By ").capitalize()))
    rows = []
    for group in groups:
        total, auto = group.total, group.mode("autonomous")
        swatch = (
            f'<span class="swatch" style="background:{colors[group.key]}"></span>'
            if group.key in colors
            else ""
        )
        rows.append(
            f"<tr><td>{swatch}{escape(group.key)}</td><td>{total.decisions:,}</td>"
            + _mix_cell(group)
            + _rate_cell(auto.judged_precision, auto.judged_correct, auto.judged)
            + _rate_cell(total.override_rate, total.overridden, total.judged)
            + _negative_cell(total)
            + _rate_cell(total.resolution_rate, total.resolved, total.resolution_reported)
            + _rate_cell(total.reopen_rate, total.reopened, total.reopen_base)
            + f"<td>{csat_text(total)}</td><td>{escape(minutes_text(total.minutes_saved))}</td>"
            + "</tr>"
        )
    body = "".join(rows) or '<tr><td colspan="10" class="n">no decisions</td></tr>'
    return _table_card(title, head + body)


def modes_table(group: OutcomeGroup) -> str:
    """Return the outcomes of each mode: resolution, reopens, CSAT, handle time by mode."""
    head = (
        "<tr><th>Mode</th><th>Decisions</th><th>Share</th><th>Judged correct</th>"
        "<th>Override rate</th><th>Resolved</th><th>Reopened</th><th>CSAT</th>"
        "<th>Mean handle time</th><th>Time saved</th></tr>"
    )
    rows = []
    for mode in (*MODES, "all"):
        row: ModeOutcome = group.mode(mode)
        handle = row.handle_time_mean_seconds
        swatch = (
            f'<span class="swatch" style="background:{MODE_COLORS[mode]}"></span>'
            if mode in MODE_COLORS
            else ""
        )
        rows.append(
            f"<tr{' class=total' if mode == 'all' else ''}><td>{swatch}{mode}</td>"
            f"<td>{row.decisions:,}</td><td>{percent(row.share)}</td>"
            + _rate_cell(row.judged_precision, row.judged_correct, row.judged)
            + _rate_cell(row.override_rate, row.overridden, row.judged)
            + _rate_cell(row.resolution_rate, row.resolved, row.resolution_reported)
            + _rate_cell(row.reopen_rate, row.reopened, row.reopen_base)
            + f"<td>{csat_text(row)}</td>"
            + f"<td>{'–' if handle is None else f'{handle / 60:.1f} min'}</td>"
            + f"<td>{escape(minutes_text(row.minutes_saved))}</td></tr>"
        )
    return _table_card("By mode", head + "".join(rows))


def versions_table(report: OutcomeReport) -> str:
    """Return the model and policy versions that decided in the window."""
    head = (
        '<tr><th>Kind</th><th class="l">Version</th><th class="l">Detail</th><th>Decisions</th>'
        "<th>First decision</th><th>Last decision</th></tr>"
    )
    rows = "".join(
        f'<tr><td>{escape(v.kind)}</td><td class="l">{escape(v.key)}</td>'
        f'<td class="l">{escape(v.detail)}</td>'
        f"<td>{v.decisions:,}</td><td>{_when(v.first_decided_at)}</td>"
        f"<td>{_when(v.last_decided_at)}</td></tr>"
        for v in report.versions
    )
    return _table_card("Model and policy versions in this window", head + rows)


def controls_card(controls: ControlSnapshot) -> str:
    """Return the models in force and the categories the drift guard holds back."""
    head = '<tr><th class="l">What</th><th class="l">State</th></tr>'
    rows = [
        (
            "Live model",
            model_text(controls.live_model, configured="configured model (no promotion recorded)"),
        ),
        ("Shadow candidate", model_text(controls.candidate, configured="none")),
    ]
    if not controls.caps:
        rows.append(("Drift caps", "none active"))
    rows += [
        (
            f"Capped: {cap.category}",
            f"at most {cap.cap} since {_when(cap.since)} by {cap.actor} — "
            + cap_evidence_text(cap),
        )
        for cap in controls.caps
    ]
    body = "".join(
        f'<tr class="{"capped" if what.startswith("Capped") else ""}">'
        f'<td class="l">{escape(what)}</td><td class="l">{escape(state)}</td></tr>'
        for what, state in rows
    )
    return _table_card(
        f"Continuous improvement — in force at {_when(controls.as_of)} UTC", head + body
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table_card(title: str, rows: str, *, wide: bool = True) -> str:
    return (
        f'<div class="card{" wide" if wide else ""}"><h2>{escape(title)}</h2>'
        f"<table>{rows}</table></div>"
    )


FOOTER = """<footer>
<b>How to read this.</b> A decision is <i>judged</i> once any feedback refers to it; it is
<i>correct</i> unless that feedback overrides its category or queue, is a negative customer
reaction (a negative reply or CSAT 1–2) or reopens the ticket. Autonomous precision = correct /
judged autonomous decisions. Override rate = overridden / judged decisions. Resolution rate
uses each decision's latest resolution; reopen rate = reopened / resolved-or-reopened. CSAT is
each decision's latest score. Time saved = Σ (human minutes − minutes of the decision's mode).
The window selects decisions by when they were made; their feedback counts whenever it came.
Figures come from <code>audit.outcome_metrics</code>; definitions in
<code>docs/outcomes.md</code>.
</footer>"""


def render_html(
    report: OutcomeReport, *, generated_at: datetime, controls: ControlSnapshot | None = None
) -> str:
    """Return the whole page for `report` (and the control state, if given)."""
    bucket = report.bucket or (report.until - report.since)
    subtitle = (
        f"{window_text(report)} · one point per {duration_text(bucket)} · "
        f"generated {_when(generated_at)} UTC"
    )
    colors = _category_colors(report)
    if report.total.total.decisions == 0:
        body = '<div class="card empty">No decisions were made in this window.</div>'
    else:
        body = (
            kpis(report)
            + charts(report)
            + '<section class="grid">'
            + groups_table("By category", report.groups.get("category", []), colors)
            + modes_table(report.total)
            + groups_table("By model version", report.groups.get("model", []), {})
            + groups_table("By policy version", report.groups.get("policy", []), {})
            + versions_table(report)
            + "</section>"
        )
    improvement = (
        '<section class="grid">' + controls_card(controls) + "</section>"
        if controls is not None
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>triageflow outcomes {escape(window_text(report))}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>triageflow · outcomes</h1><p>{escape(subtitle)}</p></header>"
        f"<main>{body}{improvement}{FOOTER}</main></body></html>"
    )
