"""Drift-guard caps from the control topic, as policy rules.

The drift guard (`triageflow drift check`) publishes `category.capped`; a human lifts it
with `triageflow drift reenable` (`category.reenabled`). Every policy copy follows the
control topic and caps the category's mode with rule `drift-guard`, whose reason names the
evidence, until the cap is lifted.
"""

from __future__ import annotations

from collections.abc import Mapping

from loguru import logger

from shared.contracts import CategoryCapped, CategoryReenabled, ControlEvent, RuleFired

RULE_ID = "drift-guard"


def cap_rule(event: CategoryCapped) -> RuleFired:
    """Return the rule a drift cap fires, its reason naming the evidence."""
    e = event.evidence
    bound = f"{e.precision_upper:.3f}" if e.precision_upper is not None else "n/a"
    override = f"{e.override_rate:.2f}" if e.override_rate is not None else "n/a"
    baseline = f"{e.baseline_override_rate:.2f}" if e.baseline_override_rate is not None else "n/a"
    return RuleFired(
        rule_id=RULE_ID,
        reason=(
            f"drift guard capped {event.category} at {event.cap.value} "
            f"({', '.join(e.triggers) or 'operator'}: {e.autonomous_correct}/"
            f"{e.autonomous_judged} autonomous correct, upper bound {bound} < target "
            f"{e.target:.3f}; override rate {override} vs baseline {baseline}) "
            f"by {event.actor} at {event.occurred_at:%Y-%m-%d %H:%M}Z"
        ),
        cap=event.cap,
    )


class CapControl:
    """The active drift caps of one policy copy, kept current from the control topic."""

    def __init__(self) -> None:
        self._caps: dict[str, RuleFired] = {}

    @property
    def caps(self) -> Mapping[str, RuleFired]:
        """Return the cap rule of every capped category."""
        return self._caps

    def on_change(self, event: ControlEvent) -> None:
        """Apply a `category.capped` or `category.reenabled` event."""
        if isinstance(event, CategoryCapped):
            logger.warning("category {} capped at {}: {}", event.category, event.cap, event.reason)
            self._caps = {**self._caps, event.category: cap_rule(event)}
        elif isinstance(event, CategoryReenabled):
            logger.info("category {} re-enabled by {}", event.category, event.actor)
            self._caps = {k: v for k, v in self._caps.items() if k != event.category}
