"""The classifier-service benchmark streams a dataset's test texts as valid tickets."""

from __future__ import annotations

from pathlib import Path

from bench.classifier_service import dataset_templates
from bench.pipeline import make_tickets
from shared.contracts import TicketReceived


def test_each_test_text_of_a_dataset_becomes_one_valid_ticket_with_that_body(
    tmp_path: Path,
) -> None:
    texts = ["my card has not arrived", "How do I top up, please?", "refund"]
    rows = "\n".join(f'"{text}",label_{i}' for i, text in enumerate(texts))
    (tmp_path / "test.csv").write_text(f"text,label\n{rows}\n")

    tickets = make_tickets(dataset_templates(tmp_path), "T", len(texts))

    received = [TicketReceived.model_validate_json(value) for _, value in tickets]
    assert [ticket.body for ticket in received] == texts
    assert all(ticket.subject in ("", None) for ticket in received)
    assert [ticket.ticket_id for ticket in received] == [ticket_id for ticket_id, _ in tickets]
