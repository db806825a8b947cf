"""`triageflow drift check | reenable | status`: the drift guard.

`check` reads recent feedback from the audit store and publishes `category.capped` for
every category that trips the guard (`services.learning.drift`); every policy copy then
caps it at assist (rule `drift-guard`). Only a human lifts a cap: `reenable` publishes
`category.reenabled`. `--watch N` repeats the check every N seconds (or schedule it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from shared.contracts import CategoryCapped, ControlEvent

from services.cli.improve import Actor, Reason, control_state, producer, publish, who

drift_app = typer.Typer(help="The drift guard: cap categories whose feedback turns bad.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def active_caps(state: Mapping[str, ControlEvent]) -> dict[str, CategoryCapped]:
    """Return the `category.capped` events in force, by category."""
    from shared.contracts import CategoryCapped

    return {e.category: e for e in state.values() if isinstance(e, CategoryCapped)}


async def check_once(
    *,
    target: float,
    window: timedelta,
    baseline: timedelta,
    min_judged: int,
    override_jump: float,
    actor: str,
    now: datetime,
) -> list[str]:
    """Run the guard once; publish a cap per finding; return the categories capped."""
    from services.audit.repository import connect_pool, judged_tickets
    from services.learning.drift import DriftRule, Judged, check_drift
    from services.learning.settings import LearnSettings
    from shared.contracts import CategoryCapped, Mode, cap_key
    from shared.settings import DatabaseSettings

    settings = LearnSettings()
    rule = DriftRule(
        target=target,
        window=window,
        baseline=baseline,
        min_judged=min_judged,
        override_jump=override_jump,
    )
    pool = await connect_pool(DatabaseSettings().dsn(), min_size=1, max_size=1)
    try:
        rows = await judged_tickets(pool, now - window - baseline, now)
    finally:
        await pool.close()
    capped = active_caps(await control_state(settings))
    findings = check_drift(
        (Judged(r.category, r.mode, r.judged_correct, r.overridden, r.decided_at) for r in rows),
        rule=rule,
        now=now,
        capped=set(capped),
    )
    events = [
        CategoryCapped(
            event_id=str(uuid.uuid4()),
            key=cap_key(f.category),
            producer=producer(),
            actor=actor,
            reason=f"drift guard: {', '.join(f.evidence.triggers)}",
            category=f.category,
            cap=Mode.ASSIST,
            evidence=f.evidence,
        )
        for f in findings
    ]
    await publish(settings, *events)
    return [e.category for e in events]


@drift_app.command("check")
def drift_check(
    target: Annotated[
        float, typer.Option(min=0.5, max=0.9999, help="Autonomous precision promised.")
    ] = 0.98,
    window_hours: Annotated[float, typer.Option(help="Recent window, hours.")] = 24.0,
    baseline_hours: Annotated[
        float, typer.Option(help="Baseline window before it, hours.")
    ] = 168.0,
    min_judged: Annotated[int, typer.Option(help="Judged decisions a check needs.")] = 20,
    override_jump: Annotated[
        float, typer.Option(help="Override-rate rise over the baseline that trips the guard.")
    ] = 0.2,
    watch: Annotated[
        float | None, typer.Option(help="Repeat every this many seconds until interrupted.")
    ] = None,
    actor: Actor = "drift-guard",
) -> None:
    """Cap at assist every category whose recent feedback is surely below target."""
    while True:
        capped = asyncio.run(
            check_once(
                target=target,
                window=timedelta(hours=window_hours),
                baseline=timedelta(hours=baseline_hours),
                min_judged=min_judged,
                override_jump=override_jump,
                actor=who(actor),
                now=datetime.now(UTC),
            )
        )
        out.print(
            f"[red]capped at assist: {', '.join(capped)}[/red]"
            if capped
            else "[green]no category drifted[/green]"
        )
        if watch is None:
            return
        # The schedule between checks of a long-running job, not a test wait.
        time.sleep(watch)


@drift_app.command("reenable")
def drift_reenable(
    category: str, reason: Reason = "re-enabled by an operator", actor: Actor = None
) -> None:
    """Lift a category's drift cap (a human decision, recorded in the trail)."""
    from services.learning.settings import LearnSettings
    from shared.contracts import CategoryReenabled, cap_key

    settings = LearnSettings()
    capped = active_caps(asyncio.run(control_state(settings)))
    if category not in capped:
        err.print(f"[yellow]{category} is not capped[/yellow]")
        raise typer.Exit(1)
    event = CategoryReenabled(
        event_id=str(uuid.uuid4()),
        key=cap_key(category),
        producer=producer(),
        actor=who(actor),
        reason=reason,
        causation_id=capped[category].event_id,
        category=category,
    )
    asyncio.run(publish(settings, event))
    out.print(f"[green]{category} re-enabled[/green] by {event.actor}")


@drift_app.command("status")
def drift_status() -> None:
    """List the categories capped now, with their evidence."""
    from services.learning.settings import LearnSettings

    capped = active_caps(asyncio.run(control_state(LearnSettings())))
    if not capped:
        out.print("no category is capped")
    for category, event in sorted(capped.items()):
        out.print(f"{category}: capped at {event.cap.value} by {event.actor}: {event.reason}")
