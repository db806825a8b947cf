"""triageflow policy."""

from services.policy.engine import Verdict, decide, evaluate, summarize
from services.policy.explain import describe_rule, explain_policy
from services.policy.model import (
    LoadedPolicy,
    Policy,
    PolicyError,
    load_default_policy,
    load_policy,
    parse_policy,
)

__all__ = [
    "LoadedPolicy",
    "Policy",
    "PolicyError",
    "Verdict",
    "decide",
    "describe_rule",
    "evaluate",
    "explain_policy",
    "load_default_policy",
    "load_policy",
    "parse_policy",
    "summarize",
]
