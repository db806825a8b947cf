"""Run service apps in-process against real infrastructure, for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream.asgi import AsgiFastStream


@asynccontextmanager
async def running(*apps: AsgiFastStream) -> AsyncIterator[None]:
    """Start the apps (hooks and brokers), and stop them however the test ends."""
    started: list[AsgiFastStream] = []
    try:
        for app in apps:
            await app.start()
            started.append(app)
        yield
    finally:
        for app in reversed(started):
            await app.stop()
