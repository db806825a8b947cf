"""A scripted OpenAI-compatible chat endpoint on 127.0.0.1, for driving the real `openai` client.

`FakeOpenAI` serves `POST /v1/chat/completions` from a thread (stdlib `http.server`), on a
random loopback port. Each request is answered by the next scripted `Reply`, or by the
`responder` once the script is used up; every request body the server received is kept in
`requests`. A `Reply(hang=True)` answers nothing until the server closes, to look like an
endpoint slower than any client timeout.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.classifier.backends.local import Examples, LocalModel, fit
from services.classifier.taxonomy import Category, Taxonomy

MODEL = "fake-llm-2026-01-01"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers and body (a dict is sent as JSON)."""

    body: dict[str, Any] | str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


Responder = Callable[[dict[str, Any]], Reply]


class FakeOpenAI:
    """The fake endpoint: script it, point a client at `base_url`, read `requests`."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder: Responder = responder or (lambda _: error(500))
        self.requests: list[dict[str, Any]] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval makes `shutdown` quick: tests start one server each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """Return the URL to give the client (`.../v1`)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def calls(self) -> int:
        """Return how many chat completions were requested so far."""
        with self._lock:
            return len(self.requests)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order, then with the responder."""
        with self._lock:
            self._script.extend(replies)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def close(self) -> None:
        """Release hanging replies and stop serving."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._script:
                return self._script.pop(0)
        return self.responder(body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(error(404))
                    return
                reply = fake._next(json.loads(raw))
                if reply.hang:
                    # Bounded, so a broken test cannot keep the thread forever.
                    fake._closing.wait(timeout=60)
                    return
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                payload = data.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler


@contextmanager
def fake_openai(responder: Responder | None = None) -> Iterator[FakeOpenAI]:
    """Run a `FakeOpenAI` for the duration of a `with` block."""
    server = FakeOpenAI(responder)
    server.start()
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------- replies


def error(status: int, **headers: str) -> Reply:
    """Return an OpenAI-style error reply."""
    body = {"error": {"message": f"fake error {status}", "type": "fake", "code": str(status)}}
    return Reply(body, status=status, headers=headers)


def answer_json(category: str, confidence: float = 0.9, *, out_of_scope: bool = False) -> str:
    """Return the JSON text a well-behaved model answers with (category first)."""
    return json.dumps(
        {"category": category, "confidence": confidence, "out_of_scope": out_of_scope},
        separators=(",", ":"),
    )


def completion(
    content: str,
    *,
    logprobs: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    model: str = MODEL,
) -> Reply:
    """Return a chat completion whose message is `content`, with token logprobs if given."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content, "refusal": None},
        "finish_reason": finish_reason,
        "logprobs": {"content": logprobs, "refusal": None} if logprobs is not None else None,
    }
    return Reply(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_764_072_000,
            "model": model,
            "choices": [choice],
            "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
        }
    )


def classification(
    category: str,
    confidence: float = 0.9,
    *,
    label_probability: float | None = None,
    runners_up: Sequence[tuple[str, float]] = (),
    out_of_scope: bool = False,
) -> Reply:
    """Return a well-formed answer; with `label_probability`, with token logprobs too.

    The content is cut into tokens the way a BPE tokenizer might: `{"category":"`, the
    label's first four characters, the rest of the label with the closing quote, the rest.
    The label's first token has probability `label_probability`, the rest certainty, and
    its top alternatives are the first four characters of each runner-up.
    """
    content = answer_json(category, confidence, out_of_scope=out_of_scope)
    if label_probability is None:
        return completion(content)
    head = '{"category":"'
    tokens = [head, category[:4], f'{category[4:]}"', content[len(head) + len(category) + 1 :]]
    assert "".join(tokens) == content
    top = [(category[:4], label_probability), *((c[:4], p) for c, p in runners_up)]
    return completion(
        content,
        logprobs=[
            _token(head, 1.0),
            _token(category[:4], label_probability, top=top),
            _token(tokens[2], 1.0),
            _token(tokens[3], 1.0),
        ],
    )


def _token(text: str, p: float, *, top: Sequence[tuple[str, float]] = ()) -> dict[str, Any]:
    return {
        "token": text,
        "logprob": math.log(p),
        "bytes": list(text.encode()),
        "top_logprobs": [
            {"token": t, "logprob": math.log(q), "bytes": list(t.encode())}
            for t, q in (top or [(text, p)])
        ],
    }


_TICKET: re.Pattern[str] = re.compile(r"<ticket>\n(.*)\n</ticket>", re.DOTALL)


def ticket_of(body: dict[str, Any]) -> str:
    """Return the ticket text between the delimiters of a request's user message."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    found = _TICKET.search(user)
    assert found is not None, user
    return found.group(1)


def by_keyword(rules: dict[str, str], *, otherwise: str) -> Responder:
    """Return a responder that answers the category of the first keyword in the ticket."""

    def respond(body: dict[str, Any]) -> Reply:
        text = ticket_of(body).lower()
        category = next((c for word, c in rules.items() if word in text), otherwise)
        return classification(category, 0.95, label_probability=0.97)

    return respond


# ------------------------------------------------------- a small world for the tests

EXAMPLES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice on my invoice",
        "Why is my bill higher this month",
        "The invoice amount is wrong",
        "Unexpected charge on my card statement",
        "You billed me for the wrong plan price",
        "Payment failed but my card was charged",
    ),
    "shipping": (
        "Where is my parcel, it has not arrived",
        "The tracking number has not updated for days",
        "My package was delivered to the wrong address",
        "When will my order be shipped",
        "The delivery is late again",
        "Courier lost my package",
    ),
    "account_access": (
        "I cannot log in to my account",
        "Password reset email never arrives",
        "My account is locked after failed logins",
        "Two factor code does not work so I cannot sign in",
        "Forgot my password and the reset link expired",
        "Login page keeps rejecting my password",
    ),
    "cancellation": (
        "Please cancel my subscription",
        "I want to stop my plan and all payments",
        "Do not renew my plan next month",
        "How do I cancel my membership",
        "Cancel my contract at the end of the term",
        "Stop my subscription immediately",
    ),
}


def small_taxonomy() -> Taxonomy:
    """Return the four-category taxonomy of `EXAMPLES`."""
    return Taxonomy(
        name="test-desk",
        version="7",
        categories=tuple(
            Category(name=name, description=f"Tickets about {name.replace('_', ' ')}.")
            for name in EXAMPLES
        ),
    )


def small_local_model() -> LocalModel:
    """Return a local model trained on `EXAMPLES` (well under a second)."""
    texts = tuple(t for ts in EXAMPLES.values() for t in ts)
    labels = tuple(label for label, ts in EXAMPLES.items() for _ in ts)
    return fit(Examples(texts, labels, sha256="test-examples"))
