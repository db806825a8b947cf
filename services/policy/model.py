"""The policy file (YAML): its schema, and loading it with precise, line-numbered errors.

ValueError
└── PolicyError   the file cannot be read, is not YAML, or is not a valid policy
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from yaml.nodes import Node

from services.policy._yaml import YamlFileError, line_of, read_yaml
from services.policy.context import condition_problem, show
from shared.conditions import Condition
from shared.contracts import Mode, PolicyInfo, Thresholds

# Ids the engine gives its built-in constraints; a file rule may not borrow them, so a
# rule id in the audit trail always points at exactly one thing.
RESERVED_RULE_PREFIXES = ("threshold", "ambiguity", "category", "kill_switch", "safety")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, line and field."""


def _require_text(value: object) -> object:
    # YAML reads `version: 2` as a number and `version: 1.10` as 1.1: refuse, don't guess.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'must be text; quote it in the file, e.g. "{value}"')
    return value


def _date_as_text(value: object) -> object:
    # YAML reads an unquoted `2026-11-01` as a date; the trail records it as ISO text.
    return value.isoformat() if isinstance(value, date) else value


Problems = list[tuple[tuple[str | int, ...], str]]  # (location in the file, what is wrong)
Text = Annotated[str, Field(min_length=1), BeforeValidator(_require_text)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DefaultThresholds(BaseModel):
    """Thresholds for every category that does not set its own."""

    model_config = _FROZEN

    autonomous: Probability = Field(description="Min confidence for the AI to act alone.")
    assist: Probability = Field(description="Min confidence for the AI to assist a human.")
    ambiguity_margin: Probability = Field(
        description="Min top-1 minus top-2 confidence; below it, at most assist."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DefaultThresholds:
        if self.assist > self.autonomous:
            raise ValueError(
                f"assist threshold {show(self.assist)} is above "
                f"autonomous threshold {show(self.autonomous)}"
            )
        return self


class CategoryPolicy(BaseModel):
    """What the policy says about one category, and who answers for its outcomes."""

    model_config = _FROZEN

    owner_team: Text = Field(description="Team accountable for this category's outcomes.")
    autonomous: Probability | None = Field(default=None, description="Overrides the default.")
    assist: Probability | None = Field(default=None, description="Overrides the default.")
    never_autonomous: StrictBool = Field(default=False, description="At most assist, always.")
    kill_switch: StrictBool = Field(default=False, description="Human only, at once.")


class PolicyRule(BaseModel):
    """A declarative rule: when every condition holds, the mode is capped at `cap`."""

    model_config = _FROZEN

    id: Text = Field(description="Stable id, recorded in every decision it constrains.")
    description: Text = Field(description="Why the rule exists, in words.")
    when: tuple[Condition, ...] = Field(min_length=1, description="All must hold.")
    cap: Mode = Field(description="The highest mode allowed when the rule fires.")

    @model_validator(mode="after")
    def _sound(self) -> PolicyRule:
        problems: Problems = []
        if self.id.split(".")[0] in RESERVED_RULE_PREFIXES:
            problems.append((("id",), f"rule id {self.id!r} is reserved for built-in checks"))
        for i, condition in enumerate(self.when):
            problem = condition_problem(condition)
            if problem:
                problems.append((("when", i, "field"), f"rule {self.id!r}: {problem}"))
        _refuse(problems, self)
        return self


class Policy(BaseModel):
    """A versioned, approved policy: thresholds, categories, rules and kill switch."""

    model_config = _FROZEN

    name: Text = Field(description="Policy name.")
    version: Text = Field(description='Version of this file (text, e.g. "3").')
    approved_by: Text = Field(description="Who approved this version.")
    approved_at: Annotated[Text, BeforeValidator(_date_as_text)] = Field(
        description="When this version was approved (ISO date)."
    )
    defaults: DefaultThresholds = Field(description="Thresholds where a category sets none.")
    default_owner_team: Text = Field(description="Team accountable for unlisted categories.")
    categories: dict[str, CategoryPolicy] = Field(
        default_factory=dict, description="Per-category settings, by category name."
    )
    rules: tuple[PolicyRule, ...] = Field(default=(), description="Declarative caps.")
    kill_switch: StrictBool = Field(default=False, description="Human only, for everything.")

    def thresholds_for(self, category: str) -> Thresholds:
        """Return the thresholds that apply to `category` (its own, else the defaults)."""
        own = self.categories.get(category)
        autonomous = own.autonomous if own else None
        assist = own.assist if own else None
        return Thresholds(
            autonomous=self.defaults.autonomous if autonomous is None else autonomous,
            assist=self.defaults.assist if assist is None else assist,
            ambiguity_margin=self.defaults.ambiguity_margin,
        )

    def owner_team(self, category: str) -> str:
        """Return the team accountable for `category`."""
        own = self.categories.get(category)
        return own.owner_team if own else self.default_owner_team

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        problems: Problems = []
        for name, own in self.categories.items():
            applied = self.thresholds_for(name)
            if applied.assist > applied.autonomous:
                field = "assist" if own.assist is not None else "autonomous"
                inherited = own.assist is None or own.autonomous is None
                problems.append(
                    (
                        ("categories", name, field),
                        f"assist threshold {show(applied.assist)} is above autonomous "
                        f"threshold {show(applied.autonomous)}"
                        + (" (counting the defaults)" if inherited else ""),
                    )
                )
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                problems.append((("rules", i, "id"), f"duplicate rule id {rule.id!r}"))
            seen.add(rule.id)
        _refuse(problems, self)
        return self


def _refuse(problems: Problems, model: BaseModel) -> None:
    # Raised as a ValidationError so each problem keeps its own location (pydantic
    # prefixes it with the parent's), which the loader turns into a line number.
    if problems:
        raise ValidationError.from_exception_data(
            type(model).__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError("policy", "{problem}", {"problem": problem}),
                    loc=loc,
                    input=model,
                )
                for loc, problem in problems
            ],
        )


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A validated policy and the identity every decision records: version and hash."""

    policy: Policy
    content_hash: str
    info: PolicyInfo
    source: str


def parse_policy(raw: bytes, *, source: str = "policy.yaml") -> LoadedPolicy:
    """Return the policy in `raw` (YAML bytes); `source` names it in error messages."""
    try:
        data, root = read_yaml(raw, source)
    except YamlFileError as exc:
        raise PolicyError(str(exc)) from exc
    if data is None:
        raise PolicyError(f"{source}: the file is empty")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_located(exc, root, source)) from exc
    content_hash = hashlib.sha256(raw).hexdigest()
    info = PolicyInfo(
        name=policy.name,
        version=policy.version,
        content_hash=content_hash,
        approved_by=policy.approved_by,
        approved_at=policy.approved_at,
    )
    return LoadedPolicy(policy=policy, content_hash=content_hash, info=info, source=source)


def load_policy(path: Path) -> LoadedPolicy:
    """Return the policy in the YAML file at `path`; raise PolicyError naming any problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from exc
    return parse_policy(raw, source=str(path))


@cache
def load_default_policy() -> LoadedPolicy:
    """Return the policy shipped with triageflow (`default_policy.yaml`)."""
    raw = resources.files("services.policy").joinpath("default_policy.yaml").read_bytes()
    return parse_policy(raw, source="default_policy.yaml")


def _located(exc: ValidationError, root: Node | None, source: str) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc: tuple[str | int, ...] = error["loc"]
        path = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        where = f"{path}: " if path else ""
        lines.append(f"{source} line {line_of(root, loc)}: {where}{message}")
    return "\n".join(lines)
