"""`triageflow report` without a database: parsing, buckets, charts, tables, JSON, HTML."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from typer.testing import CliRunner

from services.audit.repository import (
    ActiveCap,
    ControlSnapshot,
    DeadLetterRate,
    MinutesPerTicket,
    ModelInForce,
    ModeOutcome,
    OutcomeGroup,
    OutcomeReport,
    VersionSeen,
)
from services.cli.charts import Series, count_ticks, line_chart, share_bar, stacked_bars
from services.cli.main import app
from services.cli.report import (
    ReportSettings,
    auto_bucket,
    bucket_label,
    bucket_starts,
    minutes_per_ticket,
    minutes_text,
    parse_duration,
    parse_moment,
    percent,
    report_json,
    report_tables,
)
from services.cli.report_html import render_html, version_markers

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
SINCE = datetime(2026, 11, 23, tzinfo=UTC)
UNTIL = datetime(2026, 11, 25, tzinfo=UTC)
DAY = timedelta(days=1)


def outcome(key: str, start: datetime, mode: str, decisions: int, **fields: object) -> ModeOutcome:
    """Return one row of outcome metrics."""
    return ModeOutcome(key, start, mode, decisions, **fields)  # type: ignore[arg-type]


def group(key: str, start: datetime, **modes: ModeOutcome) -> OutcomeGroup:
    """Return a group from its mode rows."""
    return OutcomeGroup(key, start, modes)


def sample_report(*, decisions: int = 10) -> OutcomeReport:
    """Return a small report built by hand (figures need not be consistent)."""
    auto = outcome(
        "all", SINCE, "autonomous", 6, share=0.6, judged=5, judged_correct=2,
        judged_precision=0.4, minutes_saved=45.0,
    )  # fmt: skip
    total = outcome(
        "all", SINCE, "all", decisions, share=1.0, judged=9, judged_correct=4, overridden=2,
        override_rate=2 / 9, override_rate_all=0.2, negative_reactions=2, escalated=1,
        csat_responses=5, csat_mean=3.6, minutes_saved=51.0,
    )  # fmt: skip
    modes = {"all": total, "autonomous": auto} if decisions else {}
    billing = group("billing", SINCE, all=outcome("billing", SINCE, "all", 5, share=1.0))
    return OutcomeReport(
        since=SINCE,
        until=UNTIL,
        minutes=MinutesPerTicket(),
        bucket=DAY,
        total=OutcomeGroup("all", SINCE, modes),
        groups={"category": [billing], "model": [], "policy": []},
        timeline=[
            group("all", SINCE, all=total, autonomous=auto),
            group("all", SINCE + DAY, all=total, autonomous=auto),
        ],
        timeline_by_category=[group("billing", SINCE + DAY, autonomous=auto)],
        dead_letters=DeadLetterRate(11, 2, 1, 2 / 11, {"classifier": 1, "policy": 1}),
        unmatched_feedback=1,
        versions=[
            VersionSeen("model", "tfidf-lr@m1", "local", 5, SINCE, SINCE),
            VersionSeen("model", "tfidf-lr@m2", "local", 5, SINCE + DAY, SINCE + DAY),
        ],
    )


# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        (" 2w ", timedelta(weeks=2)),
        ("1.5d", timedelta(hours=36)),
    ],
)
def test_durations_are_minutes_hours_days_or_weeks(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "7y", "-1d", "0d", "d", ""])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T08:15", datetime(2026, 11, 1, 8, 15, tzinfo=UTC)),
        ("2026-11-01T08:15+02:00", datetime(2026, 11, 1, 6, 15, tzinfo=UTC)),
    ],
)
def test_a_moment_is_now_a_duration_ago_or_an_iso_time_in_utc_by_default(
    text: str, expected: datetime
) -> None:
    assert parse_moment(text, NOW) == expected


def test_a_moment_that_is_neither_is_refused() -> None:
    with pytest.raises(ValueError, match="ISO"):
        parse_moment("yesterday", NOW)


def test_a_bad_since_is_a_usage_error_before_any_database_is_asked() -> None:
    result = CliRunner().invoke(app, ["report", "--since", "yesterday"])

    assert result.exit_code == 2
    assert "yesterday" in result.output


def test_since_after_until_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["report", "--since", "2026-11-25", "--until", "2026-11-01"])

    assert result.exit_code == 2
    assert "not before" in result.output


# ------------------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    ("span", "bucket"),
    [
        (timedelta(hours=6), timedelta(hours=1)),
        (timedelta(days=1), timedelta(hours=1)),
        (timedelta(days=2), timedelta(hours=6)),
        (timedelta(days=7), timedelta(days=1)),
        (timedelta(days=30), timedelta(days=1)),
        (timedelta(days=180), timedelta(weeks=1)),
    ],
)
def test_the_bucket_keeps_a_chart_to_a_few_dozen_bars(span: timedelta, bucket: timedelta) -> None:
    assert auto_bucket(NOW - span, NOW) == bucket


def test_buckets_start_at_midnight_utc_like_the_sql_and_cover_the_window() -> None:
    starts = bucket_starts(datetime(2026, 11, 23, 9, 30, tzinfo=UTC), UNTIL, DAY)

    assert starts == [SINCE, SINCE + DAY]
    weeks = bucket_starts(SINCE, UNTIL + timedelta(days=14), timedelta(weeks=1))
    assert [start.strftime("%a") for start in weeks] == ["Mon"] * len(weeks)


def test_bucket_labels_show_the_hour_only_below_a_day() -> None:
    assert bucket_label(SINCE, DAY) == "23 Nov"
    assert bucket_label(SINCE + timedelta(hours=6), timedelta(hours=6)) == "23 Nov 06:00"


# ---------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "text"), [(None, "–"), (0.0, "0%"), (0.054, "5.4%"), (2 / 9, "22%"), (1.0, "100%")]
)
def test_rates_are_percentages_and_no_data_is_a_dash(value: float | None, text: str) -> None:
    assert percent(value) == text


def test_time_saved_is_in_minutes_then_hours() -> None:
    assert minutes_text(51.0) == "51 min"
    assert minutes_text(25.5) == "25.5 min"
    assert minutes_text(5652.0) == "94.2 h"


def test_minutes_per_ticket_come_from_flags_over_settings_over_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRIAGEFLOW_REPORT_MINUTES_HUMAN", "10")
    monkeypatch.setenv("TRIAGEFLOW_REPORT_MINUTES_ASSIST", "4")

    minutes = minutes_per_ticket(ReportSettings(), assist=6)

    assert minutes == MinutesPerTicket(human=10, assist=6, autonomous=0.5)


# -------------------------------------------------------------------------- charts


def test_count_axes_have_whole_round_ticks() -> None:
    assert count_ticks(5) == [0, 1, 2, 3, 4, 5]
    assert count_ticks(87) == [0, 20, 40, 60, 80, 100]
    assert count_ticks(0) == [0, 1]


def test_stacked_bars_draw_one_rect_per_non_zero_value() -> None:
    svg = stacked_bars(
        ["a", "b"],
        [Series("autonomous", [3, 0], "#111"), Series("human", [1, 2], "#222")],
        title="mix",
    )

    assert svg.count("<rect") == 3
    assert "<title>a: autonomous 3</title>" in svg


def test_a_line_skips_buckets_without_data_and_a_marker_is_labelled() -> None:
    svg = line_chart(
        ["a", "b", "c"],
        [Series("billing", [0.5, None, 1.0], "#111")],
        title="precision",
        markers=[(2, "model m2")],
    )

    assert svg.count("<circle") == 2
    assert svg.count("<polyline") == 1
    assert "model m2</text>" in svg


def test_a_long_legend_wraps_and_the_chart_grows_to_hold_it() -> None:
    few = line_chart(["a"], [Series("x", [0.1], "#111")], title="t", width=300)
    many = line_chart(
        ["a"], [Series(f"category-{n}", [0.1], "#111") for n in range(8)], title="t", width=300
    )

    height = re.compile(r'height="(\d+)"')
    assert int(height.findall(many)[0]) > int(height.findall(few)[0])


def test_a_share_bar_is_split_by_share() -> None:
    bar = share_bar([(0.75, "#111", "autonomous"), (0.25, "#222", "human")], width=100)

    assert 'width="75.0"' in bar
    assert 'width="25.0"' in bar


# ---------------------------------------------------------------- tables and JSON


def test_the_terminal_report_shows_the_headline_figures_and_the_breakdown() -> None:
    console = Console(record=True, width=200)
    for table in report_tables(sample_report(), "category"):
        console.print(table)
    text = console.export_text()

    assert "40% (2 of 5 judged)" in text
    assert "22% of judged (2/9) · 20% of all" in text
    assert "2 (1 re-routed to a human)" in text
    assert "18% (2 of 11 inbound; classifier 1, policy 1)" in text
    assert "billing" in text
    assert "tfidf-lr@m2" in text


def test_the_json_report_carries_every_figure_with_iso_times() -> None:
    data = json.loads(report_json(sample_report()))

    assert data["since"] == "2026-11-23T00:00:00+00:00"
    assert data["bucket_seconds"] == 86400
    assert data["minutes_per_ticket"] == {"human": 8.0, "assist": 5.0, "autonomous": 0.5}
    assert data["total"]["modes"]["autonomous"]["judged_precision"] == 0.4
    assert data["groups"]["category"][0]["key"] == "billing"
    assert data["dead_letters"]["by_stage"] == {"classifier": 1, "policy": 1}


# ------------------------------------------------------------------------------ HTML


def test_the_page_marks_a_version_that_began_inside_the_window() -> None:
    assert version_markers(sample_report()) == [(1, "model tfidf-lr@m2")]


def test_the_page_escapes_names_and_is_self_contained() -> None:
    report = sample_report()
    report.groups["category"][0] = group(
        "<b>x</b>", SINCE, all=outcome("<b>x</b>", SINCE, "all", 5, share=1.0)
    )

    html = render_html(report, generated_at=NOW)

    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<b>x</b>" not in html
    assert "<script" not in html
    assert "<link" not in html


def test_a_window_without_decisions_says_so() -> None:
    html = render_html(sample_report(decisions=0), generated_at=NOW)

    assert "No decisions were made in this window." in html


# ------------------------------------------------------------ continuous improvement


def test_the_report_says_when_no_model_was_promoted_and_no_cap_is_active() -> None:
    controls = ControlSnapshot(as_of=NOW, live_model=None, candidate=None, caps=())
    console = Console(record=True, width=200)
    for table in report_tables(sample_report(), "category", controls):
        console.print(table)
    text = console.export_text()

    assert "configured model (no promotion recorded)" in text
    assert "none active" in text
    assert json.loads(report_json(sample_report(), controls))["controls"]["caps"] == []


def test_the_page_lists_active_caps_with_their_evidence_escaped() -> None:
    cap = ActiveCap(
        category="<b>billing</b>",
        cap="assist",
        since=NOW,
        actor="drift-guard",
        target=0.95,
        autonomous_judged=30,
        autonomous_correct=18,
        precision_upper=0.77,
        override_rate=0.4,
        baseline_override_rate=0.02,
        triggers=("precision",),
    )
    live = ModelInForce(
        version="abc123",
        event_type="model.promoted",
        since=NOW,
        actor="ops",
        reason="",
        forced=True,
    )
    controls = ControlSnapshot(as_of=NOW, live_model=live, candidate=None, caps=(cap,))

    html = render_html(sample_report(decisions=0), generated_at=NOW, controls=controls)

    assert "Capped: &lt;b&gt;billing&lt;/b&gt;" in html
    assert "18/30 autonomous correct; precision ≤ 0.770 &lt; target 0.950" in html
    assert "override rate 40% vs 2.0%" in html
    assert "abc123 (forced) since" in html
