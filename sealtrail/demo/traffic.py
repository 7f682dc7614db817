"""A simulated service emitting realistic audit events (run as its own process).

    python -m sealtrail.demo.traffic --service billing --count 4000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from sealtrail.config import load_settings
from sealtrail.producers import AuditClient

USERS = [f"u-{i:04d}" for i in range(200)]
ACTIONS = [
    ("auth.login", "login", "session"),
    ("record.read", "read", "customer"),
    ("record.update", "update", "customer"),
    ("record.delete", "delete", "invoice"),
    ("access.denied", "read", "payroll"),
]


def emit_traffic(
    client: AuditClient, service: str, count: int, seed: int, rate: float = 0.0
) -> list[str]:
    """Emit ``count`` events (at most ``rate`` per second when > 0); returns their ids."""
    rng = random.Random(seed)
    ids = []
    started = time.monotonic()
    for i in range(count):
        if rate > 0 and i % 100 == 0:
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        event_type, action, resource = ACTIONS[i % len(ACTIONS)]
        user = rng.choice(USERS)
        denied = event_type == "access.denied"
        ids.append(client.emit(
            event_type, action,
            actor_id=user,
            principal=f"{user}@idp.example.com",
            resource_type=resource,
            resource_id=f"{resource}-{rng.randrange(10_000)}",
            outcome="DENIED" if denied else "SUCCESS",
            reason="missing permission payroll:read" if denied else None,
            decision="DENY" if denied else "ALLOW",
            policy="rbac/v3",
            permissions=[f"{resource}:{action}"],
            source_ip=f"203.0.113.{rng.randrange(1, 255)}",
            request_id=f"req-{service}-{i}",
            tenant=f"tenant-{rng.randrange(5)}",
            classification="CONFIDENTIAL",
            attributes={"email": f"{user}@customers.example.com",
                        "password": "hunter2" if i % 97 == 0 else "",
                        "ticket": f"T-{i}"},
        ))
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--service", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = unlimited")
    args = parser.parse_args()
    settings = load_settings()
    with AuditClient.from_settings(settings, service=args.service, service_version="1.4.2",
                                   environment="demo") as client:
        ids = emit_traffic(client, args.service, args.count, args.seed, args.rate)
        remaining = client.flush(60)
    json.dump({"service": args.service, "emitted": len(ids), "undelivered": remaining},
              sys.stdout)
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
