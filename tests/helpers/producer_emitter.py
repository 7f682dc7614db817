"""A service process for the producer fault tests: emits events and prints each
event_id once emit() has returned, so the test knows what was accepted.

    python tests/helpers/producer_emitter.py --service svc --count 5000 [--rate 0] [--drain]

Settings come from SEALTRAIL_* variables. With --drain it emits nothing: it starts a
client on the spool a killed process left, waits until the spool is empty and prints
{"recovered": N, "remaining": M}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sealtrail.config import load_settings
from sealtrail.producers import AuditClient


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible")
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    client = AuditClient.from_settings(settings, service=args.service)
    if args.drain:
        recovered = client.pending
        remaining = client.flush(90)
        client.close(timeout=5)
        print(json.dumps({"recovered": recovered, "remaining": remaining}), flush=True)
        return 0 if remaining == 0 else 1
    start = time.monotonic()
    out = sys.stdout
    for i in range(args.count):
        if args.rate:
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        event_id = client.emit("record.read", "read", actor_id=f"u-{i % 50}",
                               resource_type="customer", resource_id=f"c-{i}")
        out.write(event_id + "\n")
        if i % 100 == 0:
            out.flush()
    out.flush()
    remaining = client.flush(60)
    client.close(timeout=5)
    print(json.dumps({"remaining": remaining}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
