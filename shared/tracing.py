"""Trace context through Kafka headers (W3C `traceparent`), one trace per ticket.

Every event of a ticket carries its `trace_id`; the spans each service records for that
ticket use it as their OpenTelemetry trace id, and each published record carries a
`traceparent` header naming the span that produced it. So one ticket's spans join up
across the classifier, policy, router and audit services in any OpenTelemetry backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    format_span_id,
    format_trace_id,
)

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

tracer = trace.get_tracer("triageflow")


def tracing_enabled() -> bool:
    """Return whether a tracer provider is installed (spans are recorded somewhere)."""
    # Without one (exporter "none") every span is a no-op: skipping them saves their
    # context bookkeeping per message, and `untraced_traceparent` gives the same header.
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)


def _parent_span_id(trace_id: str, traceparent: str | None) -> int | None:
    """Return the span id a ticket's spans hang from: the producer's span, or its root."""
    match = _TRACEPARENT.match(traceparent or "")
    if match and match.group(1) == trace_id:
        return int(match.group(2), 16)
    if _HEX32.match(trace_id):
        return int(trace_id[:16], 16) or 1  # a stable root span id for the ticket
    return None


def _parent(trace_id: str, traceparent: str | None) -> Context | None:
    """Return the remote parent context for a ticket: the producer's span, or its trace."""
    span_id = _parent_span_id(trace_id, traceparent)
    if span_id is None:
        return None
    context = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


@contextmanager
def ticket_span(
    name: str, *, trace_id: str, traceparent: str | None = None, **attributes: str
) -> Iterator[Span]:
    """Record a span of one ticket's journey, in the ticket's own trace."""
    with tracer.start_as_current_span(
        name,
        context=_parent(trace_id, traceparent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span


def traceparent_of(span: Span, trace_id: str) -> str | None:
    """Return the `traceparent` header value naming `span` (None if not traceable)."""
    context = span.get_span_context()
    if context.is_valid:
        return f"00-{format_trace_id(context.trace_id)}-{format_span_id(context.span_id)}-01"
    if _HEX32.match(trace_id):
        return f"00-{trace_id}-{trace_id[:16]}-01"
    return None


def untraced_traceparent(trace_id: str, traceparent: str | None) -> str | None:
    """Return the `traceparent` a no-op span under the ticket's parent would give."""
    # A no-op tracer's span is its parent's context: the producer's span when the record
    # came with one of this trace, else the ticket's root span (see `_parent`).
    span_id = _parent_span_id(trace_id, traceparent)
    if span_id is not None and int(trace_id, 16):
        return f"00-{trace_id}-{span_id:016x}-01"
    if _HEX32.match(trace_id):
        return f"00-{trace_id}-{trace_id[:16]}-01"
    return None


def configure_tracing(*, service: str, exporter: str, endpoint: str | None = None) -> None:
    """Install the process's tracer provider: spans exported over OTLP/HTTP or to stderr."""
    if exporter == "none":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    provider = TracerProvider(resource=Resource.create({"service.name": f"triageflow-{service}"}))
    sink: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        sink = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    else:
        sink = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(sink))
    trace.set_tracer_provider(provider)
