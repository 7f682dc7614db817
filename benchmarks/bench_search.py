"""Search latency on a large SQLite index (FTS5), built directly (no Kafka).

* ``search.rows``: indexed events (``SEALTRAIL_BENCH_SEARCH_ROWS``, default 1000000);
  ``search.build_s``: time to load them (one transaction, then ANALYZE).
* ``search.p50_ms`` / ``search.p95_ms`` / ``search.max_ms``: over every filtered query below,
  each run with 20 different values (actor + action + a month, event type + outcome, a
  resource, a rare event type over the whole range, a trace id, a service + a week, a
  free-text word + actor, a tenant + action + a day), limit 1000 rows as the CLI does;
  target p95 < 200 ms.
* ``search.p95_ms.<kind>``: the p95 of each kind.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

DAY_US = 86_400_000_000
T0 = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z
SPAN_DAYS = 92
# an event type auditors look for and services rarely emit: one event in 10,007
RARE, RARE_EVERY = ("admin.key_rotate", "rotate"), 10_007


def _rows(n: int, seed: int = 7):  # type: ignore[no-untyped-def]
    from sealtrail.search import IndexRow

    rng = random.Random(seed)
    types = [("auth.login", "login"), ("record.read", "read"), ("record.update", "update"),
             ("record.delete", "delete"), ("admin.role_grant", "grant"),
             ("payment.capture", "capture"), ("export.run", "export"), ("auth.logout", "logout")]
    services = [f"svc-{i}" for i in range(20)]
    outcomes = ["SUCCESS"] * 8 + ["DENIED", "FAILURE"]
    words = ["refund", "chargeback", "override", "bulk", "manual", "api", "batch", "portal"]
    step = SPAN_DAYS * DAY_US // n
    for i in range(n):
        et, action = RARE if i % RARE_EVERY == 0 else types[i % len(types)]
        actor = f"u-{rng.randrange(20000)}"
        resource = f"res-{rng.randrange(200000)}"
        outcome = outcomes[i % len(outcomes)]
        service = services[i % len(services)]
        tenant = f"t-{i % 50}"
        body = (f"{et} {action} {actor} record {resource} {outcome} {service} {tenant} "
                f"note {words[rng.randrange(len(words))]} {words[rng.randrange(len(words))]}")
        yield IndexRow(f"audit.raw.{i % 6}.bench", i // 6, (i // 6) // 5000, T0 + i * step,
                       T0 + i * step + 1000, f"ev-{i}", et, action, actor, "record", resource,
                       outcome, service, tenant, f"{i:032x}", f"req-{i}", body)


def run() -> dict[str, object]:
    from sealtrail.search import open_index, parse_query
    from sealtrail.search._sqlite import SqliteIndex

    n = int(os.environ.get("SEALTRAIL_BENCH_SEARCH_ROWS", "1000000"))
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-search-") as tmp:
        index = open_index(str(Path(tmp) / "index.sqlite"))
        assert isinstance(index, SqliteIndex)
        started = time.perf_counter()
        batch = []
        with index.bulk() as bulk:
            for row in _rows(n):
                batch.append(row)
                if len(batch) == 50_000:
                    bulk.add(batch)
                    batch = []
            bulk.add(batch)
        build_s = time.perf_counter() - started

        def span(days: int, limit: int = SPAN_DAYS) -> str:
            start = rng.randrange(max(limit - days, 1))
            return f"since:{T0 + start * DAY_US} until:{T0 + (start + days) * DAY_US}"

        kinds = {
            "actor_action_month": lambda: (f"actor:u-{rng.randrange(20000)} action:delete "
                                           + span(30)),
            "type_outcome_day": lambda: "type:record.update outcome:denied " + span(1),
            "resource": lambda: f"resource:record/res-{rng.randrange(200000)}",
            "rare_type": lambda: f"type:{RARE[0]}",
            "trace": lambda: f"trace:{rng.randrange(n):032x}",
            "service_week": lambda: (f"service:svc-{rng.randrange(20)} outcome:failure "
                                     + span(7)),
            "text_actor": lambda: f"chargeback actor:u-{rng.randrange(20000)}",
            "tenant_action_day": lambda: (f"tenant:t-{rng.randrange(50)} action:export "
                                          + span(1)),
        }
        timings: dict[str, list[float]] = {}
        for kind, make in kinds.items():
            for _ in range(20):
                query = parse_query(make(), limit=1000)
                t = time.perf_counter()
                index.search(query)
                timings.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
        coverage_t = time.perf_counter()
        index.coverage()
        coverage_ms = (time.perf_counter() - coverage_t) * 1000
        index.close()
        size_mb = (Path(tmp) / "index.sqlite").stat().st_size / 1e6

    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 1)

    every = [t for ts in timings.values() for t in ts]
    figures: dict[str, object] = {
        "search.rows": n, "search.build_s": round(build_s, 1),
        "search.index_mb": round(size_mb), "search.p50_ms": p(every, 0.5),
        "search.p95_ms": p(every, 0.95), "search.max_ms": round(max(every), 1),
        "search.coverage_ms": round(coverage_ms, 1), "search.target_p95_ms": 200,
    }
    for kind, ts in timings.items():
        figures[f"search.p95_ms.{kind}"] = p(ts, 0.95)
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
