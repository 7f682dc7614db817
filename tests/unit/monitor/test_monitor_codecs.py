"""The monitor's Kafka client can read what the sealer and the producers write."""

from __future__ import annotations

import aiokafka.codec


def test_aiokafka_can_decompress_the_lz4_batches_the_pipeline_writes() -> None:
    """The sealer and the producers compress with lz4; aiokafka (under faust) decompresses
    lz4 only with cramjam, which the ``aiokafka[lz4]`` dependency brings. Without it the
    monitor could not read a single sealed batch."""
    assert aiokafka.codec.has_lz4()
    payload = b"sealed record " * 100
    assert aiokafka.codec.lz4_decode(aiokafka.codec.lz4_encode(payload)) == payload
