"""The cascade: the local model answers what it is sure of, the LLM only the uncertain band."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from services.classifier.backends.base import Prediction
from services.classifier.backends.breaker import CircuitBreaker
from services.classifier.backends.cascade import CascadeBackend
from services.classifier.backends.llm import LlmBackend, LlmOptions, llm_client
from shared.contracts import ModelInfo
from tests.fake_openai import (
    MODEL,
    FakeOpenAI,
    Reply,
    by_keyword,
    classification,
    error,
    fake_openai,
    small_local_model,
    small_taxonomy,
    ticket_of,
)

LOCAL = ModelInfo(name="scripted", version="s1", backend="local")


class ScriptedLocal:
    """A local backend whose confidence per text is set by the test."""

    def __init__(self, answers: dict[str, tuple[str, float]]) -> None:
        self.answers = answers

    @property
    def info(self) -> ModelInfo:
        return LOCAL

    def predict(self, texts: list[str]) -> list[Prediction]:
        return [Prediction(*self.answers[t]) for t in texts]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai(by_keyword({"parcel": "shipping"}, otherwise="billing")) as running:
        yield running


@pytest.fixture
async def client(server: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    made = llm_client(base_url=server.base_url, api_key="test-key", timeout_s=5.0)
    yield made
    await made.close()


def llm(client: AsyncOpenAI, **options: Any) -> LlmBackend:
    return LlmBackend(
        client,
        small_taxonomy(),
        LlmOptions(model="fake-llm", max_retries=0, backoff_initial_s=0.0, **options),
        breaker=CircuitBreaker(failure_threshold=100, cooldown_s=60.0),
    )


BAND = {
    "sure billing": ("billing", 0.95),
    "parcel, a guess": ("cancellation", 0.6),
    "lost": ("billing", 0.2),
    "parcel at the lower edge": ("cancellation", 0.35),
    "sure at the upper edge": ("billing", 0.9),
}


async def test_only_tickets_in_the_uncertain_band_go_to_the_llm(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    cascade = CascadeBackend(ScriptedLocal(BAND), llm(client), low=0.35, high=0.9)

    predictions = await cascade.predict_async(list(BAND))

    assert sorted(ticket_of(body) for body in server.requests) == [
        "parcel at the lower edge",
        "parcel, a guess",
    ]
    assert [p.llm_used for p in predictions] == [False, True, False, True, False]
    assert [p.category for p in predictions] == [
        "billing",
        "shipping",
        "billing",
        "shipping",
        "billing",
    ]
    assert predictions[0].model == ModelInfo(name="scripted", version="s1", backend="cascade")
    assert predictions[1].model is not None
    assert (predictions[1].model.name, predictions[1].model.backend) == (MODEL, "cascade")
    assert predictions[1].confidence == pytest.approx(0.97)
    assert all(p.degraded_reason is None for p in predictions)
    assert cascade.info.backend == "cascade"
    assert cascade.info.name == "scripted+fake-llm"


async def test_a_batch_the_local_model_is_sure_of_costs_no_llm_call(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    sure = {"a": ("billing", 0.99), "b": ("shipping", 0.1)}
    cascade = CascadeBackend(ScriptedLocal(sure), llm(client), low=0.35, high=0.9)

    predictions = await cascade.predict_async(["a", "b"])

    assert server.calls == 0
    assert [p.category for p in predictions] == ["billing", "shipping"]


async def test_when_the_llm_fails_the_local_answer_stands_degraded(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    server.responder = lambda _: error(503)
    cascade = CascadeBackend(ScriptedLocal(BAND), llm(client), low=0.35, high=0.9)

    predictions = await cascade.predict_async(list(BAND))

    assert server.calls == 2
    degraded = [p for p in predictions if p.degraded_reason is not None]
    assert [(p.category, p.confidence) for p in degraded] == [
        ("cancellation", 0.6),
        ("cancellation", 0.35),
    ]
    for p in degraded:
        assert p.model == LOCAL
        assert p.llm_used
        assert p.degraded_reason is not None
        assert "HTTP 503" in p.degraded_reason


def meeting(parties: int, *, timeout: float) -> Callable[[dict[str, Any]], Reply]:
    """Return a responder that answers only once `parties` requests are in flight together."""
    barrier = threading.Barrier(parties, timeout=timeout)

    def respond(body: dict[str, Any]) -> Reply:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return error(500)
        return classification("billing", 0.9)

    return respond


async def test_the_uncertain_tickets_go_out_together_in_one_burst(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    # Sent one by one, no request would ever meet another: all would fail.
    server.responder = meeting(2, timeout=10)
    texts = [f"ticket {i}" for i in range(6)]
    local = ScriptedLocal({t: ("shipping", 0.5) for t in texts})
    cascade = CascadeBackend(local, llm(client, concurrency=2), low=0.35, high=0.9)

    predictions = await cascade.predict_async(texts)

    assert server.calls == 6
    assert [p.category for p in predictions] == ["billing"] * 6
    assert all(p.degraded_reason is None for p in predictions)


async def test_the_burst_never_exceeds_the_concurrency_limit(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    # Three requests in flight at once would meet and be answered; within a limit of two,
    # the first two wait for a third that never comes, and the broken meeting fails all.
    server.responder = meeting(3, timeout=0.5)
    texts = [f"ticket {i}" for i in range(6)]
    local = ScriptedLocal({t: ("shipping", 0.5) for t in texts})
    cascade = CascadeBackend(local, llm(client, concurrency=2), low=0.35, high=0.9)

    predictions = await cascade.predict_async(texts)

    assert server.calls == 6
    assert [p.category for p in predictions] == ["shipping"] * 6
    assert all(p.degraded_reason is not None for p in predictions)


async def test_the_cascade_with_the_real_local_model(
    server: FakeOpenAI, client: AsyncOpenAI
) -> None:
    local = small_local_model()
    texts = ["Where is my parcel, it has not arrived", "hmm, a parcel and a bill"]
    confidences = [p.confidence for p in local.predict(texts)]
    # A band between the two: the clear ticket stays local, the muddled one goes out.
    cascade = CascadeBackend(local, llm(client), low=0.0, high=max(confidences))

    clear, muddled = await cascade.predict_async(texts)

    assert min(confidences) < max(confidences)
    assert (clear.llm_used, muddled.llm_used) == (
        confidences[0] < confidences[1],
        confidences[1] < confidences[0],
    )
    assert server.calls == 1


@pytest.mark.parametrize(("low", "high"), [(0.9, 0.5), (0.5, 0.5), (-0.1, 0.5), (0.1, 1.5)])
def test_a_band_that_is_empty_or_outside_zero_to_one_is_refused(
    client: AsyncOpenAI, low: float, high: float
) -> None:
    with pytest.raises(ValueError, match="uncertain band"):
        CascadeBackend(ScriptedLocal({}), llm(client), low=low, high=high)
