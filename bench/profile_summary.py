"""Summarise py-spy collapsed stacks (`--format raw`): where a service's CPU goes.

    python bench/profile_summary.py DIR/*.txt

For each file: the share of samples (inclusive) that pass through each cost centre of the
hot path, and the functions with the most samples of their own.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

# Cost centres, matched against a frame's "function (file)" text; first match wins per frame.
CENTRES = {
    "logging (loguru)": "loguru/",
    "tracing (opentelemetry)": "opentelemetry/",
    "metrics (prometheus)": "prometheus_client/",
    "faststream publish": "faststream/_internal/endpoint/publisher",
    "pydantic (validate/serialise)": "pydantic",
    "aiokafka": "aiokafka/",
    "asyncpg": "asyncpg/",
    "asyncio event loop": "asyncio/",
}


def summarise(path: Path, top: int = 12) -> str:
    """Return a text summary of one collapsed-stack file."""
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = stack.split(";")
        total += samples
        hit = {name for name, marker in CENTRES.items() if any(marker in f for f in frames)}
        for name in hit:
            inclusive[name] += samples
        if "idle" not in frames[-1]:
            own[frames[-1]] += samples
    lines = [f"== {path.name}: {total} samples"]
    for name, samples in inclusive.most_common():
        lines.append(f"  {samples / max(total, 1):6.1%}  {name}")
    lines.append("  -- top own-time frames")
    for frame, samples in own.most_common(top):
        lines.append(f"  {samples / max(total, 1):6.1%}  {frame[:150]}")
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    """Print the summary of every file."""
    for path in paths:
        sys.stdout.write(summarise(Path(path)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
