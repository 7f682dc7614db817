"""The AuditEvent envelope on the emitting side: ids, building from emit()'s arguments and
the bound request context, checking and encoding."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sealtrail.core.avro import AvroCodec
from sealtrail.core.envelope import EVENT_TYPE, MAX_ID, MAX_TIME_US, MIN_TIME_US, check_event
from sealtrail.errors import EventValidationError
from sealtrail.producers import context as _context

__all__ = ["CLASSIFICATIONS", "DECISIONS", "OUTCOMES", "build_event", "encode_event",
           "new_event_id", "normalise_enums"]

OUTCOMES = ("SUCCESS", "FAILURE", "DENIED", "ERROR", "UNKNOWN")
DECISIONS = ("ALLOW", "DENY", "NOT_EVALUATED")
CLASSIFICATIONS = ("PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED", "PII", "PHI", "PCI")
_SYMBOLS = frozenset((*OUTCOMES, *DECISIONS, *CLASSIFICATIONS))


def _symbol(value: Any) -> Any:
    """An enum value as the schema spells it: ``"success"`` -> ``"SUCCESS"``. Anything
    else is left for validation to refuse (naming the field)."""
    if value in _SYMBOLS or type(value) is not str:
        return value
    upper = value.strip().upper()
    return upper if upper in _SYMBOLS else value


def normalise_enums(event: dict[str, Any]) -> None:
    """Outcome, classification and the authorization decision in any case, normalised to
    the schema's symbols in place (emit_event's complete dicts)."""
    for name in ("outcome", "classification"):
        if name in event:
            event[name] = _symbol(event[name])
    auth = event.get("authorization")
    if isinstance(auth, dict) and "decision" in auth:
        auth["decision"] = _symbol(auth["decision"])

_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_event_id() -> str:
    """A random (version 4) UUID. Drawn from a generator seeded from os.urandom and reseeded
    in every forked child: no syscall per event, no shared ids across processes."""
    h = f"{_ids.getrandbits(128):032x}"  # version nibble 4, variant bits 10 set below
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def build_event(
    origin: Mapping[str, Any],
    event_type: str, action: str, resource_type: str, resource_id: str,
    actor_id: str | None, actor_type: str | None, principal: str | None,
    on_behalf_of: str | None, session_id: str | None,
    outcome: str, reason: str | None,
    source_ip: str | None, user_agent: str | None, request_id: str | None,
    trace_id: str | None, tenant: str | None,
    classification: str, decision: str | None, policy: str | None,
    permissions: Sequence[str], attributes: Mapping[str, str] | None,
    event_id: str | None, occurred_at: int | None,
    actor_name: str | None = None, actor_email: str | None = None,
    instance: str | None = None, service_version: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """The event dict for :meth:`AuditClient.emit`'s arguments, fields not given taken from
    the bound request context, and whether it already passed the envelope checks (when
    False, :func:`check_event` must run). Raises EventValidationError without an actor.
    ``instance`` and ``service_version`` replace the client's for this event; outcome,
    decision and classification are accepted in any case.

    emit() passes the arguments by position: 28 keyword arguments cost about 1 us a call."""
    ctx = _context.current()
    if ctx is not None:
        if actor_id is None:
            actor_id, actor_type, principal, actor_name, actor_email = _bound_actor(
                ctx, actor_type, principal, actor_name, actor_email)
        source_ip, user_agent, request_id, trace_id, tenant, session_id = _bound_request(
            ctx, source_ip, user_agent, request_id, trace_id, tenant, session_id)
    if trace_id is None and _context.HAS_OTEL:
        trace_id = _context.otel_trace_id()
    if actor_id is None:
        raise EventValidationError(
            "actor.id", "is required: pass actor_id=... or bind the authenticated actor "
            "(sealtrail.producers.context.set_actor / the middleware)")
    if occurred_at is None:
        occurred_at = time.time_ns() // 1000
    if outcome not in _SYMBOLS or classification not in _SYMBOLS:
        outcome, classification = _symbol(outcome), _symbol(classification)
    if decision is not None and decision not in _SYMBOLS:
        decision = _symbol(decision)
    if instance is not None or service_version is not None:
        origin = {**origin, "instance": instance or origin["instance"],
                  "service_version": service_version or origin["service_version"]}
    event: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "event_type": event_type,
        "action": action,
        "occurred_at": occurred_at,
        "actor": {"id": actor_id, "type": actor_type or "user", "principal": principal,
                  "on_behalf_of": on_behalf_of, "display_name": actor_name,
                  "email": actor_email},
        "origin": {
            **origin,
            "source_ip": source_ip,
            "user_agent": user_agent,
            "request_id": request_id,
            "trace_id": trace_id,
        },
        "resource": {"type": resource_type, "id": resource_id},
        "outcome": outcome,
        "reason": reason,
        "authorization": None if decision is None else {
            "decision": decision, "policy": policy, "permissions": list(permissions),
        },
        "tenant": tenant,
        "classification": classification,
        "attributes": dict(attributes or {}),
        "session_id": session_id,
    }
    return event, _passes_envelope(event)


def _bound_actor(ctx: Any, actor_type: str | None, principal: str | None,
                 actor_name: str | None, actor_email: str | None
                 ) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """The actor bound to the request context (when emit() names none), fields given to
    emit() taking precedence: id, type, principal, name, email."""
    return (ctx.actor_id, actor_type or ctx.actor_type, principal or ctx.principal,
            actor_name or ctx.actor_name, actor_email or ctx.actor_email)


def _bound_request(ctx: Any, source_ip: str | None, user_agent: str | None,
                   request_id: str | None, trace_id: str | None, tenant: str | None,
                   session_id: str | None) -> tuple[str | None, ...]:
    """The request fields emit() did not give, from the bound request context: source ip,
    user agent, request id, trace id, tenant, session id."""
    return (source_ip or ctx.source_ip, user_agent or ctx.user_agent,
            request_id or ctx.request_id, trace_id or ctx.trace_id, tenant or ctx.tenant,
            session_id or ctx.session_id)


def _passes_envelope(event: dict[str, Any]) -> bool:
    """The envelope rules of check_event, inlined for the common case: True when the event
    surely passes them; on any doubt check_event runs and names the field."""
    event_type, occurred_at = event["event_type"], event["occurred_at"]
    return bool(
        _texts(event["event_id"], event["action"], event["actor"]["id"],
               event["actor"]["type"], event["resource"]["type"], event["resource"]["id"])
        and type(event_type) is str
        and (event_type in _good_types or _good_type(event_type))
        and type(occurred_at) is int and MIN_TIME_US <= occurred_at <= MAX_TIME_US
    )


_good_types: set[str] = set()
"""Event types that matched EVENT_TYPE (a service uses a few; bounded all the same)."""


def _good_type(event_type: str) -> bool:
    if EVENT_TYPE.fullmatch(event_type) is None:
        return False
    if len(_good_types) < 4096:
        _good_types.add(event_type)
    return True


def encode_event(codec: AvroCodec, event: dict[str, Any], *, strict: bool, checked: bool,
                 max_bytes: int, fast: Callable[[dict[str, Any]], bytes] | None = None
                 ) -> bytes:
    """The Avro body of ``event``; raises EventValidationError naming the field.

    ``strict`` validates against the whole schema (unknown keys included); ``checked``
    skips the envelope checks already done by :func:`build_event`. ``fast`` is the
    schema's :func:`compile_encoder` encoder: tried first; on any doubt fastavro encodes
    (and its errors name the field), so the bytes and the errors are fastavro's."""
    if strict:
        codec.validate(event)
    if not checked:
        check_event(event)
    body: bytes | None = None
    if fast is not None:
        try:
            body = fast(event)
        except Exception:  # anything unexpected: fastavro decides, as without ``fast``
            body = None
    if body is None:
        try:
            body = codec.encode(event)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            codec.validate(event)  # names the field
            raise EventValidationError("(event)", f"does not encode: {exc}") from None
    if len(body) > max_bytes:
        raise EventValidationError(
            "(event)", f"encodes to {len(body)} bytes, more than the "
            f"{max_bytes} the pipeline accepts; shorten attributes")
    return body


def _texts(*values: object) -> bool:
    """Each value is a non-blank string of at most MAX_ID characters."""
    for value in values:
        if type(value) is not str or not 0 < len(value) <= MAX_ID or value.isspace():
            return False
    return True
