"""Instrument a worker process (a job consumer, a cron job, a CLI) with sealtrail.

    sealtrail dev up                       # embedded broker + registry (once)
    python examples/worker.py --jobs 20

What it shows:

- the worker acts as a service actor; each job binds its own context (``bind``);
- ``@audited`` records each job and its outcome; a failing job's exception propagates;
- work handed to a thread pool keeps the audit context (``context.submit``);
- a ``logging`` bridge turns existing audit log lines into events;
- on SIGTERM the worker stops taking jobs and flushes; anything not yet acknowledged stays
  in the durable spool and is sent by the next start.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from sealtrail.config import load_settings
from sealtrail.producers import AuditClient, AuditLogHandler, audited, bind, context

log = logging.getLogger("worker.audit")


def run(audit: AuditClient, jobs: int, stop: threading.Event) -> dict[str, int]:
    log.addHandler(AuditLogHandler(audit))
    log.setLevel(logging.INFO)
    log.propagate = False

    @audited(audit, "job.run", "export", resource_type="report",
             resource_id=lambda job: f"report-{job}", failures=(ValueError,))
    def export(job: int) -> int:
        if job % 7 == 6:
            raise ValueError(f"job {job}: source data incomplete")
        return job

    outcomes = {"ok": 0, "failed": 0}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for job in range(jobs):
            if stop.is_set():
                break
            with bind(actor_id="svc-reporting", actor_type="service",
                      request_id=f"job-{job}"):
                future = context.submit(pool, export, job)
                try:
                    future.result()
                    outcomes["ok"] += 1
                except ValueError:
                    outcomes["failed"] += 1
                log.info("report %s published", job, extra={"audit": {
                    "event_type": "report.publish", "action": "publish",
                    "resource_type": "report", "resource_id": f"report-{job}"}})
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = load_settings()
    with AuditClient.from_settings(settings, service="reporting-worker",
                                   service_version="0.9.0", environment="example") as audit:
        outcomes = run(audit, args.jobs, stop)
        remaining = audit.flush(30)
    print(json.dumps({**outcomes, "undelivered": remaining}))
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
