"""Call an ASGI app in-process with one GET request (no HTTP client needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faststream.asgi import AsgiFastStream


@dataclass(frozen=True)
class Response:
    """Status code and body of one response."""

    status_code: int
    text: str


async def get(app: AsgiFastStream, path: str) -> Response:
    """Send `GET path` to `app` and collect the response."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"service")],
        "client": ("127.0.0.1", 1),
        "server": ("service", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Response(status, body.decode("utf-8", "replace"))
