"""The taxonomy: which categories exist and what each means (YAML, validated)."""

from __future__ import annotations

from functools import cache
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.classifier.data import TAXONOMY, shipped


class Category(BaseModel):
    """One category of the taxonomy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Machine name.")
    description: str = Field(min_length=1, description="One line: what belongs here.")


class Taxonomy(BaseModel):
    """The categories a classifier may answer with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Taxonomy name.")
    version: str = Field(min_length=1, description="Taxonomy version.")
    categories: tuple[Category, ...] = Field(min_length=2, description="The categories.")

    @field_validator("categories")
    @classmethod
    def _names_unique(cls, categories: tuple[Category, ...]) -> tuple[Category, ...]:
        names = [c.name for c in categories]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate category names: {duplicates}")
        return categories

    @property
    def names(self) -> tuple[str, ...]:
        """Return the category names, in file order."""
        return tuple(c.name for c in self.categories)


def load_taxonomy(source: Path | Traversable) -> Taxonomy:
    """Load and validate a taxonomy YAML file."""
    return Taxonomy.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))


@cache
def default_taxonomy() -> Taxonomy:
    """Return the taxonomy shipped with triageflow."""
    return load_taxonomy(shipped(TAXONOMY))
