"""The producer and sealer benchmarks again, on Apache Kafka: every figure of
``bench_producer`` and ``bench_sealer`` with the suffix ``.kafka``.

Each benchmark starts its own stack through ``dev.start_stack``; here that is pointed at a
single-node Apache Kafka (``broker_kind="kafka"``) for the duration of the two runs, so the
figures are measured exactly as on Tansu, and every ratio (``producer.emit_vs_stock``,
``sealer.vs_floor``, ``sealer.scale_2``) still compares two things measured in the same run
on the same broker. Skipped, saying why, without java or mvn.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks import bench_producer, bench_sealer
from sealtrail.kafka._fetch import missing_tools
from sealtrail.runtime import dev


@contextmanager
def _on_kafka() -> Iterator[None]:
    original = dev.start_stack
    dev.start_stack = functools.partial(original, broker_kind="kafka")  # type: ignore[assignment]
    try:
        yield
    finally:
        dev.start_stack = original  # type: ignore[assignment]


def run() -> dict[str, object]:
    why = missing_tools()
    if why:
        return {"kafka": f"skipped: {why}"}
    figures: dict[str, object] = {}
    with _on_kafka():
        for module in (bench_producer, bench_sealer):
            figures.update({f"{key}.kafka": value for key, value in module.run().items()})
    return figures
