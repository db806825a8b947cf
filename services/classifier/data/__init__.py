"""Data shipped with the classifier: the default taxonomy, its examples, demo tickets.

    taxonomy.yaml         the categories of a generic support desk, one line each
    examples.csv          labelled example tickets (`text,label`) the local model learns from
    sample_tickets.jsonl  inbound tickets for the demo, junk and hostile ones included
    make_samples.py       regenerates sample_tickets.jsonl (fixed seed)

Read them through `shipped()` so that they are found inside an installed wheel too.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

TAXONOMY = "taxonomy.yaml"
EXAMPLES = "examples.csv"
SAMPLE_TICKETS = "sample_tickets.jsonl"


def shipped(name: str) -> Traversable:
    """Return a data file shipped in this package, e.g. `shipped(EXAMPLES)`."""
    return resources.files(__name__).joinpath(name)
