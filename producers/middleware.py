"""ASGI (Starlette, FastAPI) and WSGI (Flask, Django) middleware that bind the request's
audit context: request id, source ip, user agent, W3C trace id and, once the application
has authenticated the caller, the actor. Every ``emit()`` made while the request is
handled picks these up (see :mod:`sealtrail.producers.context`).

The actor never comes from free-form request fields (headers, query, body). It comes
from the ``actor`` callable you pass (reading what your authentication established,
e.g. Starlette's ``scope["user"]`` or WSGI's ``REMOTE_USER``) or from your
authentication code calling :func:`sealtrail.producers.context.set_actor`.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Any

from sealtrail.producers import context
from sealtrail.producers.forwarded import TrustedProxies, split_forwarded

__all__ = ["ASGIAuditMiddleware", "WSGIAuditMiddleware", "starlette_user", "wsgi_remote_user"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_HEADER = 256
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}\Z")


def _bounded(value: str | None) -> str | None:
    return value[:MAX_HEADER] if value else None


def _request_id(supplied: str | None) -> str:
    """The caller's request id when it is a plausible token, else a fresh one."""
    if supplied and _REQUEST_ID.match(supplied):
        return supplied
    from sealtrail.producers.envelope import new_event_id

    return new_event_id()


def _trace_id(traceparent: str | None) -> str | None:
    """The request's trace id when it starts: the active OpenTelemetry span's (e.g. the
    server span of OpenTelemetry's own middleware, outside this one), else the W3C
    traceparent header's. Bound as ``request_trace_id``: a span active when an event is
    emitted wins over it (see :mod:`sealtrail.producers.context`)."""
    return context.otel_trace_id() or context.trace_id_from_traceparent(traceparent)


def _proxies(trusted_proxies: int | str | Sequence[str] | TrustedProxies | None,
             trust_forwarded: bool) -> TrustedProxies:
    """The trusted proxies of a middleware; ``trust_forwarded=True`` (the older switch)
    means one proxy in front."""
    proxies = TrustedProxies.of(trusted_proxies)
    if trust_forwarded and not proxies.enabled:
        proxies = TrustedProxies(count=1)
    return proxies


def starlette_user(scope: Mapping[str, Any]) -> str | None:
    """The authenticated user of Starlette's AuthenticationMiddleware, if any."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(getattr(user, "identity", None) or getattr(user, "display_name", "")) or None


def wsgi_remote_user(environ: Mapping[str, Any]) -> str | None:
    """REMOTE_USER as set by the server or an authentication middleware."""
    value = environ.get("REMOTE_USER")
    return str(value) if value else None


class ASGIAuditMiddleware:
    """Bind the audit context for each HTTP and WebSocket request of an ASGI app.

    ``actor(scope)`` returns the authenticated actor id or None; it is called when the
    request starts (put this middleware inside your authentication middleware).
    ``trusted_proxies`` says which reverse proxies in front of the application are yours:
    their number, or their networks (``["10.0.0.0/8"]``); the source ip is then the
    rightmost X-Forwarded-For hop that is not one of them (see
    :mod:`sealtrail.producers.forwarded`). Default: none, the peer address.
    ``trust_forwarded=True`` is the older spelling of ``trusted_proxies=1``.
    """

    def __init__(self, app: ASGIApp, *,
                 actor: Callable[[Mapping[str, Any]], str | None] = starlette_user,
                 trusted_proxies: int | str | Sequence[str] | TrustedProxies | None = None,
                 trust_forwarded: bool = False,
                 request_id_header: str = "x-request-id") -> None:
        self.app = app
        self.actor = actor
        self.proxies = _proxies(trusted_proxies, trust_forwarded)
        self.request_id_header = request_id_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers") or ():
            key = key.lower()
            # Repeated headers are joined, as a WSGI server does: X-Forwarded-For in order.
            if key in (b"traceparent", b"x-forwarded-for") and key in headers:
                headers[key] += b", " + value
            else:
                headers.setdefault(key, value)

        def header(name: bytes) -> str | None:
            raw = headers.get(name)
            return raw.decode("latin-1") if raw is not None else None

        client = scope.get("client")
        peer = client[0] if client else None
        source_ip = self.proxies.client(
            peer, split_forwarded([header(b"x-forwarded-for") or ""])
            if self.proxies.enabled else ())
        fields: dict[str, Any] = {
            "request_id": _request_id(header(self.request_id_header)),
            "source_ip": source_ip,
            "user_agent": _bounded(header(b"user-agent")),
            "request_trace_id": _trace_id(header(b"traceparent")),
        }
        actor_id = self.actor(scope)
        if actor_id:
            fields["actor_id"] = actor_id
        with context.bind(**fields):
            await self.app(scope, receive, send)


class WSGIAuditMiddleware:
    """Bind the audit context for each request of a WSGI app (Flask: ``app.wsgi_app =
    WSGIAuditMiddleware(app.wsgi_app)``). The context lives while the app handles the
    request and produces its response."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *,
                 actor: Callable[[Mapping[str, Any]], str | None] = wsgi_remote_user,
                 trusted_proxies: int | str | Sequence[str] | TrustedProxies | None = None,
                 trust_forwarded: bool = False,
                 request_id_header: str = "X-Request-Id") -> None:
        self.app = app
        self.actor = actor
        self.proxies = _proxies(trusted_proxies, trust_forwarded)
        self.request_id_key = "HTTP_" + request_id_header.upper().replace("-", "_")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        source_ip = self.proxies.client(
            environ.get("REMOTE_ADDR"),
            split_forwarded([environ.get("HTTP_X_FORWARDED_FOR") or ""])
            if self.proxies.enabled else ())
        fields: dict[str, Any] = {
            "request_id": _request_id(environ.get(self.request_id_key)),
            "source_ip": source_ip,
            "user_agent": _bounded(environ.get("HTTP_USER_AGENT")),
            "request_trace_id": _trace_id(environ.get("HTTP_TRACEPARENT")),
        }
        actor_id = self.actor(environ)
        if actor_id:
            fields["actor_id"] = actor_id
        # The request runs in a context of its own, kept for the lazily produced body too.
        ctx = contextvars.copy_context()
        result = ctx.run(self._call, fields, environ, start_response)
        return _InContext(result, ctx)

    def _call(self, fields: dict[str, Any], environ: dict[str, Any],
              start_response: Callable[..., Any]) -> Iterable[bytes]:
        context.bind_now(**fields)
        return self.app(environ, start_response)


class _InContext:
    """A WSGI response iterable whose iteration and close run in the request's context."""

    def __init__(self, result: Iterable[bytes], ctx: contextvars.Context) -> None:
        self._result = result
        self._it = iter(result)
        self._ctx = ctx

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                yield self._ctx.run(next, self._it)
            except StopIteration:
                return

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            self._ctx.run(close)
