"""Continuous improvement: feedback → labelled examples → new model versions, shadow
comparison, the promotion gate and the drift guard. Pure modules apart from `registry`
(files) — the CLI and the services do the I/O.

    dataset    judgements (base examples, overrides, confirmations) → a versioned dataset
    learner    train a candidate on a dataset; evaluate it against the live model
    registry   versioned model artefacts with their manifest, on a shared directory
    compare    live vs shadow decisions on the same tickets; the promotion gate
    drift      the drift guard: which categories to cap at assist
"""
