"""Replay a time range of sealed records, verified while they are read, into a sink.

Two sources:

* the archive (:class:`ArchiveSource`): every checkpoint of every chain is checked
  (signature, link to the previous one, seq continuity, segment key); the segments whose
  records can fall in the range are read, each checked against its checkpoint exactly as
  ``sealtrail verify`` does (digest, entry hashes, links, signatures, raw-offset
  completeness, Merkle root, head). A segment is checked as a whole before any of its
  records is written. Segments are independent given their checkpoints, so they can be
  checked on several cores (``workers``);
* the sealed topic (:class:`KafkaSource`): each partition is read from the offset that
  ``offsets_for_times`` gives for ``since``; every record must link to the one before it
  and is released only once it is evidence: on its own (entry signature) or when the
  batch seal after it verifies; a chain read from inside a batch is anchored after its
  first signed entry (``_links``).

The time range selects on ``ingested_at`` (the sealer's clock, which is also the
Kafka timestamp of the sealed record): ``since`` inclusive, ``until`` exclusive.

A run stops at the first break in the evidence with a :class:`Break` naming chain,
segment and seq; with ``continue_on_error`` the broken chain is abandoned from that point
and the others go on, every break listed. Progress is resumable: a state file records,
after every segment (archive) or batch (Kafka), how far each chain or partition got and
how many bytes of the output file are complete.

The archive source, the time range and record-to-JSON belong to the archive-reading layer
(:mod:`sealtrail.reading`), which search, export and report use too. Modules here:
``_sources`` (the Kafka source, :data:`Break`), ``_archive`` and ``_kafka`` (the replay
loops), ``_links`` (the chains as the Kafka replay checks them), ``_run`` (either
source), ``_sinks`` (outputs), ``_state`` (state file),
``_result`` (what a run did).
"""

from __future__ import annotations

from sealtrail.reading import CLOCK_SKEW_US as _DEFAULT_SKEW_US
from sealtrail.reading import ArchiveSource, Query, record_to_json
from sealtrail.replay._archive import replay_archive
from sealtrail.replay._kafka import replay_kafka
from sealtrail.replay._result import ReplayResult
from sealtrail.replay._run import replay
from sealtrail.replay._sinks import Sink, open_sink
from sealtrail.replay._sources import Break, KafkaSource
from sealtrail.replay._state import ReplayState

__all__ = [
    "CLOCK_SKEW_US",
    "KAFKA_BATCH",
    "SAVE_EVERY_S",
    "ArchiveSource",
    "Break",
    "KafkaSource",
    "Query",
    "ReplayResult",
    "ReplayState",
    "Sink",
    "open_sink",
    "record_to_json",
    "replay",
    "replay_archive",
    "replay_kafka",
]

# Tunables. The modules read them from here at call time, so setting
# ``sealtrail.replay.SAVE_EVERY_S`` (or CLOCK_SKEW_US) takes effect.

#: Slack for clocks of the sealer and the archiver (checkpoint created_at vs ingested_at).
CLOCK_SKEW_US = _DEFAULT_SKEW_US
#: How often the state file (and the output file) are made durable during a replay.
SAVE_EVERY_S = 1.0
#: Records asked of the consumer at a time (Kafka source); the state is saved after each.
KAFKA_BATCH = 2000
