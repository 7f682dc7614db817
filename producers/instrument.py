"""Record one action and how it ended: a context manager and decorator, and a builder.

>>> with audited(client, "invoice.update", "update", resource_type="invoice",
...              resource_id="inv-9"):
...     update_invoice()

The event is emitted when the block ends: outcome SUCCESS, or for an exception FAILURE
(ERROR for exceptions you did not list as failures, DENIED for PermissionError) with the
exception's class and message as the reason. The exception always propagates.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from sealtrail.errors import SealtrailError

if TYPE_CHECKING:
    from sealtrail.producers.client import AuditClient

__all__ = ["EventBuilder", "audited"]

log = logging.getLogger("sealtrail.producer")

F = TypeVar("F", bound=Callable[..., Any])
MAX_REASON = 500


def reason_of(exc: BaseException) -> str:
    """``ClassName: message`` of an exception, cut to a bounded length."""
    text = f"{type(exc).__qualname__}: {exc}" if str(exc) else type(exc).__qualname__
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


class audited:
    """Context manager and decorator: emit one event for the action when it ends.

    ``failures`` lists exception types that mean "the action failed" (outcome FAILURE);
    PermissionError means DENIED; any other exception means ERROR. Inside the block,
    ``deny(reason)`` or ``fail(reason)`` set the outcome without raising. For decorators,
    ``resource_id`` may be a callable that receives the function's arguments.
    """

    def __init__(
        self,
        client: AuditClient | Callable[[], AuditClient],
        event_type: str,
        action: str,
        *,
        resource_type: str,
        resource_id: str | Callable[..., str] | None = None,
        failures: tuple[type[BaseException], ...] = (),
        **fields: Any,
    ) -> None:
        self._client = client
        self.event_type = event_type
        self.action = action
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.failures = failures
        self.fields = fields
        self.outcome: str | None = None
        self.reason: str | None = None
        self.event_id: str | None = None
        self.attributes: dict[str, str] = dict(fields.pop("attributes", None) or {})

    @property
    def client(self) -> AuditClient:
        from sealtrail.producers.client import AuditClient

        return self._client if isinstance(self._client, AuditClient) else self._client()

    def deny(self, reason: str) -> None:
        """Record the action as DENIED when the block ends (without raising)."""
        self.outcome, self.reason = "DENIED", reason

    def fail(self, reason: str) -> None:
        """Record the action as FAILURE when the block ends (without raising)."""
        self.outcome, self.reason = "FAILURE", reason

    def _outcome(self, exc: BaseException | None) -> tuple[str, str | None]:
        if self.outcome is not None:  # set by deny() / fail(): the code said how it ended
            return self.outcome, self.reason
        if exc is None:
            return "SUCCESS", None
        if isinstance(exc, PermissionError):
            return "DENIED", reason_of(exc)
        if self.failures and isinstance(exc, self.failures):
            return "FAILURE", reason_of(exc)
        return "ERROR", reason_of(exc)

    def _emit(self, exc: BaseException | None, resource_id: str | None) -> None:
        outcome, reason = self._outcome(exc)
        if resource_id is None:
            raise SealtrailError(f"audited({self.event_type!r}) needs resource_id=")
        try:
            self.event_id = self.client.emit(
                self.event_type, self.action, resource_type=self.resource_type,
                resource_id=resource_id, outcome=outcome, reason=reason,
                attributes=self.attributes, **self.fields)
        except Exception as audit_exc:
            if exc is None:
                raise  # nothing else is propagating: the caller must know (fail closed)
            # Never mask the action's own exception; say that auditing it failed too.
            log.error("could not audit %s after %s: %s", self.event_type,
                      type(exc).__name__, audit_exc)
            exc.add_note(f"sealtrail: the audit event for {self.event_type} was not "
                         f"recorded: {audit_exc}")

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> audited:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        rid = self.resource_id if not callable(self.resource_id) else None
        self._emit(exc, rid)  # returns None: the exception, if any, propagates

    async def __aenter__(self) -> audited:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator ---------------------------------------------------------------------

    def _copy(self) -> audited:
        return audited(self._client, self.event_type, self.action,
                       resource_type=self.resource_type, resource_id=self.resource_id,
                       failures=self.failures, attributes=dict(self.attributes),
                       **self.fields)

    def _resource_id(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
        rid = self.resource_id
        return str(rid(*args, **kwargs)) if callable(rid) else rid

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                record = self._copy()
                rid = record._resource_id(args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    record._emit(exc, rid)
                    raise
                record._emit(None, rid)
                return result
            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            record = self._copy()
            rid = record._resource_id(args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                record._emit(exc, rid)
                raise
            record._emit(None, rid)
            return result
        return run  # type: ignore[return-value]


class EventBuilder:
    """Build an event step by step, then ``emit()`` it through the client.

    >>> (EventBuilder(client, "payment.refund", "refund")
    ...     .actor("u-7", principal="alice@example.com")
    ...     .resource("payment", "pay-1").outcome("SUCCESS").attribute("amount", "12.00")
    ...     .emit())
    """

    def __init__(self, client: AuditClient, event_type: str, action: str) -> None:
        self._client = client
        self._event_type = event_type
        self._action = action
        self._fields: dict[str, Any] = {}
        self._attributes: dict[str, str] = {}

    def actor(self, actor_id: str, *, actor_type: str = "user", principal: str | None = None,
              display_name: str | None = None, email: str | None = None) -> EventBuilder:
        self._fields.update(actor_id=actor_id, actor_type=actor_type, principal=principal,
                            actor_name=display_name, actor_email=email)
        return self

    def resource(self, resource_type: str, resource_id: str) -> EventBuilder:
        self._fields.update(resource_type=resource_type, resource_id=resource_id)
        return self

    def outcome(self, outcome: str, reason: str | None = None) -> EventBuilder:
        self._fields.update(outcome=outcome, reason=reason)
        return self

    def authorization(self, decision: str, *, policy: str | None = None,
                      permissions: tuple[str, ...] = ()) -> EventBuilder:
        self._fields.update(decision=decision, policy=policy, permissions=permissions)
        return self

    def attribute(self, key: str, value: str) -> EventBuilder:
        self._attributes[key] = value
        return self

    def set(self, **fields: Any) -> EventBuilder:
        """Any other keyword of :meth:`AuditClient.emit` (tenant, classification, ...)."""
        self._fields.update(fields)
        return self

    def emit(self) -> str:
        missing = [f for f in ("resource_type", "resource_id") if f not in self._fields]
        if missing:
            from sealtrail.errors import EventValidationError

            raise EventValidationError(missing[0].replace("_", "."),
                                       "is required: call .resource(type, id)")
        return self._client.emit(self._event_type, self._action,
                                 attributes=self._attributes, **self._fields)
