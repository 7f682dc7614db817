"""The runnable examples of docs/producer.md ("Instrument your service"), run as the
docs say, against the real embedded stack; then the events they emitted are read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from helpers.paths import REPO
from helpers.producer_checks import consume

from sealtrail.config import Settings

EXAMPLES = REPO / "examples"


def run_example(settings: Settings, name: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **settings.to_env()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def by_request(events: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {e["origin"]["request_id"]: e for _, e in events}


def test_fastapi_example_records_actor_request_trace_and_outcomes(settings: Settings) -> None:
    """The FastAPI example: the actor comes from authentication, request id, user agent
    and W3C trace id from the request, and each outcome (success, denied, failure) with
    its reason."""
    pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install fastapi httpx)")
    pytest.importorskip("httpx", reason="httpx is not installed (FastAPI's TestClient needs it)")
    result = run_example(settings, "fastapi_app.py")
    assert result == {"statuses": [200, 200, 403, 404], "undelivered": 0}
    events = by_request(consume(settings, 4))
    read = events["req-1"]
    assert read["event_type"] == "record.read" and read["outcome"] == "SUCCESS"
    assert read["actor"] == {"id": "alice", "type": "user", "principal": "alice@idp.example.com",
                             "on_behalf_of": None, "display_name": None, "email": None}
    assert read["origin"]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert read["origin"]["user_agent"] == "example/1.0"
    assert read["origin"]["service"] == "invoices-api"
    assert read["origin"]["source_ip"] == "testclient"
    assert events["req-2"]["outcome"] == "SUCCESS"
    assert events["req-3"]["actor"]["id"] == "bob"
    assert events["req-3"]["outcome"] == "DENIED"
    assert events["req-3"]["reason"] == "only alice may void invoices"
    assert events["req-4"]["outcome"] == "FAILURE"
    assert events["req-4"]["reason"] == "LookupError: no invoice inv-404"


def test_flask_example_records_the_decorated_action_and_its_failure(settings: Settings) -> None:
    """The Flask example: WSGI middleware context, the actor set by authentication, and a
    decorated action whose business exception becomes outcome FAILURE."""
    pytest.importorskip("flask", reason="Flask is not installed (pip install flask)")
    result = run_example(settings, "flask_app.py")
    assert result == {"statuses": [200, 402], "undelivered": 0}
    events = by_request(consume(settings, 2))
    ok, declined = events["req-10"], events["req-11"]
    assert ok["outcome"] == "SUCCESS" and ok["actor"]["id"] == "alice"
    assert ok["resource"] == {"type": "payment", "id": "pay-1"}
    assert ok["origin"]["source_ip"] == "127.0.0.1"
    assert declined["actor"]["id"] == "bob" and declined["outcome"] == "FAILURE"
    assert declined["reason"] == "PaymentDeclined: refund of 500 exceeds the limit"


def test_worker_example_keeps_job_context_across_its_thread_pool(settings: Settings) -> None:
    """The worker example: every job's events carry the job's context although the job
    ran on a pool thread; failed jobs are FAILURE; audit log lines become events."""
    result = run_example(settings, "worker.py", "--jobs", "14")
    assert result == {"ok": 12, "failed": 2, "undelivered": 0}
    events = [e for _, e in consume(settings, 28)]
    assert len(events) == 28
    runs = {e["origin"]["request_id"]: e for e in events if e["event_type"] == "job.run"}
    assert len(runs) == 14
    assert all(e["actor"] == {"id": "svc-reporting", "type": "service", "principal": None,
                              "on_behalf_of": None, "display_name": None, "email": None}
               for e in events)
    assert runs["job-6"]["outcome"] == "FAILURE"
    assert runs["job-6"]["reason"] == "ValueError: job 6: source data incomplete"
    assert runs["job-5"]["resource"]["id"] == "report-5"
    logged = [e for e in events if e["event_type"] == "report.publish"]
    assert {e["attributes"]["message"] for e in logged} >= {"report 3 published"}
