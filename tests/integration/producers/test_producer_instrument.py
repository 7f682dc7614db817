"""Instrumentation shapes of the producer: the action recorder (context manager and
decorator), the envelope builder, contextvars request context, ASGI and WSGI middleware,
the logging bridge and the asyncio client. The broker address is unreachable on purpose:
events stay in the spool, where the tests read them back."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers.producer_checks import spooled

from sealtrail import schemas
from sealtrail.config import Settings
from sealtrail.core.avro import AvroCodec
from sealtrail.errors import ConfigError, EventValidationError
from sealtrail.producers import (
    ASGIAuditMiddleware,
    AsyncAuditClient,
    AuditClient,
    AuditLogHandler,
    SpoolFullError,
    WSGIAuditMiddleware,
    audited,
    bind,
    context,
    set_actor,
)
from sealtrail.runtime import dev

CODEC = AvroCodec(schemas.load(schemas.AUDIT_EVENT))
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def client(stack: dev.Stack, tmp_path: Path) -> Iterator[AuditClient]:
    """A client whose broker is unreachable: everything it accepts stays in its spool."""
    c = AuditClient(service="svc", bootstrap=f"127.0.0.1:{dev.free_port()}",
                    registry_url=stack.registry, topic="instrument-test",
                    spool_dir=tmp_path / "spool")
    yield c
    c.close(timeout=0)


def test_context_manager_records_success_and_reraises_errors_with_outcome_and_reason(
    client: AuditClient,
) -> None:
    """The recorder emits SUCCESS, FAILURE for listed exceptions, DENIED for
    PermissionError, ERROR otherwise, and never swallows the exception."""
    with client.record("doc.read", "read", actor_id="u", resource_type="doc", resource_id="1"):
        pass
    with pytest.raises(KeyError), client.record(
            "doc.read", "read", actor_id="u", resource_type="doc", resource_id="2",
            failures=(KeyError,)):
        raise KeyError("missing")
    with pytest.raises(PermissionError), client.record(
            "doc.read", "read", actor_id="u", resource_type="doc", resource_id="3"):
        raise PermissionError("not yours")
    with pytest.raises(ZeroDivisionError), client.record(
            "doc.read", "read", actor_id="u", resource_type="doc", resource_id="4"):
        _ = 1 / 0
    with client.record("doc.read", "read", actor_id="u", resource_type="doc",
                       resource_id="5") as action:
        action.deny("policy says no")
    got = [(e["resource"]["id"], e["outcome"], e["reason"]) for e in spooled(client)]
    assert got == [("1", "SUCCESS", None), ("2", "FAILURE", "KeyError: 'missing'"),
                   ("3", "DENIED", "PermissionError: not yours"),
                   ("4", "ERROR", "ZeroDivisionError: division by zero"),
                   ("5", "DENIED", "policy says no")]


def test_decorator_records_sync_and_async_calls_with_resource_from_arguments(
    client: AuditClient,
) -> None:
    """A decorated function (sync or async) emits one event per call, resource id taken
    from its arguments, and its exception propagates unchanged."""

    @audited(client, "file.delete", "delete", actor_id="u", resource_type="file",
             resource_id=lambda name: name, failures=(FileNotFoundError,))
    def delete(name: str) -> str:
        if name == "ghost":
            raise FileNotFoundError(name)
        return name

    @audited(client, "file.copy", "copy", actor_id="u", resource_type="file",
             resource_id=lambda name: name)
    async def copy(name: str) -> str:
        return name * 2

    assert delete("a") == "a"
    with pytest.raises(FileNotFoundError):
        delete("ghost")
    assert asyncio.run(copy("b")) == "bb"
    got = [(e["event_type"], e["resource"]["id"], e["outcome"]) for e in spooled(client)]
    assert got == [("file.delete", "a", "SUCCESS"), ("file.delete", "ghost", "FAILURE"),
                   ("file.copy", "b", "SUCCESS")]


def test_an_audit_failure_never_masks_the_actions_exception(client: AuditClient) -> None:
    """If the event itself is invalid while the action raised, the action's exception
    propagates with a note; when the action succeeded, the audit error is raised."""
    with pytest.raises(RuntimeError) as exc, client.record(
            "Bad Type", "x", actor_id="u", resource_type="t", resource_id="1"):
        raise RuntimeError("boom")
    assert any("was not recorded" in note for note in exc.value.__notes__)
    with pytest.raises(EventValidationError), client.record(
            "Bad Type", "x", actor_id="u", resource_type="t", resource_id="1"):
        pass


def test_builder_and_bound_context_fill_the_envelope(client: AuditClient) -> None:
    """The builder sets typed fields; the bound request context supplies actor, request
    id, source ip, trace id and tenant; explicit arguments win over the context."""
    with bind(actor_id="alice", principal="alice@idp", request_id="r-1", source_ip="10.0.0.1",
              trace_id="ab" * 16, tenant="t-1"):
        client.event("payment.refund", "refund").resource("payment", "p-1") \
            .authorization("ALLOW", policy="rbac", permissions=("refund",)) \
            .attribute("amount", "12.00").emit()
        client.emit("payment.read", "read", actor_id="bob", resource_type="payment",
                    resource_id="p-1")
    first, second = spooled(client)
    assert first["actor"]["id"] == "alice" and first["actor"]["principal"] == "alice@idp"
    assert first["origin"]["request_id"] == "r-1" and first["origin"]["trace_id"] == "ab" * 16
    assert first["tenant"] == "t-1" and first["attributes"] == {"amount": "12.00"}
    assert first["authorization"] == {"decision": "ALLOW", "policy": "rbac",
                                      "permissions": ["refund"]}
    assert second["actor"]["id"] == "bob" and second["origin"]["request_id"] == "r-1"
    with pytest.raises(EventValidationError, match="resource"):
        client.event("x.y", "z").actor("u").emit()


def test_context_follows_thread_pools_only_when_asked(client: AuditClient) -> None:
    """A plain executor.submit does not carry the request context; context.submit does."""

    def emit(tag: str) -> None:
        client.emit("job.step", "run", actor_id="worker", resource_type="job",
                    resource_id=tag)

    with ThreadPoolExecutor(1) as pool, bind(request_id="req-7"):
        pool.submit(emit, "plain").result()
        context.submit(pool, emit, "propagated").result()
    got = {e["resource"]["id"]: e["origin"]["request_id"] for e in spooled(client)}
    assert got == {"plain": None, "propagated": "req-7"}


def test_asgi_middleware_binds_request_fields_and_the_authenticated_actor(
    client: AuditClient,
) -> None:
    """The ASGI middleware binds request id, client ip, user agent and trace id from the
    request, and the actor only from what authentication established (scope["user"])."""

    class User:
        is_authenticated = True
        identity = "carol"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        client.emit("api.call", "call", resource_type="endpoint", resource_id=scope["path"])

    middleware = ASGIAuditMiddleware(app, trusted_proxies=["10.0.0.0/8"])
    headers = [(b"x-request-id", b"req-42"), (b"user-agent", b"curl/8"),
               (b"traceparent", TRACEPARENT.encode()),
               (b"x-forwarded-for", b"198.51.100.9, 10.0.0.1"), (b"x-user", b"mallory")]
    scope = {"type": "http", "path": "/a", "headers": headers, "client": ("10.0.0.1", 5000),
             "user": User()}
    asyncio.run(middleware(scope, None, None))
    anonymous = dict(scope, path="/b", user=None, headers=[(b"x-request-id", b"bad id!")])
    with pytest.raises(EventValidationError, match=r"actor\.id"):
        asyncio.run(middleware(anonymous, None, None))
    (event,) = spooled(client)
    assert event["actor"]["id"] == "carol"
    assert event["origin"]["request_id"] == "req-42"
    assert event["origin"]["source_ip"] == "198.51.100.9"
    assert event["origin"]["user_agent"] == "curl/8"
    assert event["origin"]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_wsgi_middleware_keeps_the_context_for_lazily_produced_bodies(
    client: AuditClient,
) -> None:
    """The WSGI middleware binds the request context, REMOTE_USER is the actor, an actor
    set by the app is kept, and a body produced lazily still sees the context."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/login":
            set_actor("dave", principal="dave@idp")
        client.emit("page.view", "view", resource_type="page", resource_id=environ["PATH_INFO"])

        def body() -> Iterator[bytes]:
            client.emit("page.stream", "stream", resource_type="page", resource_id="lazy")
            yield b"ok"
        return body()

    middleware = WSGIAuditMiddleware(app)
    environ = {"PATH_INFO": "/home", "REMOTE_ADDR": "192.0.2.5", "REMOTE_USER": "erin",
               "HTTP_X_REQUEST_ID": "w-1", "HTTP_TRACEPARENT": TRACEPARENT}
    assert b"".join(middleware(environ, lambda *a: None)) == b"ok"
    login = {"PATH_INFO": "/login", "REMOTE_ADDR": "192.0.2.6", "HTTP_X_REQUEST_ID": "w-2"}
    assert b"".join(middleware(login, lambda *a: None)) == b"ok"
    assert context.current() is None, "the request context leaked into the server thread"
    got = [(e["event_type"], e["actor"]["id"], e["origin"]["request_id"],
            e["origin"]["source_ip"]) for e in spooled(client)]
    assert got == [("page.view", "erin", "w-1", "192.0.2.5"),
                   ("page.stream", "erin", "w-1", "192.0.2.5"),
                   ("page.view", "dave", "w-2", "192.0.2.6"),
                   ("page.stream", "dave", "w-2", "192.0.2.6")]


def test_logging_bridge_emits_marked_records_and_reports_bad_ones(
    client: AuditClient, capsys: pytest.CaptureFixture[str],
) -> None:
    """Log records with an audit mapping become events (message kept); other records are
    ignored; a record that cannot be emitted is reported, not dropped silently."""
    logger = logging.getLogger("test.audit.bridge")
    logger.propagate = False
    logger.addHandler(AuditLogHandler(client))
    logger.setLevel(logging.INFO)
    logger.info("just a log line")
    logger.info("user %s exported %d rows", "u-1", 30, extra={"audit": {
        "event_type": "data.export", "action": "export", "actor_id": "u-1",
        "resource_type": "table", "resource_id": "customers"}})
    logger.error("export failed", extra={"audit": {
        "event_type": "data.export", "action": "export", "actor_id": "u-1",
        "resource_type": "table", "resource_id": "orders"}})
    logger.info("broken", extra={"audit": {"event_type": "data.export"}})
    events = spooled(client)
    assert [(e["resource"]["id"], e["outcome"]) for e in events] == [
        ("customers", "SUCCESS"), ("orders", "ERROR")]
    assert events[0]["attributes"]["message"] == "user u-1 exported 30 rows"
    assert "KeyError" in capsys.readouterr().err


def test_async_client_emits_with_the_task_context(stack: dev.Stack, tmp_path: Path) -> None:
    """AsyncAuditClient builds off the loop, emits with the current task's context, and a
    full spool with the block policy raises after the bound without blocking the loop."""

    async def main() -> tuple[list[str], AuditClient]:
        audit = await AsyncAuditClient.create(
            service="svc", bootstrap=f"127.0.0.1:{dev.free_port()}",
            registry_url=stack.registry, topic="async-test", spool_dir=tmp_path / "spool",
            spool_max_bytes=8 * 1024, spool_full="block", spool_block_seconds=0.2)
        ids = []

        async def handle(n: int) -> None:
            with bind(actor_id=f"user-{n}", request_id=f"req-{n}"):
                await asyncio.sleep(0)
                ids.append(await audit.emit("api.call", "call", resource_type="r",
                                            resource_id=str(n)))

        await asyncio.gather(*(handle(n) for n in range(3)))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.ensure_future(ticker())
        with pytest.raises(SpoolFullError):
            for n in range(1000):
                await audit.emit("api.call", "call", actor_id="x", resource_type="r",
                                 resource_id=str(n))
        tick.cancel()
        assert ticks >= 5, "the event loop was blocked while emit() waited for room"
        return ids, audit.client

    ids, sync_client = asyncio.run(main())
    events = {e["event_id"]: e for e in spooled(sync_client)}
    for event_id in ids:
        event = events[event_id]
        assert event["actor"]["id"] == f"user-{event['resource']['id']}"
        assert event["origin"]["request_id"] == f"req-{event['resource']['id']}"
    sync_client.close(timeout=0)


def test_traceparent_parsing_accepts_only_well_formed_headers() -> None:
    """Only a version-00 style header with a non-zero 32-hex trace id yields a trace id."""
    assert context.trace_id_from_traceparent(TRACEPARENT) == "0af7651916cd43dd8448eb211c80319c"
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                "00-xyz-b7ad6b7169203331-01"):
        assert context.trace_id_from_traceparent(bad) is None


def test_settings_configure_the_client_spool(settings: Settings) -> None:
    """from_settings takes the spool location, bound and policies from Settings."""
    import dataclasses

    s = dataclasses.replace(settings, producer_spool_max_bytes=4096,
                            producer_spool_full="block", producer_spool_block_seconds=0.1)
    with AuditClient.from_settings(s, service="cfg") as c:
        assert c.full_policy == "block"
        assert c.spool_dir.is_relative_to(settings.home / "spool")


def test_a_client_inherited_through_fork_refuses_to_emit(client: AuditClient) -> None:
    """A forked child must create its own client: the inherited one raises instead of
    writing into the parent's spool."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            client.emit("x.y", "z", actor_id="u", resource_type="t", resource_id="1")
        except ConfigError as exc:
            os._exit(0 if "fork" in str(exc) else 3)
        except BaseException:
            os._exit(2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.emit("x.y", "z", actor_id="u", resource_type="t", resource_id="1")
    assert len(spooled(client)) == 1
