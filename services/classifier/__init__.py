"""triageflow classifier: inbound tickets in, `ticket.classified` events out.

    domain.py       classify(tickets, backend, ...) -> events; unclassified(...) when it fails
    signals.py      language, sentiment, urgency, PII (+ redact_pii), prompt injection
    backends/       the Backend protocol (base.py) and the offline TF-IDF model (local.py)
    taxonomy.py     the categories (YAML)
    evaluation.py   accuracy, calibration (ECE) and out-of-scope rate on labelled data
    data/           shipped taxonomy, examples and demo tickets

Nothing here imports Kafka: app.py and handlers.py wire the domain to the broker.
"""
