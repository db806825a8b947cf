"""CPU-time measures for tests of algorithmic cost (never wall-clock limits)."""

from __future__ import annotations

import time
from collections.abc import Callable

# Eight times the input must cost about eight times the CPU; a quadratic (backtracking)
# pattern would cost ~64 times. 24 leaves room for noise and fixed costs.
GROWTH = 8
MAX_RATIO = 24.0


def cpu_seconds(work: Callable[[], object], repeat: int = 3) -> float:
    """Return the least process CPU time of `repeat` runs of `work` (other load is noise)."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def growth_ratio(check: Callable[[str], object], small: str) -> float:
    """Return how many times the CPU of `check` grows when its input grows GROWTH times."""
    large = small * GROWTH
    return cpu_seconds(lambda: check(large)) / max(cpu_seconds(lambda: check(small)), 1e-4)
