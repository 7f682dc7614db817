"""Instrument a FastAPI service with sealtrail.

    sealtrail dev up                       # embedded broker + registry (once)
    python examples/fastapi_app.py         # builds the app and sends it a few requests

In production serve ``create_app(...)`` with your ASGI server (uvicorn, hypercorn) and
build the client from your settings. What it shows:

- ``ASGIAuditMiddleware`` binds request id, source ip, user agent and W3C trace id;
- the authentication dependency says who is authenticated (``set_actor``), never a
  request field;
- ``audit.record(...)`` records the action and its outcome, exceptions included, without
  swallowing them.
"""

from __future__ import annotations

import json
import sys

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from sealtrail.config import load_settings
from sealtrail.producers import ASGIAuditMiddleware, AuditClient, set_actor

TOKENS = {"token-alice": "alice", "token-bob": "bob"}  # stands in for your identity provider


def create_app(audit: AuditClient) -> FastAPI:
    invoices = {"inv-1": "open", "inv-2": "open"}
    app = FastAPI()
    app.add_middleware(ASGIAuditMiddleware)

    async def authenticated_user(request: Request) -> str:
        # An async dependency runs in the request's task, so the actor it binds is seen by
        # every emit() of the request.
        user = TOKENS.get(request.headers.get("authorization", "").removeprefix("Bearer "))
        if user is None:
            raise HTTPException(status_code=401, detail="not authenticated")
        set_actor(user, principal=f"{user}@idp.example.com")
        return user

    @app.exception_handler(LookupError)
    async def not_found(_request: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/invoices/{invoice_id}")
    async def read_invoice(invoice_id: str, user: str = Depends(authenticated_user)) -> dict:
        audit.emit("record.read", "read", resource_type="invoice", resource_id=invoice_id)
        return {"id": invoice_id, "status": invoices.get(invoice_id)}

    @app.post("/invoices/{invoice_id}/void")
    async def void_invoice(invoice_id: str, user: str = Depends(authenticated_user)) -> dict:
        with audit.record("invoice.void", "void", resource_type="invoice",
                          resource_id=invoice_id, failures=(LookupError,)) as action:
            if invoice_id not in invoices:
                raise LookupError(f"no invoice {invoice_id}")
            if user != "alice":
                action.deny("only alice may void invoices")
                raise HTTPException(status_code=403, detail="forbidden")
            invoices[invoice_id] = "void"
        return {"id": invoice_id, "status": "void"}

    return app


def main() -> int:
    settings = load_settings()
    with AuditClient.from_settings(settings, service="invoices-api", service_version="1.0.0",
                                   environment="example") as audit:
        http = TestClient(create_app(audit))
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        calls = [
            http.get("/invoices/inv-1", headers={"Authorization": "Bearer token-alice",
                                                 "X-Request-Id": "req-1", "traceparent": trace,
                                                 "User-Agent": "example/1.0"}),
            http.post("/invoices/inv-1/void", headers={"Authorization": "Bearer token-alice",
                                                       "X-Request-Id": "req-2"}),
            http.post("/invoices/inv-2/void", headers={"Authorization": "Bearer token-bob",
                                                       "X-Request-Id": "req-3"}),
            http.post("/invoices/inv-404/void", headers={"Authorization": "Bearer token-alice",
                                                         "X-Request-Id": "req-4"}),
        ]
        remaining = audit.flush(30)
    print(json.dumps({"statuses": [c.status_code for c in calls], "undelivered": remaining}))
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
