"""The asyncio face of the client.

``emit()`` never waits on the network, so the async client calls it directly on the
event loop (bounded work, microseconds). Blocking steps run in a worker thread: start-up
(one registry request), ``flush()``, ``close()``, and ``emit()`` itself when the
full-spool policy is "block" (it may wait for room up to its bound).
"""

from __future__ import annotations

import asyncio
import functools
from types import TracebackType
from typing import Any

from sealtrail.config import Settings
from sealtrail.producers.client import AuditClient

__all__ = ["AsyncAuditClient"]


class AsyncAuditClient:
    """``async with await AsyncAuditClient.create(service=..., ...) as audit:
    await audit.emit(...)``"""

    def __init__(self, client: AuditClient) -> None:
        self.client = client
        self._blocking = client.full_policy == "block"

    @classmethod
    async def create(cls, **kwargs: Any) -> AsyncAuditClient:
        """Build an AuditClient (same keywords) off the event loop."""
        return cls(await asyncio.to_thread(functools.partial(AuditClient, **kwargs)))

    @classmethod
    async def from_settings(cls, settings: Settings, *, service: str,
                            **kwargs: Any) -> AsyncAuditClient:
        return cls(await asyncio.to_thread(
            functools.partial(AuditClient.from_settings, settings, service=service, **kwargs)))

    async def emit(self, event_type: str, action: str, **fields: Any) -> str:
        """:meth:`AuditClient.emit`; the request context of the current task applies."""
        if self._blocking:
            # to_thread copies the contextvars, so the task's request context goes along.
            return await asyncio.to_thread(self.client.emit, event_type, action, **fields)
        return self.client.emit(event_type, action, **fields)

    async def emit_event(self, event: dict[str, Any]) -> str:
        if self._blocking:
            return await asyncio.to_thread(self.client.emit_event, event)
        return self.client.emit_event(event)

    async def flush(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self.client.flush, timeout)

    async def aclose(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.client.close, timeout)

    async def __aenter__(self) -> AsyncAuditClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
