"""Request context bound through contextvars: who is authenticated, which request,
from where, which trace. ``AuditClient.emit`` fills these fields from the current
context when the call does not give them.

The trace id of an event is, first match wins: the ``trace_id`` argument of ``emit()``;
a ``trace_id`` bound with :func:`bind`; the OpenTelemetry span active when the event is
emitted (when OpenTelemetry is installed); the trace id the middleware found when the
request started (the span active then, else the request's W3C ``traceparent`` header).
So an event links to the trace your tracing backend holds, and a service without
OpenTelemetry still records its callers' W3C trace context.

asyncio tasks inherit the context by themselves; threads do not, so hand work to a
thread pool with :func:`submit` (or wrap a callable with :func:`propagate`) when the
audit context must follow it.
"""

from __future__ import annotations

import contextvars
import dataclasses
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["RequestContext", "bind", "bind_now", "current", "propagate", "set_actor", "submit",
           "trace_id_from_traceparent"]

T = TypeVar("T")

# W3C Trace Context, level 1: version-traceid-parentid-flags, lowercase hex; a version
# after 00 may add fields after a dash, version 00 may not.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}"
    r"(?P<rest>-.*)?")


@dataclass(frozen=True)
class RequestContext:
    """What the application knows about the request being handled."""

    actor_id: str | None = None
    """The authenticated actor, as the application's authentication established it."""
    actor_type: str = "user"
    principal: str | None = None
    actor_name: str | None = None
    """The actor's display name (personal data: the default policy pseudonymises it)."""
    actor_email: str | None = None
    """The actor's e-mail address (personal data: the default policy pseudonymises it)."""
    request_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    trace_id: str | None = None
    """A trace id bound on purpose (``bind(trace_id=...)``): wins over OpenTelemetry."""
    tenant: str | None = None
    session_id: str | None = None
    """Opaque id of the session (never a bearer token or cookie value)."""
    request_trace_id: str | None = None
    """The request's trace id as the middleware found it when the request started (the
    active OpenTelemetry span, else the W3C ``traceparent`` header); used when no
    ``trace_id`` is bound and no OpenTelemetry span is active at emit time."""


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "sealtrail_request_context", default=None)


def current() -> RequestContext | None:
    """The request context bound in this task or thread, if any, with ``trace_id``
    resolved as the module says (bound, else active OpenTelemetry span, else the
    request's)."""
    ctx = _current.get()
    if ctx is None or ctx.trace_id is not None or ctx.request_trace_id is None:
        return ctx
    return dataclasses.replace(ctx, trace_id=otel_trace_id() or ctx.request_trace_id)


@contextmanager
def bind(**fields: Any) -> Iterator[RequestContext]:
    """Bind (or extend) the request context for the body of the ``with`` block."""
    ctx = dataclasses.replace(_current.get() or RequestContext(), **fields)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def bind_now(**fields: Any) -> None:
    """Bind (or extend) the request context in the current context until it ends (for
    code that runs the request in a context of its own, like the WSGI middleware)."""
    _current.set(dataclasses.replace(_current.get() or RequestContext(), **fields))


def set_actor(actor_id: str, *, actor_type: str = "user", principal: str | None = None,
              display_name: str | None = None, email: str | None = None) -> None:
    """Record the authenticated actor in the current context (call it from your
    authentication code once it has verified who the caller is)."""
    ctx = _current.get() or RequestContext()
    _current.set(dataclasses.replace(ctx, actor_id=actor_id, actor_type=actor_type,
                                     principal=principal, actor_name=display_name,
                                     actor_email=email))


def propagate(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the current context, to run on another thread."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    return run


def submit(executor: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """``executor.submit`` that keeps the audit context (threads do not inherit it)."""
    return executor.submit(propagate(fn), *args, **kwargs)


def trace_id_from_traceparent(header: str | None) -> str | None:
    """The 32-hex trace id of a W3C ``traceparent`` header; None when the header is one a
    W3C Trace Context receiver must ignore: malformed, upper-case hex, version ff, an
    all-zero trace or parent id, or version 00 with anything after the flags (which is
    also what two ``traceparent`` headers joined by a comma look like)."""
    if not header or len(header) > 512:
        return None
    m = _TRACEPARENT.fullmatch(header.strip(" \t"))
    if (m is None or m["version"] == "ff" or (m["version"] == "00" and m["rest"])
            or m["trace"] == "0" * 32 or m["parent"] == "0" * 16):
        return None
    return m["trace"]


_otel_trace: Any
try:  # optional: OpenTelemetry's active span gives the trace id when present
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None

HAS_OTEL = _otel_trace is not None


def otel_trace_id() -> str | None:
    """The trace id of the active OpenTelemetry span, when OpenTelemetry is installed."""
    if _otel_trace is None:
        return None
    span_context = _otel_trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}"
