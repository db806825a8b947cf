"""A circuit breaker for one remote dependency (the LLM endpoint), for asyncio callers.

```
CLOSED --(failure_threshold consecutive failures)--> OPEN
OPEN --(cooldown_s elapsed)--> HALF_OPEN: exactly one probe call is let through
HALF_OPEN --(probe succeeds)--> CLOSED;   HALF_OPEN --(probe fails)--> OPEN (timer restarts)
```

While OPEN, and while the half-open probe is in flight, `guard()` raises `CircuitOpenError`
without calling anything. Calls admitted while CLOSED that finish after the breaker opened
do not move it: only the probe decides when to close again.

Why not a library: `aiobreaker` was last released in 2021; `purgatory` and `circuitbreaker`
are maintained and async-capable, but both let every concurrent caller through while
half-open (a batch of 50 tickets would send 50 probes to an endpoint that just failed) and
read the wall clock directly, so a test of the cool-down would have to sleep. This one is a
single-probe state machine over an injectable monotonic clock. It is not thread-safe: one
event loop owns it, as one classifier process owns its backend.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Gauge


class BreakerState(enum.StrEnum):
    """Where the breaker is (the values are what metrics and logs show)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The breaker refused the call: the dependency failed recently."""


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; probes once after `cooldown_s`."""

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """Return the current state (an open breaker past its cool-down reads half_open)."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Return the failures counted since the last success (closed state)."""
        return self._failures

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the `with` body if the breaker admits it; an exception in it is a failure."""
        probe = self._admit()
        try:
            yield
        except Exception:
            self._failed(probe)
            raise
        except BaseException:
            # Cancelled: no verdict on the dependency; free the probe slot for the next call.
            if probe:
                self._probing = False
            raise
        self._succeeded(probe)

    def _admit(self) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        raise CircuitOpenError(f"circuit {state.value}: the endpoint failed recently")

    def _failed(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._open()
        elif self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def _succeeded(self, probe: bool) -> None:
        if probe:
            self._probing = False
            self._state = BreakerState.CLOSED
        if self._state is BreakerState.CLOSED:
            self._failures = 0

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0


def export_state(breaker: CircuitBreaker, registry: CollectorRegistry, *, name: str) -> Gauge:
    """Register `triageflow_circuit_breaker_state{breaker, state}`: 1 for the current state."""
    gauge = Gauge(
        "triageflow_circuit_breaker_state",
        "Circuit breaker state: 1 for the state it is in, 0 for the others.",
        ["breaker", "state"],
        registry=registry,
    )
    for state in BreakerState:
        # Read at scrape time, so the gauge never lags the breaker.
        gauge.labels(name, state.value).set_function(_is_in(breaker, state))
    return gauge


def _is_in(breaker: CircuitBreaker, state: BreakerState) -> Callable[[], float]:
    return lambda: float(breaker.state is state)
