"""A policy in plain words, for `triageflow policy check FILE` and for reviewers."""

from __future__ import annotations

import textwrap

from services.policy.context import CONTEXT_FIELDS, show
from services.policy.model import LoadedPolicy, Policy, PolicyRule
from shared.contracts import Mode


def explain_policy(loaded: LoadedPolicy) -> str:
    """Return a plain-text explanation of a policy: identity, thresholds, categories, rules."""
    policy = loaded.policy
    sections = [
        _identity(loaded),
        _defaults(policy),
        _categories(policy),
        _rules(policy),
        _builtins(),
        _paragraph(f"Fields rules may test: {', '.join(CONTEXT_FIELDS)}."),
    ]
    return "\n\n".join(sections) + "\n"


def describe_rule(rule: PolicyRule) -> str:
    """Return a rule in words, e.g. "if ticket.customer_tier in ['vip'] then at most assist"."""
    conditions = " and ".join(condition.describe() for condition in rule.when)
    return f"if {conditions} then {_cap_words(rule.cap)}"


def _identity(loaded: LoadedPolicy) -> str:
    policy = loaded.policy
    brake = (
        "ON: every ticket goes to a human, whatever else this policy says"
        if policy.kill_switch
        else "off"
    )
    return "\n".join(
        [
            f"Policy {policy.name} version {policy.version} ({loaded.source})",
            f"sha256 {loaded.content_hash}",
            f"Approved by {policy.approved_by} on {policy.approved_at}",
            f"Global kill switch: {brake}",
        ]
    )


def _defaults(policy: Policy) -> str:
    d = policy.defaults
    return _paragraph(
        f"Defaults: autonomous at confidence >= {show(d.autonomous)}, assist at >= "
        f"{show(d.assist)}, otherwise human. A top-1 minus top-2 margin below "
        f"{show(d.ambiguity_margin)} allows at most assist. "
        f"Categories not listed below use the defaults and are owned by "
        f"{policy.default_owner_team}."
    )


def _categories(policy: Policy) -> str:
    if not policy.categories:
        return "Categories: none listed; every category uses the defaults."
    header = ("category", "autonomous", "assist", "never autonomous", "kill switch", "owner")
    rows = [header]
    for name, own in sorted(policy.categories.items()):
        applied = policy.thresholds_for(name)
        rows.append(
            (
                name,
                _inherited(applied.autonomous, own.autonomous),
                _inherited(applied.assist, own.assist),
                "yes" if own.never_autonomous else "no",
                "ON" if own.kill_switch else "off",
                own.owner_team,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(["Categories (* = from the defaults):", *(line.rstrip() for line in table)])


def _inherited(applied: float, own: float | None) -> str:
    return show(applied) if own is not None else f"{show(applied)}*"


def _rules(policy: Policy) -> str:
    if not policy.rules:
        return "Rules: none."
    lines = ["Rules (each fires when all its conditions hold; the strictest cap wins):"]
    for rule in policy.rules:
        lines.append(f"  {rule.id}: {rule.description}")
        lines.append(f"    {describe_rule(rule)}")
    return "\n".join(lines)


def _builtins() -> str:
    return _paragraph(
        "Always on (built in, not configurable): degraded classification -> human; "
        "suspected prompt injection -> human; out-of-scope ticket -> human."
    )


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=88, break_on_hyphens=False)


def _cap_words(cap: Mode) -> str:
    if cap is Mode.HUMAN:
        return "human only"
    if cap is Mode.ASSIST:
        return "at most assist"
    return "no cap (autonomous allowed)"
