"""Instrument a Flask service with sealtrail.

    sealtrail dev up                       # embedded broker + registry (once)
    python examples/flask_app.py           # builds the app and sends it a few requests

In production serve ``create_app(...)`` with your WSGI server (gunicorn, uwsgi); give each
worker process its own client (the spool takes one slot per process). What it shows:

- ``WSGIAuditMiddleware`` binds request id, source ip, user agent and W3C trace id;
- authentication (here a ``before_request`` hook) says who is authenticated
  (``set_actor``); a server that sets REMOTE_USER works without any code;
- the ``audit.record(...)`` decorator records the action and its outcome.
"""

from __future__ import annotations

import json
import sys

from flask import Flask, abort, g, jsonify, request

from sealtrail.config import load_settings
from sealtrail.producers import AuditClient, WSGIAuditMiddleware, set_actor

TOKENS = {"token-alice": "alice", "token-bob": "bob"}  # stands in for your identity provider


class PaymentDeclined(Exception):
    """A business failure: recorded as outcome FAILURE."""


def create_app(audit: AuditClient) -> Flask:
    app = Flask(__name__)
    app.wsgi_app = WSGIAuditMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    @app.before_request
    def authenticate() -> None:
        user = TOKENS.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            abort(401)
        g.user = user
        set_actor(user, principal=f"{user}@idp.example.com")

    @audit.record("payment.refund", "refund", resource_type="payment",
                  resource_id=lambda payment_id, amount: payment_id,
                  failures=(PaymentDeclined,))
    def refund(payment_id: str, amount: int) -> str:
        if amount > 100:
            raise PaymentDeclined(f"refund of {amount} exceeds the limit")
        return f"refund-{payment_id}"

    @app.post("/payments/<payment_id>/refund")
    def refund_view(payment_id: str):  # type: ignore[no-untyped-def]
        try:
            return jsonify(refund=refund(payment_id, int(request.args.get("amount", "0"))))
        except PaymentDeclined as exc:
            return jsonify(error=str(exc)), 402

    return app


def main() -> int:
    settings = load_settings()
    with AuditClient.from_settings(settings, service="payments-api", service_version="3.2.1",
                                   environment="example") as audit:
        http = create_app(audit).test_client()
        statuses = [
            http.post("/payments/pay-1/refund?amount=20",
                      headers={"Authorization": "Bearer token-alice",
                               "X-Request-Id": "req-10"}).status_code,
            http.post("/payments/pay-2/refund?amount=500",
                      headers={"Authorization": "Bearer token-bob",
                               "X-Request-Id": "req-11"}).status_code,
        ]
        remaining = audit.flush(30)
    print(json.dumps({"statuses": statuses, "undelivered": remaining}))
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
