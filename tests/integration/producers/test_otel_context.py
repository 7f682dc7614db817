"""Trace context with the real OpenTelemetry SDK: the trace id an event carries outside a
request, inside the ASGI (FastAPI) and WSGI (Flask) middleware, from a W3C traceparent
header, and which source wins. As in test_producer_instrument, the broker is unreachable
on purpose: events stay in the client's spool, where the tests read them back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask
from helpers.producer_checks import spooled
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sealtrail.producers import ASGIAuditMiddleware, AuditClient, WSGIAuditMiddleware, bind, context
from sealtrail.runtime import dev

HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{HEADER_TRACE}-b7ad6b7169203331-01"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def client(stack: dev.Stack, tmp_path: Path) -> Iterator[AuditClient]:
    c = AuditClient(service="svc", bootstrap=f"127.0.0.1:{dev.free_port()}",
                    registry_url=stack.registry, topic="otel-test",
                    spool_dir=tmp_path / "spool")
    yield c
    c.close(timeout=0)


@pytest.fixture
def tracer() -> trace.Tracer:
    """A tracer of a real SDK TracerProvider (not the global one: tests stay independent).
    The active span lives in the contextvars context whatever the provider."""
    return TracerProvider().get_tracer("sealtrail-tests")


def trace_hex(span: trace.Span) -> str:
    return f"{span.get_span_context().trace_id:032x}"


def emit(client: AuditClient, resource_id: str, **kw: Any) -> None:
    client.emit("api.call", "call", actor_id="u-1", resource_type="endpoint",
                resource_id=resource_id, **kw)


def traces(client: AuditClient) -> dict[str, str | None]:
    return {e["resource"]["id"]: e["origin"]["trace_id"] for e in spooled(client)}


def test_opentelemetry_is_installed_so_this_path_runs() -> None:
    assert context.HAS_OTEL


def test_emit_outside_a_request_takes_the_active_spans_trace_id(
        client: AuditClient, tracer: trace.Tracer) -> None:
    """(a) An active span gives its trace id (32 lower-case hex), a child span the same;
    (e) with no span active there is no trace id at all."""
    with tracer.start_as_current_span("job") as span:
        emit(client, "in-span")
        with tracer.start_as_current_span("step"):
            emit(client, "in-child")
    emit(client, "after")
    got = traces(client)
    assert got["in-span"] == got["in-child"] == trace_hex(span)
    assert HEX32.match(got["in-span"] or "")
    assert got["after"] is None


def test_explicit_trace_id_wins_over_the_span_and_the_bound_context(
        client: AuditClient, tracer: trace.Tracer) -> None:
    """(d) emit(trace_id=...) beats everything; a trace id bound on purpose beats the
    active span."""
    with tracer.start_as_current_span("job") as span:
        emit(client, "argument", trace_id="ab" * 16)
        with bind(trace_id="cd" * 16):
            emit(client, "bound")
            emit(client, "both", trace_id="ef" * 16)
        emit(client, "span")
    assert traces(client) == {"argument": "ab" * 16, "bound": "cd" * 16, "both": "ef" * 16,
                              "span": trace_hex(span)}


def test_no_span_and_no_header_means_no_trace_id(client: AuditClient) -> None:
    """(e) Inside the middleware too: nothing invents a trace id, and the invalid span
    OpenTelemetry reports when none is active is not taken for one."""
    assert not trace.get_current_span().get_span_context().is_valid
    app = FastAPI()
    app.add_middleware(ASGIAuditMiddleware)

    @app.get("/x")
    async def handler() -> dict[str, str]:
        emit(client, "asgi")
        return {}

    assert TestClient(app).get("/x").status_code == 200
    assert traces(client) == {"asgi": None}


def _fastapi(client: AuditClient, tracer: trace.Tracer, seen: dict[str, str],
             *, outer_span: bool) -> FastAPI:
    app = FastAPI()
    app.add_middleware(ASGIAuditMiddleware)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        seen["plain"] = trace_hex(trace.get_current_span())
        emit(client, "plain")
        return {}

    @app.get("/span")
    async def in_span() -> dict[str, str]:
        with tracer.start_as_current_span("handler") as span:  # a new trace unless a span
            seen["span"] = trace_hex(span)                     # or context is active
            emit(client, "span")
        return {}

    if outer_span:  # what OpenTelemetry's ASGI middleware does: a server span around it all
        inner = app.build_middleware_stack()

        async def traced(scope: Any, receive: Any, send: Any) -> None:
            parent = TraceContextTextMapPropagator().extract(
                {k.decode(): v.decode() for k, v in scope.get("headers", [])})
            with tracer.start_as_current_span("server", context=parent):
                await inner(scope, receive, send)

        app.build_middleware_stack = lambda: traced  # type: ignore[method-assign]
    return app


def test_asgi_events_carry_the_trace_of_the_span_around_the_handler(
        client: AuditClient, tracer: trace.Tracer) -> None:
    """(b) FastAPI: a span started in the handler, or a server span started outside the
    middleware (as OpenTelemetry's instrumentation does), gives the events its trace id."""
    seen: dict[str, str] = {}
    http = TestClient(_fastapi(client, tracer, seen, outer_span=False))
    assert http.get("/span").status_code == 200
    assert traces(client)["span"] == seen["span"] and HEX32.match(seen["span"])
    outer = TestClient(_fastapi(client, tracer, seen, outer_span=True))
    assert outer.get("/plain").status_code == 200
    assert traces(client)["plain"] == seen["plain"] != "0" * 32
    assert seen["plain"] != seen["span"]


def test_asgi_traceparent_header_without_a_span_is_the_trace(
        client: AuditClient, tracer: trace.Tracer) -> None:
    """(c) No span active: the W3C traceparent header gives the trace id. A span active
    when the event is emitted wins over the header (the trace the tracing backend holds):
    the same id when OpenTelemetry continued the caller's trace, its own when it did not."""
    seen: dict[str, str] = {}
    http = TestClient(_fastapi(client, tracer, seen, outer_span=False))
    assert http.get("/plain", headers={"traceparent": TRACEPARENT}).status_code == 200
    assert seen["plain"] == "0" * 32  # really no span active in the handler
    assert http.get("/span", headers={"traceparent": TRACEPARENT}).status_code == 200
    got = traces(client)
    assert got["plain"] == HEADER_TRACE
    assert got["span"] == seen["span"] != HEADER_TRACE
    traced = TestClient(_fastapi(client, tracer, seen, outer_span=True))
    assert traced.get("/span", headers={"traceparent": TRACEPARENT}).status_code == 200
    assert seen["span"] == HEADER_TRACE and traces(client)["span"] == HEADER_TRACE


@pytest.mark.parametrize("header", [
    TRACEPARENT.upper(),                                  # hex must be lower case
    f"ff-{HEADER_TRACE}-b7ad6b7169203331-01",             # version ff is invalid
    f"00-{HEADER_TRACE}-0000000000000000-01",             # all-zero parent id
    f"00-{'0' * 32}-b7ad6b7169203331-01",                 # all-zero trace id
    f"00-{HEADER_TRACE}-b7ad6b7169203331-01-extra",       # version 00 has 4 fields
    f"{TRACEPARENT},{TRACEPARENT}",                       # two headers, comma-joined
    f"00-{HEADER_TRACE}-b7ad6b7169203331",                # no flags
    f"00-{HEADER_TRACE[:-1]}g-b7ad6b7169203331-01",       # not hex
])
def test_a_traceparent_a_w3c_receiver_must_ignore_gives_no_trace_id(header: str) -> None:
    """(c) The rules of W3C Trace Context for a receiver, as OpenTelemetry's propagator
    applies them: what it would ignore is ignored here too."""
    assert context.trace_id_from_traceparent(header) is None
    extracted = trace.get_current_span(TraceContextTextMapPropagator().extract(
        {"traceparent": header})).get_span_context()
    assert not extracted.is_valid


def test_a_later_traceparent_version_with_more_fields_is_read() -> None:
    """A version after 00 may append fields; its first four are read (W3C)."""
    header = f"01-{HEADER_TRACE}-b7ad6b7169203331-01-future"
    assert context.trace_id_from_traceparent(f" {header}\t") == HEADER_TRACE
    assert context.trace_id_from_traceparent(TRACEPARENT) == HEADER_TRACE


def test_asgi_duplicate_traceparent_headers_are_ignored(client: AuditClient) -> None:
    """Two traceparent headers: the request has no usable W3C trace context."""
    app = FastAPI()
    app.add_middleware(ASGIAuditMiddleware)

    @app.get("/x")
    async def handler() -> dict[str, str]:
        emit(client, "dup")
        return {}

    other = f"00-{'1' * 32}-b7ad6b7169203331-01"
    assert TestClient(app).get("/x", headers=[("traceparent", TRACEPARENT),
                                              ("traceparent", other)]).status_code == 200
    assert traces(client) == {"dup": None}


def _flask(client: AuditClient, tracer: trace.Tracer, seen: dict[str, str],
           *, outer_span: bool) -> Flask:
    app = Flask(__name__)

    @app.get("/plain")
    def plain() -> str:
        seen["plain"] = trace_hex(trace.get_current_span())
        emit(client, "plain")
        return "ok"

    @app.get("/span")
    def in_span() -> str:
        with tracer.start_as_current_span("view") as span:
            seen["span"] = trace_hex(span)
            emit(client, "span")
        return "ok"

    app.wsgi_app = WSGIAuditMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    if outer_span:  # OpenTelemetry's WSGI middleware, outside ours
        audited = app.wsgi_app

        def traced(environ: dict[str, Any], start_response: Any) -> Any:
            with tracer.start_as_current_span("server"):
                return list(audited(environ, start_response))

        app.wsgi_app = traced  # type: ignore[method-assign]
    return app


def test_wsgi_events_carry_the_span_or_the_traceparent_header(
        client: AuditClient, tracer: trace.Tracer) -> None:
    """(b) and (c) with Flask: a span in the view or around the middleware gives the trace
    id; with no span, the traceparent header does; a span beats the header."""
    seen: dict[str, str] = {}
    http = _flask(client, tracer, seen, outer_span=False).test_client()
    assert http.get("/span").status_code == 200
    first_span = seen["span"]
    assert http.get("/plain", headers={"traceparent": TRACEPARENT}).status_code == 200
    assert seen["plain"] == "0" * 32
    got = traces(client)
    assert got["span"] == first_span and HEX32.match(first_span)
    assert got["plain"] == HEADER_TRACE
    assert http.get("/span", headers={"traceparent": TRACEPARENT}).status_code == 200
    assert traces(client)["span"] == seen["span"] != HEADER_TRACE
    outer = _flask(client, tracer, seen, outer_span=True).test_client()
    assert outer.get("/plain", headers={"traceparent": TRACEPARENT}).status_code == 200
    assert traces(client)["plain"] == seen["plain"] not in (HEADER_TRACE, "0" * 32)
